import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';

/**
 * tfjs lives in the coordinator's model thread (coordinator/model-thread/):
 * the main thread, which takes every upload, never loads it, and the thread
 * loads it without its source maps (coordinator/model-thread/load-tfjs.ts).
 */

const root = path.resolve(import.meta.dirname, '../..');
const NODE_ARGS = ['--import', 'tsx', '--import', './test/helpers/report-tfjs-loading.ts'];

interface TfjsReport {
  readonly tfjsLoaded: boolean;
  readonly tfjsCoreMap: boolean;
  readonly entry: boolean;
}

function reportIn(output: string): TfjsReport {
  const line = /tfjs loading (\{.*\})/.exec(output);
  assert.ok(line, `no report in: ${output}`);
  return JSON.parse(line[1]!) as TfjsReport;
}

describe('tfjs stays out of the coordinator main thread', () => {
  it("npm start (coordinator/cli.ts): a started coordinator's model thread loaded the task on tfjs, its main thread never loaded tfjs", async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'fl-model-thread-'));
    try {
      const child = spawn(
        process.execPath,
        [...NODE_ARGS, 'coordinator/cli.ts', '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir],
        {
          cwd: root,
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      // 'close', not 'exit': the report is the last thing it prints, and must have been read.
      const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
      // Started: the model thread has loaded the task (tfjs's backend is in the banner).
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', () => {
          if (output.includes('status API:')) resolve();
        });
        void exited.then((code) => reject(new Error(`the coordinator exited (${code}) before it started: ${output}`)));
      });
      assert.match(output, /tfjs (wasm|cpu) backend/);
      child.kill('SIGTERM');
      await exited;
      assert.deepEqual(reportIn(output), { tfjsLoaded: false, tfjsCoreMap: false, entry: true });
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('the benchmark coordinator (bench/servers/coordinator-server.ts) imports nothing that loads it', () => {
    // An unknown flag: it has imported everything and exits at once.
    const run = spawnSync(process.execPath, [...NODE_ARGS, 'bench/servers/coordinator-server.ts', '--no-such-flag'], {
      cwd: root,
      encoding: 'utf8',
    });
    assert.deepEqual(reportIn(run.stdout + run.stderr), { tfjsLoaded: false, tfjsCoreMap: false, entry: true });
  });

  it("the model thread's entry (run here as a script) loads tfjs before anything else, without its source maps", () => {
    // Outside a worker, thread.ts throws once its imports are done: tfjs is loaded by then. In the worker the same imports run in the same order.
    const run = spawnSync(process.execPath, [...NODE_ARGS, 'coordinator/model-thread/thread.ts'], { cwd: root, encoding: 'utf8' });
    assert.match(run.stderr, /runs as a worker thread/);
    assert.deepEqual(reportIn(run.stdout), { tfjsLoaded: true, tfjsCoreMap: false, entry: true });
  });
});
