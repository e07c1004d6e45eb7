import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkAggregate } from '../../core/aggregation/aggregate-guard.ts';
import { ClaimCappedStrategy } from '../../core/aggregation/claim-cap.ts';
import { FedAvg, WeightedSum } from '../../core/aggregation/fedavg.ts';
import { OutlierBoundedStrategy } from '../../core/aggregation/outlier-bound.ts';
import { FedAdam } from '../../core/aggregation/server-optimizers.ts';
import { ErrorCode, ProtocolError } from '../../core/protocol/errors.ts';
import { EngineHarness } from '../helpers/engine-harness.ts';

const result = (id: string, numExamples: number, update: number[]) => ({
  participantId: id,
  numExamples,
  update: Float32Array.from(update),
});

describe('aggregate guard', () => {
  it('refuses the Infinity that float32 conversion of a finite sum produces (the third round of 1e38 updates)', () => {
    // After two rounds of 1e38 updates the model sits near 2.5e38; one more, all inputs finite, passes float32's 3.4e38.
    const global = Float32Array.from([2.5e38, -0.2, 0.3]);
    const round = new WeightedSum(global);
    round.add(result('honest', 100, [0.01, 0.01, 0.01]));
    round.add(result('attacker', 1e8, [1e38, 1e38, -1e38]));
    const candidate = round.finish()!;
    assert.equal(candidate[0], Number.POSITIVE_INFINITY, 'FedAvg finish() converts to float32 unchecked');
    const check = checkAggregate(global, candidate, [1, 1, 1]);
    assert.equal(check.ok, false);
    assert.match((check as { reason: string }).reason, /not finite \(1 of 3 values/);
  });

  it('refuses NaN and Infinity, naming how many and where', () => {
    const check = checkAggregate(Float32Array.from([1, 1, 1]), Float32Array.from([1, Number.NaN, Number.POSITIVE_INFINITY]), [1, 1, 1]);
    assert.deepEqual(check.ok, false);
    assert.match((check as { reason: string }).reason, /2 of 3 values are NaN or ±Infinity, the first at index 1/);
  });

  it('refuses a change far above the median of recent changes, accepts one within the multiple', () => {
    const current = new Float32Array(4);
    const recent = [1, 1.2, 0.9, 100]; // median 1 (one outlier among the history does not move it)
    assert.equal(checkAggregate(current, Float32Array.from([5, 0, 0, 0]), recent).ok, true);
    const far = checkAggregate(current, Float32Array.from([20, 0, 0, 0]), recent);
    assert.equal(far.ok, false);
    assert.match(
      (far as { reason: string }).reason,
      /L2 norm 20\.00, above 10 × 1\.000 \(the median change norm of the last 4 committed rounds\)/,
    );
  });

  it('in warm-up compares with the model norm; a zero model only gets the finiteness check', () => {
    assert.equal(checkAggregate(Float32Array.from([1, 0]), Float32Array.from([1, 9]), []).ok, true);
    assert.equal(checkAggregate(Float32Array.from([1, 0]), Float32Array.from([1, 11]), []).ok, false);
    assert.equal(checkAggregate(Float32Array.from([0, 0]), Float32Array.from([1e30, 0]), []).ok, true);
  });

  it('skips a round whose aggregate is not finite before evaluating it, keeping the model, and records change norms of good ones', async () => {
    // A real FedAvg whose server learning rate makes the second round's aggregate overflow float32.
    const h = new EngineHarness({ minClients: 1, clientsPerRound: 1, rounds: 2 }, 4, new FedAvg({ serverLearningRate: 1e38 }));
    const a = h.join();
    h.engine.start();
    await h.settle();
    assert.ok(h.engine.submitUpdate(a, h.update(1, [0.5, 0, 0, 0])).ok);
    await h.settle();
    const first = h.engine.status().history[0]!;
    assert.equal(first.outcome, 'aggregated');
    assert.ok(Math.abs(first.changeNorm! / 5e37 - 1) < 1e-6);
    assert.ok(h.engine.submitUpdate(a, h.update(2, [10, 0, 0, 0])).ok);
    await h.settle();
    const second = h.engine.status().history[1]!;
    assert.equal(second.outcome, 'skipped');
    assert.equal(second.modelVersion, 1);
    assert.equal(second.modelHash, first.modelHash);
    assert.equal(second.metrics, undefined, 'never evaluated');
    assert.match(second.reason!, /not finite.*the round is skipped and the model is unchanged/);
    assert.equal(h.engine.globalModel.version, 1);
    assert.ok(h.engine.globalModel.weights.every(Number.isFinite));
  });
});

describe('a refused aggregate leaves no trace in the server optimizer', () => {
  const honest = [1e-20, -2e-20, 5e-21, 0];
  const reversed = honest.map((x) => -x);
  const overflowing = [10, 10, 10, 10];

  /**
   * Runs one round per update through the engine with FedAdam over a FedAvg whose server learning rate of 1e38
   * turns an update of 10 into a float32 Infinity (as the FedAvg test above), while tiny honest updates stay finite.
   */
  async function run(updates: readonly number[][]) {
    const adam = new FedAdam({ learningRate: 0.1, base: new FedAvg({ serverLearningRate: 1e38 }) });
    const h = new EngineHarness({ minClients: 1, clientsPerRound: 1, rounds: updates.length }, 4, adam);
    const a = h.join();
    h.engine.start();
    await h.settle();
    for (const [i, update] of updates.entries()) {
      assert.ok(h.engine.submitUpdate(a, h.update(i + 1, update)).ok);
      await h.settle();
    }
    return { adam, model: h.engine.globalModel, history: h.engine.status().history };
  }

  it('a round refused as not finite does not move the moments: the next round steps as if it never happened', async () => {
    // Before the fix the refused round left Infinity in the moments, and every later round was NaN and refused too.
    const withRefused = await run([honest, overflowing, reversed]);
    assert.deepEqual(
      withRefused.history.map((r) => r.outcome),
      ['aggregated', 'skipped', 'aggregated'],
    );
    assert.match(withRefused.history[1]!.reason!, /not finite/);
    const without = await run([honest, reversed]);
    assert.deepEqual(Array.from(withRefused.model.weights), Array.from(without.model.weights));
    assert.equal(withRefused.adam.steps, 2);
    assert.deepEqual(withRefused.adam.toJSON(), without.adam.toJSON());
  });

  it('undoLastStep restores the moments exactly, once', () => {
    const adam = new FedAdam({ learningRate: 0.1 });
    const global = Float32Array.from([0, 0]);
    adam.step(global, Float32Array.from([1, -1]));
    const after1 = adam.toJSON();
    adam.step(global, Float32Array.from([1e20, 3]));
    adam.undoLastStep();
    assert.deepEqual(adam.toJSON(), after1);
    assert.throws(() => adam.undoLastStep(), /no step to undo/);
    // The buffers a step reuses still give the same numbers as a fresh optimizer.
    const fresh = new FedAdam({ learningRate: 0.1 });
    fresh.step(global, Float32Array.from([1, -1]));
    const a = adam.step(global, Float32Array.from([0.5, 0.5]));
    const b = fresh.step(global, Float32Array.from([0.5, 0.5]));
    assert.deepEqual(Array.from(a), Array.from(b));
    assert.deepEqual(adam.toJSON(), fresh.toJSON());
  });
});

describe('outlier bound', () => {
  const begin = (s: OutlierBoundedStrategy, global: Float32Array) => s.beginRound({ round: 1, globalWeights: global });

  it('in warm-up refuses updates above the multiple of the model norm with UPDATE_OUTLIER', () => {
    const strategy = new OutlierBoundedStrategy(new FedAvg());
    const round = begin(strategy, Float32Array.from([3, 4])); // norm 5, bound 25
    round.add(result('a', 1, [20, 0]));
    assert.throws(
      () => round.add(result('b', 1, [1e38, 0])),
      (e: unknown) =>
        e instanceof ProtocolError &&
        e.code === ErrorCode.UpdateOutlier &&
        /above the outlier bound 25\.0000 \(5 × the global model's norm 5\.000 \(warm-up\)\)/.test(e.message),
    );
    assert.equal(round.count, 1);
  });

  it('uses the norm the coordinator computed while decoding (ClientResult.norm) instead of reading the update again', () => {
    const strategy = new OutlierBoundedStrategy(new FedAvg());
    const round = begin(strategy, Float32Array.from([3, 4])); // bound 25
    // The update itself is small; the norm that came with it is what the bound sees.
    assert.throws(
      () => round.add({ ...result('a', 1, [1, 0]), norm: 30 }),
      (e: unknown) => e instanceof ProtocolError && e.code === ErrorCode.UpdateOutlier && /update L2 norm 30\.0000/.test(e.message),
    );
    round.add({ ...result('b', 1, [1, 0]), norm: 1 });
    assert.equal(round.count, 1);
  });

  it('after warm-up bounds by 5 × the median of norms accepted in earlier rounds only', () => {
    const strategy = new OutlierBoundedStrategy(new FedAvg());
    const global = new Float32Array(2);
    const first = begin(strategy, global); // zero model: no bound in warm-up
    for (const n of [1, 2, 3]) first.add(result(String(n), 1, [n, 0]));
    first.finish();
    const second = begin(strategy, global);
    second.add(result('ok', 1, [10, 0])); // median 2: bound 10, at the bound is accepted
    assert.throws(
      () => second.add(result('far', 1, [10.01, 0])),
      (e: unknown) => e instanceof ProtocolError && e.code === ErrorCode.UpdateOutlier,
    );
    assert.equal(strategy.boundFor(global)?.bound, 10, 'accepted norms of the open round do not move the bound');
  });

  it("records a round's norms once when the leader takes its partial and then finishes it", () => {
    const strategy = new OutlierBoundedStrategy(new FedAvg());
    const global = Float32Array.from([3, 4]);
    const round = begin(strategy, global);
    for (const n of [2, 4]) round.add(result(String(n), 1, [n, 0]));
    assert.ok(round.partial);
    round.partial();
    round.finish();
    // Two norms recorded, below the warm-up of 3: still the model's norm (recorded twice, the median 2 would bound at 10).
    assert.equal(strategy.boundFor(global)?.bound, 25);
  });

  it('forgets nothing from abandoned rounds and passes secure sums through', () => {
    const strategy = new OutlierBoundedStrategy(new FedAvg());
    const round = begin(strategy, new Float32Array(1));
    for (const n of [1, 2, 3]) round.add(result(String(n), 1, [n]));
    round.abandon?.();
    assert.equal(strategy.boundFor(new Float32Array(1)), undefined, 'an abandoned round is not a reference');
    const secure = begin(strategy, Float32Array.from([1]));
    assert.ok(secure.addSum);
    secure.addSum!(Float64Array.from([3]), 3);
    assert.deepEqual(Array.from(secure.finish()!), [2]);
  });
});

describe('claimed example count cap', () => {
  it('caps a claim at 3 × the lower median of the join-time claims, so 1e8 buys no more than that', () => {
    const strategy = new ClaimCappedStrategy(new FedAvg(), { multiple: 3 });
    const round = strategy.beginRound({ round: 1, globalWeights: new Float32Array(1), claimedExamples: [100, 100, 100, 1e8] });
    round.add(result('h1', 100, [0]));
    round.add(result('h2', 100, [0]));
    round.add(result('h3', 100, [0]));
    round.add(result('liar', 1e8, [6]));
    // Weight 300 against 300 honest: the mean is 6 × 300 / 600 = 3 (without the cap, ~6).
    assert.deepEqual(Array.from(round.finish()!), [3]);
  });

  it('after warm-up takes the median of counts aggregated in earlier rounds, not of who joined', () => {
    const strategy = new ClaimCappedStrategy(new FedAvg(), { multiple: 3 });
    const first = strategy.beginRound({ round: 1, globalWeights: new Float32Array(1), claimedExamples: [100, 100, 100] });
    for (const id of ['a', 'b', 'c']) first.add(result(id, 100, [0]));
    first.finish();
    // Sybils that joined claiming 1 example cannot pull the cap down below 3 × 100.
    assert.equal(strategy.capFor([1, 1, 1, 1, 100, 100, 100]), 300);
  });

  it("records a round's counts once when the leader takes its partial and then finishes it", () => {
    const strategy = new ClaimCappedStrategy(new FedAvg(), { multiple: 3 });
    const round = strategy.beginRound({ round: 1, globalWeights: new Float32Array(1), claimedExamples: [100, 100] });
    round.add(result('a', 10, [0]));
    round.add(result('b', 20, [0]));
    assert.ok(round.partial);
    round.partial();
    round.finish();
    // Two counts recorded, below the warm-up of 3: the join-time claims still set the cap (recorded twice: 3 × 10).
    assert.equal(strategy.capFor([100, 100]), 300);
  });

  it('applies the task-level maximum, alone or with the multiple', () => {
    assert.equal(new ClaimCappedStrategy(new FedAvg(), { maxPerParticipant: 50 }).capFor([100, 100]), 50);
    assert.equal(new ClaimCappedStrategy(new FedAvg(), { multiple: 3, maxPerParticipant: 1000 }).capFor([100, 100]), 300);
    assert.equal(new ClaimCappedStrategy(new FedAvg(), { multiple: 3 }).capFor(undefined), Number.POSITIVE_INFINITY);
  });
});
