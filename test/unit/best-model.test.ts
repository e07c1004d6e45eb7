import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { FedAvg } from '../../core/aggregation/fedavg.ts';
import { bestRound, roundsWithoutImprovement } from '../../coordinator/rounds/best-round.ts';
import { BestModelStore } from '../../coordinator/storage/best-model.ts';
import type { RoundRecord } from '../../core/protocol/status.ts';
import { EngineHarness } from '../helpers/engine-harness.ts';

/** Runs one round in which both participants send `delta` on the first weight (the harness reads accuracy off it). */
async function round(h: EngineHarness, ids: readonly string[], n: number, delta: number): Promise<void> {
  await h.settle();
  for (const id of h.selectedIn(n)) assert.ok(h.engine.submitUpdate(id, h.update(n, [delta, 0, 0, 0])).ok, `round ${n}`);
  assert.equal(h.selectedIn(n).length, ids.length);
  await h.settle();
}

const record = (round: number, accuracy?: number, loss = 1, outcome: RoundRecord['outcome'] = 'aggregated'): RoundRecord => ({
  round,
  outcome,
  modelVersion: round,
  metrics: accuracy === undefined ? undefined : { accuracy, loss },
  selected: 1,
  received: 1,
  dropped: 0,
  rejected: 0,
  declined: 0,
  bytesIn: 0,
  bytesOut: 0,
  startedAt: 0,
  durationMs: 0,
});

describe('best model and early stopping', () => {
  it('the best round is the highest accuracy, then the lowest loss, the earliest of equals; skipped rounds do not count', () => {
    const history = [
      record(1, 0.7, 0.5),
      record(2, 0.9, 0.4),
      record(3, 0.9, 0.3),
      record(4, 0.9, 0.3),
      record(5, undefined, 1, 'skipped'),
      record(6, 0.8),
    ];
    assert.equal(bestRound(history)?.round, 3);
    assert.equal(roundsWithoutImprovement(history), 2, 'rounds 4 and 6 were evaluated after it; the skipped round 5 was not');
    assert.equal(bestRound([record(1, undefined, 1, 'skipped')]), undefined);
  });

  it('--early-stopping-patience stops after N evaluated rounds without improvement and says so; status shows best and last', async () => {
    const h = new EngineHarness({ clientsPerRound: 2, rounds: 10, earlyStoppingPatience: 2 });
    const ids = [h.join(), h.join()];
    h.engine.start();
    await round(h, ids, 1, 0.5); // accuracy 0.5
    await round(h, ids, 2, 0.2); // 0.7: the best
    const running = h.engine.status();
    assert.equal(running.best?.round, 2);
    assert.equal(running.best?.roundsSince, 0);
    await round(h, ids, 3, -0.1); // 0.6
    assert.equal(h.engine.status().done, false, 'one round without improvement is within the patience');
    await round(h, ids, 4, -0.1); // 0.5
    const final = h.engine.status();
    assert.equal(final.done, true);
    assert.equal(final.history.length, 4);
    assert.match(
      final.doneReason ?? '',
      /^early stopping: no better test accuracy in the 2 evaluated rounds since round 2 \(patience 2; best accuracy 0\.7000, kept in best\/\)$/,
    );
    assert.equal(final.best?.round, 2);
    assert.equal(final.best?.modelHash, final.history[1]!.modelHash);
    assert.ok(Math.abs(final.best!.metrics.accuracy - 0.7) < 1e-6);
    assert.ok(Math.abs(final.history.at(-1)!.metrics!.accuracy - 0.5) < 1e-6, 'the last model is worse than the best');
    assert.equal(h.done.at(-1)?.reason, final.doneReason);
  });

  it('best/ holds model.json, weights.bin and best.json; a torn weights.bin is detected', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'fl-best-'));
    try {
      const store = new BestModelStore(dir);
      assert.equal(await store.load(), undefined);
      const weightsBin = new Uint8Array(new Float32Array([1, 2, 3]).buffer);
      const modelHash = createHash('sha256').update(weightsBin).digest('hex');
      const info = { version: 1 as const, round: 4, modelVersion: 4, modelHash, metrics: { accuracy: 0.9, loss: 0.2 }, savedAt: 1 };
      await store.save(info, { modelJson: '{"weightsManifest":[]}', weightsBin });
      const loaded = await store.load();
      assert.deepEqual(loaded?.info, info);
      assert.deepEqual([...loaded!.files.weightsBin], [...weightsBin]);
      await assert.rejects(
        store.save({ ...info, modelHash: 'ab' }, { modelJson: '{}', weightsBin }),
        /does not match the round's model hash/,
      );
      await writeFile(path.join(dir, 'best', 'weights.bin'), new Uint8Array(8));
      await assert.rejects(store.load(), /weights\.bin does not match best\.json \(round 4\)/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('FedAvg server learning-rate decay', () => {
  it('round t applies lr × D^(t−1) to the averaged update', () => {
    const fedavg = new FedAvg({ serverLearningRate: 2, serverLearningRateDecay: 0.5 });
    const applied = (round: number) => {
      const aggregator = fedavg.beginRound({ round, globalWeights: new Float32Array([0]) });
      aggregator.add({ participantId: 'a', numExamples: 1, update: new Float32Array([1]) });
      return aggregator.finish()![0];
    };
    assert.deepEqual([1, 2, 3].map(applied), [2, 1, 0.5]);
    assert.throws(() => new FedAvg({ serverLearningRateDecay: 1.5 }), /in \(0, 1\]/);
  });

  it('--server-lr-decay and --early-stopping-patience are checked flags', () => {
    const base = ['--port', '0'];
    const config = parseConfig([...base, '--server-lr-decay', '0.9', '--early-stopping-patience', '4']) as CoordinatorConfig;
    assert.equal(config.strategy?.serverLearningRateDecay, 0.9);
    assert.equal(config.settings.earlyStoppingPatience, 4);
    assert.throws(
      () => parseConfig([...base, '--server-lr-decay', '0']),
      (e: unknown) => e instanceof ConfigError && /\(0, 1\]/.test(e.message),
    );
    assert.throws(
      () => parseConfig([...base, '--server-lr-decay', '0.9', '--strategy', 'median']),
      (e: unknown) => e instanceof ConfigError && /plain FedAvg only/.test(e.message),
    );
    assert.throws(
      () => parseConfig([...base, '--early-stopping-patience', '0']),
      (e: unknown) => e instanceof ConfigError && /positive integer/.test(e.message),
    );
  });
});
