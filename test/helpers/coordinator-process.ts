import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { nodeEntryArgs } from './entry-bundle.ts';

const root = path.resolve(import.meta.dirname, '../..');

export interface CoordinatorProcess {
  readonly child: ChildProcess;
  /** Resolves with the exit code once the process has exited. */
  readonly exited: Promise<number | null>;
  /** Everything it wrote to stdout and stderr so far (for a failing test to print). */
  readonly output: () => string;
}

/**
 * The coordinator as its own process, as `npm start` runs it (`coordinator/cli.ts` with `args`, from its bundle:
 * entry-bundle.ts); resolves once it listens. `entry`: another checkout's cli.ts (a benchmark's baseline).
 */
export async function launchCoordinator(
  args: readonly string[],
  env: Record<string, string> = {},
  entry = 'coordinator/cli.ts',
): Promise<CoordinatorProcess> {
  const child = spawn(process.execPath, [...(await nodeEntryArgs(entry)), ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('dashboard:')) resolve();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then((code) => reject(new Error(`coordinator exited (${code}) before listening:\n${output}`)));
  });
  return { child, exited, output: () => output };
}
