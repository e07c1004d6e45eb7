import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { conditionallyRound, conditionalRoundingBound } from '../../core/privacy/conditional-rounding.ts';
import { planDistributedNoise } from '../../core/privacy/distributed-noise.ts';
import { SeededRandom } from '../../core/random/prng.ts';
import { sha256 } from '../../core/secagg/bytes.ts';
import { recommendedThreshold } from '../../core/secagg/protocol.ts';
import { quantize } from '../../core/secagg/quantize.ts';
import { runLocalRound } from '../../core/secagg/simulate.ts';

// A coarse grid (γ = 1/64) and every coordinate half-way between two grid points: plain rounding's norm varies most.
const QUANTIZATION = { clipRange: 8, quantizationRange: 2 ** 10 };
const STEP = 1 / 64;
const D = 64;
const CLIP = 20 * STEP; // ‖x‖ = 2.5·√64 = 20 grid units
const x = new Float32Array(D).fill(2.5 * STEP);

function gridNorm(encoded: Uint32Array): number {
  let squares = 0;
  for (const w of encoded) squares += (w | 0) ** 2;
  return Math.sqrt(squares);
}

describe('conditional randomized rounding (Skellam / DDG)', () => {
  const bound = conditionalRoundingBound(CLIP, STEP, D);

  it('never sends a vector above the enforced bound, which plain stochastic rounding passes', () => {
    assert.ok(bound < CLIP / STEP + Math.sqrt(D), `the conditioned bound ${bound} is the tighter one here`);
    const random = new SeededRandom(7);
    let plainAbove = 0;
    for (let t = 0; t < 100; t++) {
      const rounded = conditionallyRound(x, QUANTIZATION, bound, random);
      assert.ok(gridNorm(rounded.encoded) <= bound, `draw ${t}: ${gridNorm(rounded.encoded)} > ${bound}`);
      assert.equal(rounded.fallback, false);
      for (const w of rounded.encoded) assert.ok((w | 0) === 2 || (w | 0) === 3, 'still a rounding of 2.5');
      if (gridNorm(quantize(x, QUANTIZATION)) > bound) plainAbove++;
    }
    assert.ok(plainAbove > 0, 'plain stochastic rounding exceeds the bound sometimes (about 1 in 9 here)');
  });

  it('falls back to a scaled round-toward-zero within the bound when no draw meets it', () => {
    const tight = 10;
    const rounded = conditionallyRound(x, QUANTIZATION, tight, new SeededRandom(8));
    assert.equal(rounded.fallback, true);
    assert.ok(gridNorm(rounded.encoded) <= tight);
  });

  it('the Skellam plan charges exactly the bound the participant enforces (and Δ₁ ≤ Δ₂² on integers)', () => {
    const plan = planDistributedNoise({
      clipNorm: CLIP,
      noiseMultiplier: 1,
      dimension: D,
      step: STEP,
      expectedContributors: 10,
      toleratedDropouts: 2,
    });
    assert.equal(plan.sensitivityL2, bound);
    assert.equal(plan.sensitivityL1, Math.min(Math.sqrt(D) * bound, bound * bound));
    assert.equal(plan.targetVariance, bound ** 2);
  });

  it('through the secure sum, the decoded sum is the plain sum within one step per contributor', async () => {
    const n = 5;
    const updates = Array.from({ length: n }, (_, u) => {
      const r = new SeededRandom(30 + u);
      const v = Float32Array.from({ length: D }, () => (2 * r.next() - 1) * 0.1);
      const norm = Math.hypot(...v);
      return v.map((e) => (e * CLIP) / norm);
    });
    const config = {
      round: 1,
      participants: n,
      neighbours: 'all' as const,
      threshold: recommendedThreshold(n, 'all'),
      roundSeed: await sha256(new TextEncoder().encode('conditional')),
      vectorLength: D,
      quantization: QUANTIZATION,
    };
    const { result } = await runLocalRound(config, (u) => updates[u - 1]!, {
      maskOptions: (u) => ({ encode: (values) => conditionallyRound(values, QUANTIZATION, bound, new SeededRandom(90 + u)).encoded }),
    });
    for (let i = 0; i < D; i++) {
      const plain = updates.reduce((s, v) => s + v[i]!, 0);
      assert.ok(Math.abs(result.sum[i]! - plain) < n * STEP, `coordinate ${i}: ${result.sum[i]} vs ${plain}`);
    }
  });
});
