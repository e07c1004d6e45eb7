import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { erfc } from '../../core/privacy/math.ts';
import { GaussianSampler } from '../../core/privacy/update-privacy.ts';
import { SecureRandom, SeededRandom, type UniformSource } from '../../core/random/prng.ts';
import { ZIGGURAT_R, ZIGGURAT_V, ZIGGURAT_X } from '../../core/random/ziggurat.ts';

/**
 * The noise sampler's distribution. The statistics run on a seeded source so
 * that a pass or a failure is reproducible; the bounds are 5 standard errors
 * (or p = 0.001 for KS and χ²), so a correct sampler fails them only by a
 * fluke of the seed, and any sampler off by more than that fails.
 */

const normalCdf = (x: number) => 0.5 * erfc(-x / Math.SQRT2);
/** P(|Z| > t). */
const twoSidedTail = (t: number) => erfc(t / Math.SQRT2);

function draw(n: number, source: UniformSource): Float64Array {
  const out = new Float64Array(n);
  new GaussianSampler(source).fill(out);
  return out;
}

describe('ziggurat tables', () => {
  it('every layer has the same area V, the top one included (the method is exact only then)', () => {
    const f = (x: number) => Math.exp(-0.5 * x * x);
    for (let i = 1; i < 256; i++) {
      const area = ZIGGURAT_X[i]! * (f(ZIGGURAT_X[i + 1]!) - f(ZIGGURAT_X[i]!));
      assert.ok(Math.abs(area / ZIGGURAT_V - 1) < 1e-9, `layer ${i}: area ${area} vs V ${ZIGGURAT_V}`);
    }
    // The base layer: rectangle [0, R] × [0, f(R)] plus the tail beyond R.
    assert.ok(Math.abs((ZIGGURAT_X[0]! * f(ZIGGURAT_R)) / ZIGGURAT_V - 1) < 1e-12);
    // Layer 255 reaches the mode: X[256] = 0, so its area above is X[255]·(1 − f(X[255])), checked in the loop.
    assert.equal(ZIGGURAT_X[256], 0);
  });
});

describe('Gaussian sampler statistics', () => {
  const n = 1_000_000;
  const samples = draw(n, new SeededRandom(20261205));

  it('has mean 0, variance 1, skewness 0 and excess kurtosis 0', () => {
    let m1 = 0;
    for (const x of samples) m1 += x;
    m1 /= n;
    let m2 = 0;
    let m3 = 0;
    let m4 = 0;
    for (const x of samples) {
      const d = x - m1;
      m2 += d * d;
      m3 += d * d * d;
      m4 += d * d * d * d;
    }
    m2 /= n;
    m3 /= n;
    m4 /= n;
    const skew = m3 / m2 ** 1.5;
    const kurtosis = m4 / (m2 * m2) - 3;
    assert.ok(Math.abs(m1) < 5 / Math.sqrt(n), `mean ${m1}`);
    assert.ok(Math.abs(m2 - 1) < 5 * Math.sqrt(2 / n), `variance ${m2}`);
    assert.ok(Math.abs(skew) < 5 * Math.sqrt(6 / n), `skewness ${skew}`);
    assert.ok(Math.abs(kurtosis) < 5 * Math.sqrt(24 / n), `excess kurtosis ${kurtosis}`);
  });

  it('passes a Kolmogorov–Smirnov test against Φ', () => {
    const sorted = Float64Array.from(samples).sort();
    let d = 0;
    for (let i = 0; i < n; i++) {
      const cdf = normalCdf(sorted[i]!);
      d = Math.max(d, (i + 1) / n - cdf, cdf - i / n);
    }
    // Critical value of √n·D at p = 0.001: 1.949.
    assert.ok(Math.sqrt(n) * d < 1.949, `KS statistic √n·D = ${Math.sqrt(n) * d}`);
  });

  it('puts the right mass in the tails, beyond the ziggurat base (R ≈ 3.65) too', () => {
    for (const t of [2, 3, ZIGGURAT_R, 4, 4.5]) {
      let count = 0;
      for (const x of samples) if (Math.abs(x) > t) count++;
      const expected = n * twoSidedTail(t);
      // Binomial count: 5 standard deviations.
      assert.ok(Math.abs(count - expected) < 5 * Math.sqrt(expected), `|Z| > ${t}: ${count} samples, expected ${expected.toFixed(1)}`);
    }
    // Both signs of the tail.
    let upper = 0;
    let lower = 0;
    for (const x of samples) {
      if (x > ZIGGURAT_R) upper++;
      if (x < -ZIGGURAT_R) lower++;
    }
    const half = (n * twoSidedTail(ZIGGURAT_R)) / 2;
    assert.ok(
      Math.abs(upper - half) < 5 * Math.sqrt(half) && Math.abs(lower - half) < 5 * Math.sqrt(half),
      `tails: ${lower} below, ${upper} above, expected ${half}`,
    );
  });

  it('draws the tail beyond R from the right conditional distribution, on each side (KS)', () => {
    // 4 M draws give about 500 beyond R on each side, all from Marsaglia's tail method.
    const many = draw(4_000_000, new SeededRandom(77));
    const tailMass = twoSidedTail(ZIGGURAT_R);
    for (const sign of [1, -1]) {
      const tail = Float64Array.from(
        Array.from(many).filter((x) => sign * x > ZIGGURAT_R),
        (x) => sign * x,
      ).sort();
      let d = 0;
      for (let i = 0; i < tail.length; i++) {
        const cdf = 1 - twoSidedTail(tail[i]!) / tailMass;
        d = Math.max(d, (i + 1) / tail.length - cdf, cdf - i / tail.length);
      }
      assert.ok(tail.length > 400, `only ${tail.length} samples beyond ${sign * ZIGGURAT_R}`);
      assert.ok(
        Math.sqrt(tail.length) * d < 1.949,
        `tail (sign ${sign}): √n·D = ${Math.sqrt(tail.length) * d} over ${tail.length} samples`,
      );
    }
  });

  it('passes a χ² test over 64 equiprobable bins (the wedges between layers included)', () => {
    const bins = 64;
    const edges: number[] = [];
    // Bin edges at the quantiles k/64, by bisection on Φ.
    for (let k = 1; k < bins; k++) {
      let lo = -10;
      let hi = 10;
      for (let it = 0; it < 80; it++) {
        const mid = (lo + hi) / 2;
        if (normalCdf(mid) < k / bins) lo = mid;
        else hi = mid;
      }
      edges.push((lo + hi) / 2);
    }
    const counts = new Array<number>(bins).fill(0);
    for (const x of samples) {
      let lo = 0;
      let hi = edges.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (x < edges[mid]!) hi = mid;
        else lo = mid + 1;
      }
      counts[lo]!++;
    }
    const expected = n / bins;
    const chi2 = counts.reduce((sum, c) => sum + (c - expected) ** 2 / expected, 0);
    // χ²(63) at p = 0.001: 103.4.
    assert.ok(chi2 < 103.4, `χ² = ${chi2}`);
  });
});

