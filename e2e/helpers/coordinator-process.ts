import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FederationStatus } from '../../core/protocol/status.ts';
import { nodeEntryArgs } from '../../test/helpers/entry-bundle.ts';

const repoRoot = path.resolve(import.meta.dirname, '../..');

export interface CoordinatorProcess {
  readonly url: string;
  readonly output: string[];
  status(): Promise<FederationStatus>;
  stop(): Promise<void>;
}

/**
 * Starts `coordinator/cli.ts` as its own process, the way `npm start` does
 * (from its bundle: test/helpers/entry-bundle.ts), on a free port. With `adminToken`, `status()` sends it (pass the same token
 * with `--admin-token` in `args`).
 */
export async function startCoordinatorProcess(
  args: readonly string[],
  options: { readonly adminToken?: string } = {},
): Promise<CoordinatorProcess> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'fl-e2e-'));
  const child: ChildProcess = spawn(
    process.execPath,
    [...(await nodeEntryArgs('coordinator/cli.ts')), '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, ...args],
    {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const output: string[] = [];
  let dashboardOrigin: string | undefined;
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`coordinator did not start:\n${output.join('\n')}`)), 60_000);
    const onLine = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) {
        if (!line) continue;
        output.push(line);
        const match = /dashboard:\s+(https?:\/\/\S+)\/dashboard/.exec(line);
        if (match) dashboardOrigin = match[1]!;
        // The banner ends with the status API line: resolve then, so callers see all of it.
        if (dashboardOrigin && /status API:/.test(line)) {
          clearTimeout(timer);
          resolve(dashboardOrigin);
        }
      }
    };
    child.stdout!.on('data', onLine);
    child.stderr!.on('data', onLine);
    child.once('exit', (code) => reject(new Error(`coordinator exited with ${code}:\n${output.join('\n')}`)));
  });
  return {
    url,
    output,
    async status() {
      const headers: Record<string, string> = options.adminToken ? { authorization: `Bearer ${options.adminToken}` } : {};
      const response = await fetch(`${url}/api/status`, { headers });
      if (!response.ok) throw new Error(`GET /api/status: HTTP ${response.status}`);
      return (await response.json()) as FederationStatus;
    },
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
