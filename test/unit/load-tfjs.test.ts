import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';

const root = path.resolve(import.meta.dirname, '../..');

/** Which source maps a coordinator entry point leaves in Node's cache, run in a process of its own until it exits. */
function sourceMapsAfter(entry: string, args: string[]): { tfjsCore: boolean; entry: boolean } {
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--import', './test/helpers/report-source-maps.ts', entry, ...args], {
    cwd: root,
    encoding: 'utf8',
  });
  const line = /source maps (\{.*\})/.exec(run.stdout);
  assert.ok(line, `no report from ${entry}: ${run.stdout}${run.stderr}`);
  return JSON.parse(line[1]!);
}

describe('coordinator entry points load tfjs without its source maps', () => {
  it('npm start (coordinator/cli.ts): tfjs has none, our TypeScript keeps its own', () => {
    assert.deepEqual(sourceMapsAfter('coordinator/cli.ts', ['--help']), { tfjsCore: false, entry: true });
  });

  it('the benchmark coordinator (bench/servers/coordinator-server.ts) loads it the same way', () => {
    // An unknown flag: it has loaded everything and exits at once.
    assert.deepEqual(sourceMapsAfter('bench/servers/coordinator-server.ts', ['--no-such-flag']), {
      tfjsCore: false,
      entry: true,
    });
  });
});