describe('Gaussian sampler interface', () => {
  it('fill and next draw the same stream from the same seed', () => {
    const bulk = draw(1000, new SeededRandom(3));
    const one = new GaussianSampler(new SeededRandom(3));
    for (let i = 0; i < 1000; i++) assert.equal(one.next(), bulk[i]);
  });

  it('fill scales by the standard deviation and writes float32 arrays', () => {
    const plain = draw(10, new SeededRandom(4));
    const scaled = new Float32Array(10);
    new GaussianSampler(new SeededRandom(4)).fill(scaled, 0.25);
    for (let i = 0; i < 10; i++) assert.equal(scaled[i], Math.fround(0.25 * plain[i]!));
  });

  it('works from a source that has only next(), taking 32 bits of each double', () => {
    const seeded = new SeededRandom(5);
    const doublesOnly: UniformSource = { next: () => seeded.next() };
    const out = draw(200_000, doublesOnly);
    let sum = 0;
    let squares = 0;
    for (const x of out) {
      sum += x;
      squares += x * x;
    }
    assert.ok(Math.abs(sum / out.length) < 5 / Math.sqrt(out.length));
    assert.ok(Math.abs(squares / out.length - 1) < 5 * Math.sqrt(2 / out.length));
  });

  it('the default source is the CSPRNG: moments hold and two samplers differ', () => {
    const a = new Float64Array(200_000);
    new GaussianSampler().fill(a);
    const b = new Float64Array(8);
    new GaussianSampler().fill(b);
    assert.notDeepEqual(Array.from(a.subarray(0, 8)), Array.from(b));
    let sum = 0;
    let squares = 0;
    for (const x of a) {
      sum += x;
      squares += x * x;
    }
    assert.ok(Math.abs(sum / a.length) < 5 / Math.sqrt(a.length));
    assert.ok(Math.abs(squares / a.length - 1) < 5 * Math.sqrt(2 / a.length));
  });

  it('SecureRandom.fillUint32 fills arrays longer than one getRandomValues call (65,536 bytes)', () => {
    const words = new Uint32Array(40_000);
    new SecureRandom().fillUint32(words);
    // Each 16,384-word stretch was filled: none is left all zeros.
    for (const start of [0, 16_384, 32_768])
      assert.ok(
        words.subarray(start, start + 1000).some((w) => w !== 0),
        `words from ${start}`,
      );
  });
});
