import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { computeRdp, DEFAULT_ORDERS, epsilonFromRdp } from '../../core/privacy/accountant.ts';
import { accountHistory } from '../../core/privacy/epsilon.ts';
import { convolveReal, fft } from '../../core/privacy/fft.ts';
import { erfc } from '../../core/privacy/math.ts';
import { gaussianEpsilon, pldDelta, pldEpsilon } from '../../core/privacy/pld.ts';

// Independent reference values, written out here rather than taken from pld.ts.
const Phi = (t: number): number => 0.5 * erfc(-t / Math.SQRT2);

/** Smallest ε with f(ε) ≤ δ for a decreasing f, by bisection to 1e-12. */
function solveEpsilon(f: (eps: number) => number, delta: number): number {
  if (f(0) <= delta) return 0;
  let hi = 1;
  while (f(hi) > delta) hi *= 2;
  let lo = 0;
  while (hi - lo > 1e-12) {
    const mid = (lo + hi) / 2;
    if (f(mid) > delta) lo = mid;
    else hi = mid;
  }
  return hi;
}

/**
 * Exact δ(ε) of ONE step of the Poisson-subsampled Gaussian, worst of add and
 * remove, from the hockey-stick integral ∫(p − e^ε q)₊ over the half-line
 * where the density ratio exceeds e^ε (the ratio is monotone in x).
 */
function subsampledGaussianDelta(q: number, sigma: number, eps: number): number {
  const s2 = sigma * sigma;
  // remove: p = (1−q)N(0) + qN(1), q = N(0); ratio > e^ε ⇔ x > x*
  const xr = s2 * Math.log((Math.exp(eps) - 1 + q) / q) + 0.5;
  const remove = (1 - q) * Phi(-xr / sigma) + q * Phi((1 - xr) / sigma) - Math.exp(eps) * Phi(-xr / sigma);
  // add: p = N(0), q = mixture; N0/mix > e^ε ⇔ 1 − q + q r(x) < e^{−ε} ⇔ x < x*
  const inner = (Math.exp(-eps) - 1 + q) / q;
  const add =
    inner <= 0
      ? 0
      : Phi((s2 * Math.log(inner) + 0.5) / sigma) -
        Math.exp(eps) * ((1 - q) * Phi((s2 * Math.log(inner) + 0.5) / sigma) + q * Phi((s2 * Math.log(inner) - 0.5) / sigma));
  return Math.max(remove, add, 0);
}

describe('FFT', () => {
  it('matches a naive DFT and inverts itself', () => {
    const n = 64;
    const re = Float64Array.from({ length: n }, (_, i) => Math.sin(i * 1.3) + (i % 7) / 5);
    const im = Float64Array.from({ length: n }, (_, i) => Math.cos(i * 0.4) - (i % 3));
    const [re0, im0] = [re.slice(), im.slice()];
    fft(re, im);
    for (const k of [0, 1, 5, 31, 63]) {
      let sr = 0;
      let si = 0;
      for (let j = 0; j < n; j++) {
        const a = (-2 * Math.PI * j * k) / n;
        sr += re0[j]! * Math.cos(a) - im0[j]! * Math.sin(a);
        si += re0[j]! * Math.sin(a) + im0[j]! * Math.cos(a);
      }
      assert.ok(Math.abs(re[k]! - sr) < 1e-12 && Math.abs(im[k]! - si) < 1e-12, `bin ${k}`);
    }
    fft(re, im, true);
    for (let j = 0; j < n; j++) assert.ok(Math.abs(re[j]! - re0[j]!) < 1e-13 && Math.abs(im[j]! - im0[j]!) < 1e-13);
  });

  it('convolves real sequences like the direct sum', () => {
    const a = Float64Array.from([0.5, 0.25, 0, 0.125, 0.125]);
    const b = Float64Array.from([0.1, 0.2, 0.3, 0.4]);
    const c = convolveReal(a, b);
    assert.equal(c.length, 8);
    for (let k = 0; k < c.length; k++) {
      let direct = 0;
      for (let i = 0; i < a.length; i++) if (k - i >= 0 && k - i < b.length) direct += a[i]! * b[k - i]!;
      assert.ok(Math.abs(c[k]! - direct) < 1e-15, `index ${k}: ${c[k]} vs ${direct}`);
    }
    assert.throws(() => fft(new Float64Array(6), new Float64Array(6)), /power of two/);
  });
});

