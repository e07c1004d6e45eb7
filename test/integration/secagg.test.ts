import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { startCoordinator, type Coordinator } from '../../coordinator/server.ts';
import { loadMnistDemo } from '../../coordinator/task/demo-data.ts';
import { erfc } from '../../core/privacy/math.ts';
import type { SecAggResult } from '../../core/secagg/protocol.ts';
import { startNodeParticipants, stopNodeParticipants, type NodeParticipant } from '../helpers/node-participants.ts';

/**
 * Secure aggregation over socket.io with the real coordinator and ten real
 * Node participants: one drops after the key exchange (before its masked
 * input), three drop right after their masked input was accepted. The
 * round must still complete, the decoded sum must equal the plain sum of
 * the nine updates inside it to within the quantisation bound, and what the
 * coordinator stored of each masked vector must look uniform.
 */
describe('secure aggregation with Node participants', () => {
  let coordinator: Coordinator;
  let dataDir: string;
  let participants: NodeParticipant[] = [];
  const masked = new Map<string, Uint32Array>();
  let finished: { result: SecAggResult; contributors: readonly string[] } | undefined;

  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'fl-secagg-'));
    const config = parseConfig(
      [
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--rounds',
        '1',
        '--min-clients',
        '10',
        '--clients-per-round',
        '10',
        '--min-updates',
        '3',
        '--round-timeout',
        '120',
        '--secure-aggregation',
        '--secagg-step-timeout',
        '20',
        '--data-dir',
        dataDir,
        '--quiet',
      ],
      {},
    ) as CoordinatorConfig;
    coordinator = await startCoordinator(config, {
      secaggObserver: {
        masked: (_round, id, vector) => masked.set(id, vector.slice()),
        finished: (_round, result, contributors) => (finished = { result, contributors }),
      },
    });
  });

  after(async () => {
    stopNodeParticipants(participants);
    await coordinator?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('completes a round with 1 dropout before and 3 after the masked input', { timeout: 300_000 }, async () => {
    const demo = await loadMnistDemo();
    const plain = new Map<number, Float32Array>();
    participants = await startNodeParticipants(coordinator.url, demo, coordinator.task, 10, {
      onPlainUpdate: (k, _round, update) => plain.set(k, update),
    });
    // Participant 0 leaves once the shares are forwarded; 1, 2, 3 right after their masked input is accepted.
    participants[0]!.participant.socket.on('secagg:forwarded', () => participants[0]!.participant.stop());
    for (const k of [1, 2, 3]) {
      const p = participants[k]!;
      const original = p.events.push.bind(p.events);
      p.events.push = (...items) => {
        for (const e of items) if (e.type === 'secagg' && e.step === 'masked') p.participant.stop();
        return original(...items);
      };
    }

    const final = await coordinator.done;
    const round = final.history[0]!;
    if (round.outcome !== 'aggregated') console.log(JSON.stringify(participants[5]!.events.filter((e) => e.type !== 'progress')));
    assert.equal(round.outcome, 'aggregated', round.reason);
    const stats = round.secagg!;
    assert.deepEqual(
      {
        advertised: stats.advertised,
        shared: stats.shared,
        masked: stats.masked,
        recovered: stats.dropoutsRecovered,
        aborted: stats.aborted,
      },
      { advertised: 10, shared: 10, masked: 9, recovered: 1, aborted: undefined },
    );
    assert.equal(stats.unmasked, 6, 'six survivors answered the unmasking step');
    assert.equal(round.received, 9);

    // The decoded sum against the plain sum of the nine contributors' updates.
    assert.ok(finished);
    const ids = participants.map((p) => p.participant.id);
    const contributors = finished.contributors.map((id) => ids.indexOf(id));
    assert.deepEqual([...contributors].sort(), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const { sum, errorBound } = finished.result;
    let worst = 0;
    for (let i = 0; i < sum.length; i++) {
      let expected = 0;
      for (const k of contributors) expected += Math.max(-8, Math.min(8, plain.get(k)![i]!));
      worst = Math.max(worst, Math.abs(sum[i]! - expected));
    }
    assert.ok(worst < errorBound, `largest error ${worst} is below the bound ${errorBound}`);

    // The new global model is the old one plus the unweighted mean of the contributors' updates.
    assert.equal(masked.size, 9);
    // What came in for the round: nine masked vectors of 4 bytes per parameter.
    assert.equal(coordinator.engine.status().history[0]!.bytesIn, 9 * 4 * coordinator.task.paramCount);
    // Each stored masked vector: 16 buckets of the top 4 bits (15 d.o.f.) and the 256 values of the low
    // byte (255 d.o.f.). 18 tests per run: each at α = 1e-4 / 18 (Bonferroni), so a uniform vector fails
    // this test once in 10,000 runs, and a biased one (a repeated or missing mask) fails it every time.
    const alpha = 1e-4 / (2 * masked.size);
    const limit15 = chiSquareQuantile(15, alpha);
    const limit255 = chiSquareQuantile(255, alpha);
    for (const [id, vector] of masked) {
      const buckets = new Array<number>(16).fill(0);
      for (let i = 0; i < vector.length; i++) buckets[vector[i]! >>> 28]!++;
      const expected = vector.length / 16;
      const chi2 = buckets.reduce((acc, b) => acc + (b - expected) ** 2 / expected, 0);
      assert.ok(
        chi2 < limit15,
        `masked vector of ${id} is not uniform: chi2 ${chi2.toFixed(1)} > ${limit15.toFixed(1)}, buckets ${buckets}`,
      );
      // Its low byte too.
      const low = new Array<number>(256).fill(0);
      for (let i = 0; i < vector.length; i++) low[vector[i]! & 0xff]!++;
      const e2 = vector.length / 256;
      const chiLow = low.reduce((acc, b) => acc + (b - e2) ** 2 / e2, 0);
      assert.ok(chiLow < limit255, `low byte of ${id}: chi2 ${chiLow.toFixed(1)} > ${limit255.toFixed(1)}`);
    }
  });
});

/** Upper-α quantile of χ² with k degrees of freedom, by the Wilson–Hilferty approximation (accurate to ~1% here). */
function chiSquareQuantile(k: number, alpha: number): number {
  // z: the upper-α quantile of the standard normal, by bisection on erfc.
  let lo = 0;
  let hi = 10;
  for (let i = 0; i < 100; i++) {
    const mid = (lo + hi) / 2;
    if (0.5 * erfc(mid / Math.SQRT2) > alpha) lo = mid;
    else hi = mid;
  }
  const z = (lo + hi) / 2;
  const c = 2 / (9 * k);
  return k * (1 - c + z * Math.sqrt(c)) ** 3;
}
