import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addSkellamNoiseMod32 } from '../../core/privacy/distributed-noise.ts';
import { addGaussianNoise, clipToNorm, GaussianSampler } from '../../core/privacy/update-privacy.ts';
import { SeededRandom } from '../../core/random/prng.ts';
import { addInto, dequantizeSum, quantize, type QuantizationConfig } from '../../core/secagg/quantize.ts';
import { checkDecodedSum, countSumRejections, skellamTail, sumBounds } from '../../core/secagg/sum-range.ts';
import type { RoundRecord } from '../../core/protocol/status.ts';

const Q: QuantizationConfig = { clipRange: 8, quantizationRange: 2 ** 22 };
const D = 5_000;

/** The decoded sum of `n` inputs, each made by `make(u)` and encoded as a participant does (optionally with Skellam noise). */
function decodedSum(n: number, make: (u: number) => Float32Array, skellamVariance?: number): Float64Array {
  const total = new Uint32Array(D);
  for (let u = 0; u < n; u++) {
    const encoded = quantize(make(u), Q);
    if (skellamVariance) addSkellamNoiseMod32(encoded, skellamVariance, new SeededRandom(900 + u));
    addInto(total, encoded);
  }
  return dequantizeSum(total, n, Q);
}

const clipped = (u: number, clip: number) => {
  const r = new SeededRandom(10 + u);
  const x = Float32Array.from({ length: D }, () => 2 * r.next() - 1);
  clipToNorm(x, clip);
  return x;
};

describe('decoded secure sum range and norm checks', () => {
  it('passes honest sums at the edge of the range: every input at +c in every coordinate', () => {
    const sum = decodedSum(5, () => new Float32Array(D).fill(8));
    assert.equal(checkDecodedSum(sum, { quantization: Q, contributors: 5 }).ok, true);
    // The same sum claimed for 4 contributors is out of range.
    assert.equal(checkDecodedSum(sum, { quantization: Q, contributors: 4 }).ok, false);
  });

  it('refuses a sum with one garbage input (a random masked vector decodes anywhere in ±2^31·Δ)', () => {
    const sum = decodedSum(3, (u) => clipped(u, 1));
    const garbage = new SeededRandom(77);
    for (let i = 0; i < D; i++) sum[i] = sum[i]! + (garbage.next() * 2 - 1) * 8192;
    const check = checkDecodedSum(sum, { quantization: Q, contributors: 3 });
    assert.equal(check.ok, false);
    assert.match(
      (check as { reason: string }).reason,
      /^decoded sum refused: the sum of 3 updates is out of range: \d+ of 5000 coordinates exceed 24\.00/,
    );
  });

  it('refuses an in-range sum whose norm no clipped inputs can reach, and passes clipped ones', () => {
    const privacy = { clipNorm: 1, noiseStd: 0 };
    const honest = decodedSum(4, (u) => clipped(u, 1));
    assert.equal(checkDecodedSum(honest, { quantization: Q, contributors: 4, privacy }).ok, true);
    // One input at c/2 in every coordinate: in range, norm 4·√5000 ≈ 283 against a bound of about 4.
    const lying = decodedSum(4, (u) => (u === 0 ? new Float32Array(D).fill(4) : clipped(u, 1)));
    const check = checkDecodedSum(lying, { quantization: Q, contributors: 4, privacy });
    assert.equal(check.ok, false);
    assert.match((check as { reason: string }).reason, /L2 norm 28\d\.\d, above 4\.\d+ \(the most 4 updates clipped to 1/);
  });

  it('allows for Gaussian shares and Skellam noise: honest noised sums pass, the allowance is a few stds', () => {
    const n = 6;
    const sigma = 0.3;
    const sampler = new GaussianSampler(new SeededRandom(5));
    const gaussian = decodedSum(n, (u) => {
      const x = clipped(u, 1);
      addGaussianNoise(x, sigma, sampler);
      return x;
    });
    assert.equal(checkDecodedSum(gaussian, { quantization: Q, contributors: n, privacy: { clipNorm: 1, noiseStd: sigma } }).ok, true);
    // Without the noise allowance the same honest sum would be refused: the allowance is what lets it through.
    assert.equal(checkDecodedSum(gaussian, { quantization: Q, contributors: n, privacy: { clipNorm: 1, noiseStd: 0 } }).ok, false);

    // Skellam variance per participant in integer units, so large that the noise std is ~2.2 in update units per coordinate.
    const variance = (0.9 / ((2 * Q.clipRange) / Q.quantizationRange)) ** 2;
    const skellam = decodedSum(n, () => new Float32Array(D).fill(8), variance);
    const inputs = { quantization: Q, contributors: n, privacy: { clipNorm: 8 * Math.sqrt(D), noiseStd: 0, skellamVariance: variance } };
    assert.equal(checkDecodedSum(skellam, inputs).ok, true, 'every input at +c plus Skellam noise still passes');
    assert.equal(checkDecodedSum(skellam, { ...inputs, privacy: undefined }).ok, false, 'it would not without the Skellam allowance');
    const std = Math.sqrt(n * variance) * ((2 * Q.clipRange) / Q.quantizationRange);
    const allowance = sumBounds(D, inputs).coordinate - n * (Q.clipRange + (2 * Q.clipRange) / Q.quantizationRange);
    assert.ok(allowance > 6 * std && allowance < 9 * std, `allowance ${allowance / std} stds`);
  });

  it('bounds Skellam tails like a Gaussian for large variance and stays valid for small', () => {
    // Gaussian with p = 1e-12 per side: about 7.03 stds; the Chernoff bound is a little wider.
    const a = skellamTail(1e8, 1e-12);
    assert.ok(a / 1e4 > 7.03 && a / 1e4 < 7.6, `${a / 1e4} stds`);
    // Variance 1: a Chernoff bound, checked against the exact tail of Skellam(1) = Poisson(½) − Poisson(½) by summation.
    const small = skellamTail(1, 1e-9);
    const poisson: number[] = [];
    for (let k = 0, term = Math.exp(-0.5); k < 40; k++, term *= 0.5 / k) poisson.push(term);
    let tail = 0; // P(X ≥ ⌈a⌉) for X = P1 − P2
    for (let i = 0; i < 40; i++) for (let j = 0; j < 40; j++) if (i - j >= Math.ceil(small)) tail += poisson[i]! * poisson[j]!;
    assert.ok(tail <= 1e-9 && tail > 1e-13, `P(X ≥ ${small.toFixed(2)}) = ${tail}`);
  });

  it('counts the rounds aborted for their decoded sum', () => {
    const base = { outcome: 'skipped' } as RoundRecord;
    const stats = {
      participants: 3,
      neighbours: 'all' as const,
      threshold: 2,
      advertised: 3,
      shared: 3,
      masked: 3,
      unmasked: 3,
      dropoutsRecovered: 0,
      excluded: 0,
    };
    const history = [
      base,
      { ...base, secagg: { ...stats, sumRefused: true } },
      { ...base, secagg: stats },
      { ...base, secagg: { ...stats, sumRefused: true } },
    ];
    assert.equal(countSumRejections(history), 2);
  });
});