describe('PLD accountant: values derived independently', () => {
  it('one Gaussian mechanism (q = 1): the FFT path brackets the analytic Gaussian, pessimistically', () => {
    for (const sigma of [0.8, 1, 2]) {
      const mu = 1 / sigma;
      const exact = solveEpsilon((e) => Phi(mu / 2 - e / mu) - Math.exp(e) * Phi(-mu / 2 - e / mu), 1e-5);
      const r = pldEpsilon([{ sampleRate: 1, noiseMultiplier: sigma, steps: 1 }], 1e-5, { analyticGaussian: false });
      assert.equal(r.method, 'fft');
      assert.ok(r.epsilon >= exact - 1e-10, `σ ${sigma}: PLD ${r.epsilon} below exact ${exact}`);
      assert.ok(r.epsilonLower <= exact + 1e-10, `σ ${sigma}: lower bound ${r.epsilonLower} above exact ${exact}`);
      assert.ok(r.epsilon - exact < 1e-6, `σ ${sigma}: ${r.epsilon} vs ${exact}`);
      // The closed form agrees with the reference to the bisection tolerance.
      assert.ok(Math.abs(gaussianEpsilon(mu, 1e-5) - exact) < 1e-9);
    }
  });

  it('q = 1 composition of T Gaussians is one Gaussian with σ/√T; heterogeneous groups multiply in the Fourier domain', () => {
    const exact = solveEpsilon((e) => Phi(0.5 - e) - Math.exp(e) * Phi(-0.5 - e), 1e-6); // μ = 1
    const sixteen = pldEpsilon([{ sampleRate: 1, noiseMultiplier: 4, steps: 16 }], 1e-6, { analyticGaussian: false });
    assert.ok(sixteen.epsilon >= exact && sixteen.epsilon - exact < 1e-4, `${sixteen.epsilon} vs ${exact}`);
    assert.ok(sixteen.epsilonLower <= exact);
    // μ² = 2/2 + 4/8 + ... : σ = √2 twice (μ² 1) and σ = √8 four times (μ² 0.5) → μ² = 1.5
    const mixed = pldEpsilon(
      [
        { sampleRate: 1, noiseMultiplier: Math.SQRT2, steps: 2 },
        { sampleRate: 1, noiseMultiplier: Math.sqrt(8), steps: 4 },
      ],
      1e-6,
      { analyticGaussian: false },
    );
    const mu = Math.sqrt(1.5);
    const exactMixed = solveEpsilon((e) => Phi(mu / 2 - e / mu) - Math.exp(e) * Phi(-mu / 2 - e / mu), 1e-6);
    assert.ok(mixed.epsilon >= exactMixed && mixed.epsilon - exactMixed < 1e-4, `${mixed.epsilon} vs ${exactMixed}`);
    assert.equal(pldEpsilon([{ sampleRate: 1, noiseMultiplier: 4, steps: 16 }], 1e-6).method, 'analytic-gaussian');
  });

  it('one subsampled step: brackets the exact hockey-stick integral, worst of add and remove', () => {
    for (const [q, sigma, delta] of [
      [0.01, 1, 1e-5],
      [0.1, 0.8, 1e-6],
      [0.5, 2, 1e-3],
    ] as const) {
      const exact = solveEpsilon((e) => subsampledGaussianDelta(q, sigma, e), delta);
      const r = pldEpsilon([{ sampleRate: q, noiseMultiplier: sigma, steps: 1 }], delta);
      assert.ok(r.epsilon >= exact - 1e-9, `q ${q} σ ${sigma}: PLD ${r.epsilon} below exact ${exact}`);
      assert.ok(r.epsilonLower <= exact + 1e-9, `q ${q} σ ${sigma}: lower ${r.epsilonLower} above exact ${exact}`);
      assert.ok(r.epsilon - exact < 2e-4, `q ${q} σ ${sigma}: PLD ${r.epsilon} vs exact ${exact}`);
    }
  });

  it('is pessimistic even on a coarse grid (Δ = 1e-2), which can be looser than RDP', () => {
    const fine = pldEpsilon([{ sampleRate: 0.01, noiseMultiplier: 1, steps: 1000 }], 1e-5);
    const coarse = pldEpsilon([{ sampleRate: 0.01, noiseMultiplier: 1, steps: 1000 }], 1e-5, { discretisationInterval: 1e-2 });
    assert.equal(coarse.discretisationInterval, 1e-2);
    assert.ok(coarse.epsilon >= fine.epsilonLower, `coarse ${coarse.epsilon} below the fine lower bound ${fine.epsilonLower}`);
    assert.ok(coarse.epsilonLower <= fine.epsilon);
    assert.ok(coarse.epsilon > fine.epsilon);
  });
});

