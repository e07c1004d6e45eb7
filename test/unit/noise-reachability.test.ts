import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { addGridNoise, noisyGradientSum } from '../../core/privacy/dp-sgd.ts';
import { dpSgdGrid, clientLevelGrid, noiseOnGrid, type GridNoisePlan } from '../../core/privacy/grid-noise.ts';
import { GaussianSampler } from '../../core/privacy/update-privacy.ts';
import { SeededRandom } from '../../core/random/prng.ts';
import { initNodeBackend } from '../../coordinator/tf-node.ts';

/**
 * Exact reachability (Mironov 2012): σC = 1, neighbouring clipped sums s0 and
 * s1 = s0 + 1. Outputs are drawn from s0 through the mechanism; an output is
 * "unreachable" when NO noise value the mechanism can add turns s1 into it.
 * Any unreachable output is a certain distinguisher, so the fraction of them
 * lower-bounds δ. Every mechanism here is monotone in its noise, so a binary
 * search over the noise domain (ordered float32 values for the old path,
 * integers for the grid path), one vectorised tensor call per halving,
 * decides reachability exactly for every output at once.
 */

const TRIALS = 20_000;
const C = 1;
const SIGMA = 1;

/** float32 ↔ a monotone integer key (total order of finite floats). */
const f32 = new Float32Array(1);
const i32 = new Int32Array(f32.buffer);
function keyOf(x: number): number {
  f32[0] = x;
  const bits = i32[0]!;
  return bits >= 0 ? bits : -(bits & 0x7fffffff);
}
function floatOf(key: number): number {
  i32[0] = key >= 0 ? key : -key | 0x80000000 | 0;
  return f32[0]!;
}

/** The old mechanism, as dp-sgd.ts had it: tf.add(sum, float32 noise). */
function oldNoisySum(sum: tf.Tensor, noise: Float32Array): tf.Tensor {
  return tf.add(sum, tf.tensor(noise, sum.shape, 'float32'));
}

/** A one-step round's released update at weight w: (w − lr/B · noisy) − w, as dpSgdStep and readWeights compute it. */
function updateAt(weight: number, noisy: tf.Tensor, scale: number): Float32Array {
  const w = tf.fill(noisy.shape, weight, 'float32');
  const next = tf.tidy(() => tf.sub(w, tf.mul(noisy, scale)));
  const trained = next.dataSync() as Float32Array;
  const out = new Float32Array(trained.length);
  // readWeights gives float32 weights; the update is trained − global in a Float32Array.
  for (let i = 0; i < out.length; i++) out[i] = trained[i]! - Math.fround(weight);
  tf.dispose([w, next]);
  return out;
}

type Release = (sum: tf.Tensor, noise: Float32Array) => Float32Array;

/**
 * The fraction of `outputs` (drawn from some s0) that `release(s1, n)` reaches
 * for no noise n in [lowKey, highKey] (keys of the noise domain). `release` is
 * non-decreasing (direction 1) or non-increasing (−1) in the noise.
 */
function unreachableFraction(
  outputs: Float32Array,
  s1: number,
  release: Release,
  noiseOfKey: (key: number) => number,
  lowKey: number,
  highKey: number,
  direction: 1 | -1,
): number {
  const n = outputs.length;
  const lo = new Float64Array(n).fill(lowKey);
  const hi = new Float64Array(n).fill(highKey);
  const sum = tf.fill([n], s1, 'float32');
  const noise = new Float32Array(n);
  // Smallest key with direction·release(key) ≥ direction·output.
  while (true) {
    let open = false;
    for (let i = 0; i < n; i++) {
      noise[i] = noiseOfKey(Math.floor((lo[i]! + hi[i]!) / 2));
      if (lo[i]! < hi[i]!) open = true;
    }
    if (!open) break;
    const out = release(sum, noise);
    for (let i = 0; i < n; i++) {
      if (lo[i]! >= hi[i]!) continue;
      const mid = Math.floor((lo[i]! + hi[i]!) / 2);
      if (direction * out[i]! >= direction * outputs[i]!) hi[i] = mid;
      else lo[i] = mid + 1;
    }
  }
  for (let i = 0; i < n; i++) noise[i] = noiseOfKey(lo[i]!);
  const found = release(sum, noise);
  sum.dispose();
  let unreachable = 0;
  for (let i = 0; i < n; i++) if (found[i] !== outputs[i]) unreachable++;
  return unreachable / n;
}

function draw(s0: number, release: Release, noise: Float32Array): Float32Array {
  const sum = tf.fill([noise.length], s0, 'float32');
  const out = release(sum, noise);
  sum.dispose();
  return out;
}

function oldNoise(seed: number): Float32Array {
  const sampler = new GaussianSampler(new SeededRandom(seed));
  const noise = new Float32Array(TRIALS);
  for (let i = 0; i < TRIALS; i++) noise[i] = SIGMA * C * sampler.next();
  return noise;
}

const FLOAT_LOW = keyOf(-1e4);
const FLOAT_HIGH = keyOf(1e4);

function gridNoise(plan: GridNoisePlan, seed: number): Float32Array {
  const sampler = new GaussianSampler(new SeededRandom(seed));
  const noise = new Float32Array(TRIALS);
  for (let i = 0; i < TRIALS; i++)
    noise[i] = Math.max(-plan.noiseBound, Math.min(plan.noiseBound, Math.round(plan.integerStd * sampler.next())));
  return noise;
}

const LR_OVER_B = 0.05 / 32;

