import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';

/** A benchmark's server in a process of its own, up once it printed "listening URL". */
export interface LaunchedServer {
  readonly child: ChildProcess;
  readonly url: string;
  /** SIGTERM, and its exit: the servers exit through process.exit, so a --cpu-prof profile gets written. */
  stop(): Promise<void>;
}

/**
 * Spawns `executable args` in `cwd` and waits for its "listening URL" line.
 * A benchmark that fails must not leave its server running (and holding the
 * heavy-run lock it inherited): the server is killed when this process exits.
 * `logFile` keeps everything the server prints, from its start, written out
 * whole by the time stop() resolves.
 */
export async function launchServer(
  name: string,
  executable: string,
  args: readonly string[],
  options: { readonly cwd: string; readonly ipc?: boolean; readonly logFile?: string },
): Promise<LaunchedServer> {
  const child = spawn(executable, args, {
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'inherit', ...(options.ipc ? (['ipc'] as const) : [])],
  });
  const log = options.logFile === undefined ? undefined : child.stdout!.pipe(createWriteStream(options.logFile));
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      const match = /listening (\S+)/.exec(chunk.toString());
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code}`)));
  });
  return {
    child,
    url,
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
      process.off('exit', killOnExit);
      if (log) await finished(log);
    },
  };
}
