import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FedAvg, WeightedSum } from '../../core/aggregation/fedavg.ts';

const result = (id: string, numExamples: number, update: number[]) => ({
  participantId: id,
  numExamples,
  update: Float32Array.from(update),
});

describe('FedAvg', () => {
  it('weights updates by example count (hand-computed)', () => {
    const global = Float32Array.from([1, 2, 3]);
    const agg = new FedAvg().beginRound({ round: 1, globalWeights: global });
    agg.add(result('a', 10, [1, 0, -1]));
    agg.add(result('b', 30, [-1, 4, 1]));
    // mean = (10*[1,0,-1] + 30*[-1,4,1]) / 40 = [-0.5, 3, 0.5]
    assert.deepEqual(Array.from(agg.finish()!), [0.5, 5, 3.5]);
    assert.equal(agg.count, 2);
    assert.deepEqual(Array.from(global), [1, 2, 3], 'global weights are not mutated');
  });

  it('applies a server learning rate', () => {
    const agg = new FedAvg({ serverLearningRate: 0.5 }).beginRound({ round: 1, globalWeights: Float32Array.from([0, 0]) });
    agg.add(result('a', 1, [2, -4]));
    assert.deepEqual(Array.from(agg.finish()!), [1, -2]);
  });

  it('returns null with no results and refuses wrong lengths', () => {
    const agg = new WeightedSum(Float32Array.from([1, 2]));
    assert.equal(agg.finish(), null);
    assert.throws(() => agg.add(result('a', 1, [1, 2, 3])), RangeError);
    assert.throws(() => agg.add(result('a', 0, [1, 2])), RangeError);
  });

  it('sums every value, whatever the length modulo 4 (the sum runs four values a step)', () => {
    for (let n = 1; n <= 9; n++) {
      const global = Float32Array.from({ length: n }, (_, i) => i / 7);
      const a = Float32Array.from({ length: n }, (_, i) => Math.sin(i + 1));
      const b = Float32Array.from({ length: n }, (_, i) => Math.cos(i + 1));
      const round = new WeightedSum(global);
      round.add({ participantId: 'a', numExamples: 3, update: a });
      round.add({ participantId: 'b', numExamples: 5, update: b });
      const expected = Float32Array.from({ length: n }, (_, i) => global[i]! + (3 * a[i]! + 5 * b[i]!) / 8);
      assert.deepEqual(round.finish(), expected, `n = ${n}`);
    }
  });

  it('equals the plain weighted mean for many participants (float64 accumulation)', () => {
    const n = 200;
    const dim = 50;
    const global = new Float32Array(dim);
    const agg = new FedAvg().beginRound({ round: 1, globalWeights: global });
    const expected = new Float64Array(dim);
    let total = 0;
    for (let i = 0; i < n; i++) {
      const update = Float32Array.from({ length: dim }, (_, j) => Math.sin(i * 31 + j) * 1e-3);
      const count = 1 + (i % 7);
      agg.add({ participantId: String(i), numExamples: count, update });
      for (let j = 0; j < dim; j++) expected[j]! += count * update[j]!;
      total += count;
    }
    const out = agg.finish()!;
    for (let j = 0; j < dim; j++) assert.ok(Math.abs(out[j]! - expected[j]! / total) < 1e-9);
  });
});