describe('exact reachability of noisy outputs from neighbouring sums (σC = 1)', () => {
  before(async () => {
    assert.equal(await initNodeBackend(), 'wasm');
  });

  // d = 1.66 M (the FedAvg CNN) sets the grid as in a real step.
  const plan = dpSgdGrid(C, SIGMA, 1_663_370, 32);

  const oldSum: Release = (sum, noise) => {
    const t = oldNoisySum(sum, noise);
    const out = t.dataSync() as Float32Array;
    t.dispose();
    return out;
  };
  const gridSum: Release = (sum, noise) => {
    const t = addGridNoise(sum, plan, noise);
    const out = t.dataSync() as Float32Array;
    t.dispose();
    return out;
  };
  const oldUpdate =
    (weight: number): Release =>
    (sum, noise) => {
      const t = oldNoisySum(sum, noise);
      const out = updateAt(weight, t, LR_OVER_B);
      t.dispose();
      return out;
    };
  const gridUpdate =
    (weight: number): Release =>
    (sum, noise) => {
      const t = addGridNoise(sum, plan, noise);
      const out = updateAt(weight, t, LR_OVER_B);
      t.dispose();
      return out;
    };

  // oldLeaks: whether float32 noise has unreachable outputs in that case. At a
  // weight far from 0 the weight's own float32 rounding hides the noise's low
  // bits in a single step, so the old path shows none there; the grid path
  // must show none everywhere.
  const cases: ReadonlyArray<{
    readonly name: string;
    readonly s0: number;
    readonly old: Release;
    readonly grid: Release;
    readonly direction: 1 | -1;
    readonly oldLeaks: boolean;
  }> = [
    { name: 'noisy sum, sums 0 and 1', s0: 0, old: oldSum, grid: gridSum, direction: 1, oldLeaks: true },
    { name: 'noisy sum, sums 0.37 and 1.37', s0: 0.37, old: oldSum, grid: gridSum, direction: 1, oldLeaks: true },
    { name: 'noisy sum, sums 3.1 and 4.1', s0: 3.1, old: oldSum, grid: gridSum, direction: 1, oldLeaks: true },
    { name: 'one-step update at weight 0', s0: 0, old: oldUpdate(0), grid: gridUpdate(0), direction: -1, oldLeaks: true },
    { name: 'one-step update at weight 0.0371', s0: 0, old: oldUpdate(0.0371), grid: gridUpdate(0.0371), direction: -1, oldLeaks: false },
    { name: 'one-step update at weight -0.2', s0: 0, old: oldUpdate(-0.2), grid: gridUpdate(-0.2), direction: -1, oldLeaks: false },
  ];

  for (const c of cases) {
    it(`${c.name}: no output of the grid mechanism is unreachable from the neighbour${c.oldLeaks ? ' (float32 noise: many are)' : ''}`, () => {
      const oldOutputs = draw(c.s0, c.old, oldNoise(11));
      const oldLeak = unreachableFraction(oldOutputs, c.s0 + 1, c.old, floatOf, FLOAT_LOW, FLOAT_HIGH, c.direction);
      const gridOutputs = draw(c.s0, c.grid, gridNoise(plan, 11));
      const gridLeak = unreachableFraction(gridOutputs, c.s0 + 1, c.grid, (k) => k, -plan.noiseBound, plan.noiseBound, c.direction);
      // The reverse direction (outputs from s1 unreachable from s0) as well.
      const gridOutputs1 = draw(c.s0 + 1, c.grid, gridNoise(plan, 12));
      const gridLeakBack = unreachableFraction(gridOutputs1, c.s0, c.grid, (k) => k, -plan.noiseBound, plan.noiseBound, c.direction);
      console.log(
        `# ${c.name}: unreachable from the neighbour — float32 ${(100 * oldLeak).toFixed(2)}%, grid ${(100 * gridLeak).toFixed(3)}% / ${(100 * gridLeakBack).toFixed(3)}% (G = ${plan.stepsPerClip}, slack ${plan.slack.toFixed(4)})`,
      );
      if (c.oldLeaks) assert.ok(oldLeak > 0.03, `the old path should leak here, found ${oldLeak}`);
      assert.equal(gridLeak, 0);
      assert.equal(gridLeakBack, 0);
    });
  }

  it('the grid path used by DP-SGD (noisyGradientSum) releases only multiples of γ, with std ≈ (1 + slack)σC', async () => {
    const n = 50_000;
    const sum = tf.zeros([n]);
    const small = dpSgdGrid(C, SIGMA, n, 32);
    const [noisy] = noisyGradientSum([sum], C, SIGMA, 32, new GaussianSampler(new SeededRandom(3)));
    const values = await noisy!.data();
    let sq = 0;
    for (const v of values) {
      const k = v / small.step;
      assert.equal(k, Math.round(k), `${v} is not on the grid`);
      sq += v * v;
    }
    const std = Math.sqrt(sq / n);
    assert.ok(Math.abs(std / (SIGMA * C * (1 + small.slack)) - 1) < 0.02, `std ${std}`);
    tf.dispose([sum, noisy!]);
  });

  it('client-level noise in float64 releases only grid multiples, each reachable from the neighbour', () => {
    const d = 1000;
    const grid = clientLevelGrid(C, SIGMA, d, 1);
    const a = new Float64Array(d).fill(0);
    const b = new Float64Array(d).fill(1);
    noiseOnGrid(a, grid, new GaussianSampler(new SeededRandom(4)));
    noiseOnGrid(b, grid, new GaussianSampler(new SeededRandom(5)));
    for (const [out, other] of [
      [a, 1],
      [b, 0],
    ] as const) {
      for (const v of out) {
        const k = Math.round(v / grid.step);
        assert.equal(k * grid.step, v);
        // From the neighbour, the integer noise k − other·G is in range: reachable.
        assert.ok(Math.abs(k - other * grid.stepsPerClip) <= grid.noiseBound);
      }
    }
  });
});
