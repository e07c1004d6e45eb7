import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseConfig, type CoordinatorConfig } from '../coordinator/config.ts';
import { startCoordinator } from '../coordinator/server.ts';
import { initNodeBackend } from '../coordinator/tf-node.ts';
import { Participant } from '../core/participant/participant.ts';
import { PlainRoundTrainer, type RoundTrainer, type RoundTrainResult } from '../core/participant/trainers.ts';
import { shardIndices, subset } from '../core/data/dataset.ts';
import { LocalTrainer } from '../core/training/local-trainer.ts';
import { loadMnistDemo } from '../coordinator/task/demo-data.ts';

/**
 * Round time with and without secure aggregation, through the real
 * coordinator and real participant clients over socket.io, 2NN updates
 * (199,210 parameters). Two modes:
 * - protocol only (default): each participant answers at once with a fixed
 *   update, so the difference is exactly what masking, key exchange, shares
 *   and unmasking cost;
 * - `--train`: each participant really trains one epoch on its demo shard
 *   (tfjs WASM, all participants in this one process), as in a real round.
 */
const { values: flags } = parseArgs({
  options: {
    sizes: { type: 'string', default: '10,50' },
    rounds: { type: 'string', default: '4' },
    train: { type: 'boolean' },
    help: { type: 'boolean' },
  },
});
if (flags.help) {
  console.log('Usage: npx tsx bench/secagg-rounds.ts [--sizes 10,50] [--rounds 4] [--train]');
  process.exit(0);
}

/** Answers every round at once with a fixed update: stands in for local training, which is not measured here. */
class FixedUpdate implements RoundTrainer {
  readonly numExamples = 100;
  readonly differentiallyPrivate = false;
  constructor(private readonly update: Float32Array) {}
  async train(): Promise<RoundTrainResult> {
    return { update: this.update.slice(), metrics: { loss: 1, accuracy: 0.5 }, numExamples: this.numExamples, trainMs: 0 };
  }
}

async function medianRoundMs(n: number, rounds: number, secure: boolean): Promise<number> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'fl-bench-secagg-'));
  const config = parseConfig([
    '--port',
    '0',
    '--host',
    '127.0.0.1',
    '--quiet',
    '--model',
    '2nn',
    '--data-dir',
    dataDir,
    '--rounds',
    String(rounds),
    '--min-clients',
    String(n),
    '--clients-per-round',
    String(n),
    '--min-updates',
    String(n),
    '--round-timeout',
    '600',
    '--open',
    ...(secure ? ['--secure-aggregation', '--secagg-step-timeout', '300'] : []),
  ]) as CoordinatorConfig;
  const coordinator = await startCoordinator(config);
  // The participants' backend, in this thread (the coordinator's tfjs is in its model thread).
  await initNodeBackend();
  const update = new Float32Array(coordinator.task.paramCount).map((_, i) => Math.sin(i) * 1e-3);
  const demo = flags.train ? await loadMnistDemo() : undefined;
  const trainers = Array.from({ length: n }, (_, k) =>
    demo
      ? new LocalTrainer(coordinator.task.model, subset(demo.train, shardIndices(demo.train.labels, { index: k, count: n, skew: 'iid' })))
      : undefined,
  );
  const participants = trainers.map(
    (local) =>
      new Participant({
        url: coordinator.url,
        client: { backend: 'bench' },
        trainer: local ? new PlainRoundTrainer(local) : new FixedUpdate(update),
      }),
  );
  for (const p of participants) p.start();
  const final = await coordinator.done;
  for (const p of participants) p.stop();
  for (const t of trainers) t?.dispose();
  await coordinator.close();
  rmSync(dataDir, { recursive: true, force: true });
  const failed = final.history.filter((r) => r.outcome !== 'aggregated');
  if (failed.length) throw new Error(`rounds not aggregated: ${failed.map((r) => `${r.round}: ${r.reason}`).join('; ')}`);
  // Round 1 includes connecting and warming up; the rest are timed.
  const times = final.history
    .slice(1)
    .map((r) => r.durationMs)
    .sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

const rounds = Number(flags.rounds);
console.log(
  `Round time through the coordinator, 199,210-parameter updates, ${flags.train ? 'one local epoch of real training' : 'a fixed update instead of training'}, median of rounds 2..${rounds}\n`,
);
console.log('| participants | plaintext round | secure-aggregation round (all pairs) | ratio |');
console.log('|---:|---:|---:|---:|');
for (const n of flags.sizes!.split(',').map(Number)) {
  const plain = await medianRoundMs(n, rounds, false);
  const secure = await medianRoundMs(n, rounds, true);
  console.log(`| ${n} | ${plain.toFixed(0)} ms | ${secure.toFixed(0)} ms | ${(secure / plain).toFixed(2)} |`);
}
process.exit(0);
