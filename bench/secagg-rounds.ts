import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseConfig, type CoordinatorConfig } from '../coordinator/config.ts';
import { startCoordinator } from '../coordinator/server.ts';
import { Participant } from '../core/participant/participant.ts';
import type { RoundTrainer, RoundTrainResult } from '../core/participant/trainers.ts';

/**
 * Round time with and without secure aggregation, through the real
 * coordinator and real participant clients over socket.io. Training is
 * replaced by a fixed update (the benchmark measures the protocol, not
 * tfjs): each participant answers its round at once with the same
 * 2NN-sized update (199,210 parameters), so the difference between the two
 * runs is what masking, key exchange, shares and unmasking cost.
 */
const { values: flags } = parseArgs({
  options: { sizes: { type: 'string', default: '10,50' }, rounds: { type: 'string', default: '4' }, help: { type: 'boolean' } },
});
if (flags.help) {
  console.log('Usage: npx tsx bench/secagg-rounds.ts [--sizes 10,50] [--rounds 4]');
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
    '--port', '0', '--host', '127.0.0.1', '--quiet', '--model', '2nn', '--data-dir', dataDir, '--rounds', String(rounds),
    '--min-clients', String(n), '--clients-per-round', String(n), '--min-updates', String(n), '--round-timeout', '600', '--open',
    ...(secure ? ['--secure-aggregation', '--secagg-step-timeout', '300'] : []),
  ]) as CoordinatorConfig;
  const coordinator = await startCoordinator(config);
  const update = new Float32Array(coordinator.task.paramCount).map((_, i) => Math.sin(i) * 1e-3);
  const participants = Array.from({ length: n }, () => new Participant({ url: coordinator.url, client: { backend: 'bench' }, trainer: new FixedUpdate(update) }));
  for (const p of participants) p.start();
  const final = await coordinator.done;
  for (const p of participants) p.stop();
  await coordinator.close();
  rmSync(dataDir, { recursive: true, force: true });
  const failed = final.history.filter((r) => r.outcome !== 'aggregated');
  if (failed.length) throw new Error(`rounds not aggregated: ${failed.map((r) => `${r.round}: ${r.reason}`).join('; ')}`);
  // Round 1 includes connecting and warming up; the rest are timed.
  const times = final.history.slice(1).map((r) => r.durationMs).sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

const rounds = Number(flags.rounds);
console.log(`Round time through the coordinator, 199,210-parameter updates, fixed update instead of training, median of rounds 2..${rounds}\n`);
console.log('| participants | plaintext round | secure-aggregation round (all pairs) | ratio |');
console.log('|---:|---:|---:|---:|');
for (const n of flags.sizes!.split(',').map(Number)) {
  const plain = await medianRoundMs(n, rounds, false);
  const secure = await medianRoundMs(n, rounds, true);
  console.log(`| ${n} | ${plain.toFixed(0)} ms | ${secure.toFixed(0)} ms | ${(secure / plain).toFixed(2)} |`);
}
process.exit(0);
