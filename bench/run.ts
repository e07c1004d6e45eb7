import { spawnSync } from 'node:child_process';
import path from 'node:path';

/**
 * `npm run bench`: every benchmark in turn, or those named
 * (`npm run bench -- coordinator dp-sgd`). Everything from the first flag on
 * (`npm run bench -- cluster --nodes 2 --participants 1000`), values included,
 * goes to each benchmark run. Results and commands are kept in
 * docs/BENCHMARKS.md.
 */
const BENCHMARKS: Record<string, string> = {
  async: 'bench/async.ts',
  client: 'bench/client.ts',
  cluster: 'bench/cluster.ts',
  'cluster-store': 'bench/cluster-store.ts',
  coordinator: 'bench/coordinator.ts',
  compression: 'bench/compression.ts',
  'data-ingest': 'bench/data-ingest.ts',
  'dp-sgd': 'bench/dp-sgd.ts',
  'federated-vs-central': 'bench/federated-vs-central.ts',
  'participant-memory': 'bench/participant-memory.ts',
  'privacy-accountants': 'bench/privacy-accountants.ts',
  'privacy-distributed': 'bench/privacy-distributed.ts',
  'privacy-utility': 'bench/privacy-utility.ts',
  secagg: 'bench/secagg.ts',
  'secagg-rounds': 'bench/secagg-rounds.ts',
};

const args = process.argv.slice(2);
const firstFlag = args.findIndex((a) => a.startsWith('--'));
const names = firstFlag < 0 ? args : args.slice(0, firstFlag);
const flags = firstFlag < 0 ? [] : args.slice(firstFlag);
const unknown = names.filter((n) => !(n in BENCHMARKS));
if (unknown.length > 0) {
  console.error(`unknown benchmark: ${unknown.join(', ')}; choose from ${Object.keys(BENCHMARKS).join(', ')}`);
  process.exit(2);
}
const selected = names.length > 0 ? names : Object.keys(BENCHMARKS);
const root = path.resolve(import.meta.dirname, '..');

if (selected.includes('client')) {
  const build = spawnSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
  if (build.status !== 0) process.exit(build.status ?? 1);
}
for (const name of selected) {
  console.log(`\n## ${name}\n`);
  const run = spawnSync(process.execPath, ['--import', 'tsx', BENCHMARKS[name]!, ...flags], { cwd: root, stdio: 'inherit' });
  if (run.status !== 0) {
    console.error(`benchmark ${name} failed with exit code ${run.status}`);
    process.exit(run.status ?? 1);
  }
}