describe('PLD accountant: published values (NOTES.md; dp_accounting PLD, Opacus PRV)', () => {
  // q = 0.01, σ = 1, δ = 1e-5: T = 1,000 → PLD 1.83 / PRV 1.84 / RDP 2.10; T = 10,000 → 6.19 / 6.20 / 6.71.
  // The published numbers are rounded to 0.01 and are upper bounds themselves. Our bracket
  // [epsilonLower, epsilon] contains the true ε; its width (Hoeffding over the rounding errors,
  // 0.01 at T = 1,000 and 0.03 at T = 10,000) is the error bound. So: ε must be within 0.005 of the
  // published PLD value (same method, same grid), and the lower bound must not exceed the PRV value.
  for (const [steps, published, prv, rdpPublished] of [
    [1000, 1.83, 1.84, 2.1],
    [10_000, 6.19, 6.2, 6.71],
  ] as const) {
    it(`T = ${steps}: ε ${published} (PLD), tighter than RDP ${rdpPublished}`, () => {
      const r = pldEpsilon([{ sampleRate: 0.01, noiseMultiplier: 1, steps }], 1e-5);
      assert.ok(Math.abs(r.epsilon - published) <= 0.005, `PLD ${r.epsilon}`);
      assert.ok(r.epsilonLower <= prv + 0.005 && r.epsilonLower <= r.epsilon, `lower ${r.epsilonLower}`);
      assert.ok(r.epsilon - r.epsilonLower < 0.04, `error bound ${r.epsilon - r.epsilonLower}`);
      const rdp = epsilonFromRdp(DEFAULT_ORDERS, computeRdp(0.01, 1, steps), 1e-5).epsilon;
      assert.equal(rdp.toFixed(2), rdpPublished.toFixed(2));
      assert.ok(r.epsilon < rdp);
      assert.ok(pldDelta([{ sampleRate: 0.01, noiseMultiplier: 1, steps }], r.epsilon).delta <= 1e-5 * (1 + 1e-9));
    });
  }

  it("TF Privacy's q = 0.01, σ = 0.7, 120 steps: PLD 2.46 where RDP says 3.24 (issue 19)", () => {
    const r = accountHistory([{ sampleRate: 0.01, noiseMultiplier: 0.7, steps: 120 }], 1e-5, 'auto');
    assert.equal(r.accountant, 'pld');
    assert.equal(r.epsilon.toFixed(2), '2.46');
    assert.equal(r.rdp.epsilon.toFixed(2), '3.24');
    const rdpOnly = accountHistory([{ sampleRate: 0.01, noiseMultiplier: 0.7, steps: 120 }], 1e-5, 'rdp');
    assert.equal(rdpOnly.accountant, 'rdp');
    assert.equal(rdpOnly.pld, undefined);
  });
});

describe('PLD accountant: composition and edge cases', () => {
  it('heterogeneous steps: order does not matter, and more steps never lower ε', () => {
    const a = { sampleRate: 0.02, noiseMultiplier: 1.2, steps: 300 };
    const b = { sampleRate: 0.005, noiseMultiplier: 0.9, steps: 500 };
    const ab = pldEpsilon([a, b], 1e-5).epsilon;
    const ba = pldEpsilon([b, a], 1e-5).epsilon;
    assert.equal(ab, ba);
    assert.ok(ab > pldEpsilon([a], 1e-5).epsilon && ab > pldEpsilon([b], 1e-5).epsilon);
    // Split entries with the same mechanism merge: 300 = 100 + 200.
    assert.equal(pldEpsilon([{ ...a, steps: 100 }, b, { ...a, steps: 200 }], 1e-5).epsilon, ab);
  });

  it('q = 0 or no steps spends nothing; σ = 0 is ε = ∞; bad input is refused', () => {
    assert.equal(pldEpsilon([], 1e-5).epsilon, 0);
    assert.equal(pldEpsilon([{ sampleRate: 0, noiseMultiplier: 1, steps: 10 }], 1e-5).epsilon, 0);
    assert.equal(pldEpsilon([{ sampleRate: 0.1, noiseMultiplier: 0, steps: 1 }], 1e-5).epsilon, Infinity);
    assert.throws(() => pldEpsilon([{ sampleRate: 1.5, noiseMultiplier: 1, steps: 1 }], 1e-5), RangeError);
    assert.throws(() => pldEpsilon([{ sampleRate: 0.1, noiseMultiplier: 1, steps: 1.5 }], 1e-5), RangeError);
    assert.throws(() => pldEpsilon([{ sampleRate: 0.1, noiseMultiplier: 1, steps: 1 }], 0), RangeError);
    assert.throws(() => pldEpsilon([{ sampleRate: 0.1, noiseMultiplier: 1, steps: 1 }], 1e-5, { discretisationInterval: 0 }), RangeError);
  });
});
