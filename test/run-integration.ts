import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';

/**
 * `npm run test:integration`: the integration and conformance files, in two
 * runs of `node --test`. The files below run two at a time: each runs its
 * coordinator in its own process, spawns nothing, shares nothing with another
 * file (own data folder, port 0) and asserts no wall-clock time, so a second
 * file on the other core changes none of their results, only how long they
 * take (docs/test-time.md). Every other file, and every file added later
 * until it is listed here, runs one at a time as before: those that kill and
 * restart processes, time leases, deadlines or floods, or measure memory.
 */
const TWO_AT_A_TIME = new Set([
  'test/conformance/conformance.test.ts',
  'test/integration/accountant-resume.test.ts',
  'test/integration/best-model-repair.test.ts',
  'test/integration/byzantine.test.ts',
  'test/integration/client-dp.test.ts',
  'test/integration/compression-privatized-input.test.ts',
  'test/integration/compression.test.ts',
  'test/integration/dashboard-admin.test.ts',
  'test/integration/fine-tune.test.ts',
  'test/integration/hostile-poisoning.test.ts',
  'test/integration/image-task.test.ts',
  'test/integration/metrics.test.ts',
  'test/integration/sample-dp.test.ts',
  'test/integration/secagg-compression.test.ts',
  'test/integration/secagg-dp.test.ts',
  'test/integration/secagg-garbage.test.ts',
  'test/integration/secagg-hostile.test.ts',
  'test/integration/secagg.test.ts',
  'test/integration/tabular-task.test.ts',
]);

const root = path.resolve(import.meta.dirname, '..');
const files = ['test/integration', 'test/conformance'].flatMap((dir) =>
  readdirSync(path.join(root, dir))
    .filter((name) => name.endsWith('.test.ts'))
    .sort()
    .map((name) => `${dir}/${name}`),
);
const missing = [...TWO_AT_A_TIME].filter((file) => !files.includes(file));
if (missing.length > 0) throw new Error(`run-integration.ts lists files that do not exist: ${missing.join(', ')}`);

let failed = false;
for (const [concurrency, group] of [
  [2, files.filter((file) => TWO_AT_A_TIME.has(file))],
  [1, files.filter((file) => !TWO_AT_A_TIME.has(file))],
] as const) {
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, ...group], {
    cwd: root,
    stdio: 'inherit',
  });
  if (run.status !== 0) failed = true;
}
process.exitCode = failed ? 1 : 0;
