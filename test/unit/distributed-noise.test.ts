import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RdpAccountant } from '../../core/privacy/accountant.ts';
import {
  addSkellamNoise,
  distributedSumNoiseStd,
  planDistributedNoise,
  samplePoisson,
  skellamRdp,
} from '../../core/privacy/distributed-noise.ts';
import { addGaussianNoise, GaussianSampler } from '../../core/privacy/update-privacy.ts';
import { SeededRandom } from '../../core/random/prng.ts';

function meanVariance(values: ArrayLike<number>): { mean: number; variance: number } {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]!;
  const mean = sum / values.length;
  let sq = 0;
  for (let i = 0; i < values.length; i++) sq += (values[i]! - mean) ** 2;
  return { mean, variance: sq / (values.length - 1) };
}

describe('distributed DP with Skellam noise in the secure sum', () => {
  it('Poisson draws have mean and variance λ (small and large λ)', () => {
    const random = new SeededRandom(1);
    for (const lambda of [0.7, 3, 50, 2e6]) {
      const draws = Float64Array.from({ length: 40_000 }, () => samplePoisson(lambda, random));
      const { mean, variance } = meanVariance(draws);
      assert.ok(draws.every(Number.isInteger));
      assert.ok(Math.abs(mean - lambda) < 4 * Math.sqrt(lambda / draws.length) + 1e-9, `λ ${lambda}: mean ${mean}`);
      assert.ok(Math.abs(variance / lambda - 1) < 0.03, `λ ${lambda}: variance ${variance}`);
    }
  });

  it('the sum keeps at least the target noise with 0, 2 and 4 of 10 dropped (tolerance 4); per-participant Gaussian shares do not', () => {
    const d = 20_000;
    const C = 1;
    const z = 1;
    const n = 10;
    const plan = planDistributedNoise({
      clipNorm: C,
      noiseMultiplier: z,
      dimension: d,
      step: C / 1024,
      expectedContributors: n,
      toleratedDropouts: 4,
    });
    const target = z * plan.sensitivityL2 * plan.step; // central DP's std on the grid sensitivity, ≥ zC
    const random = new SeededRandom(2);
    const shares = Array.from({ length: n }, () => {
      const v = new Float64Array(d);
      addSkellamNoise(v, plan.participantVariance, random);
      return v;
    });
    // Today's scheme for comparison: each adds N(0, z²C²/m) in float, m = n.
    const gaussianShares = Array.from({ length: n }, (_, k) => {
      const v = new Float32Array(d);
      addGaussianNoise(v, (z * C) / Math.sqrt(n), new GaussianSampler(new SeededRandom(100 + k)));
      return v;
    });
    const lines: string[] = [];
    for (const dropped of [0, 2, 4]) {
      const contributors = n - dropped;
      const sum = new Float64Array(d);
      const oldSum = new Float64Array(d);
      for (let k = 0; k < contributors; k++) {
        for (let i = 0; i < d; i++) {
          sum[i]! += shares[k]![i]!;
          oldSum[i]! += gaussianShares[k]![i]!;
        }
      }
      assert.ok(sum.every(Number.isInteger), 'the noise stays in the integers');
      const std = Math.sqrt(meanVariance(sum).variance) * plan.step;
      const oldStd = Math.sqrt(meanVariance(oldSum).variance);
      lines.push(
        `${dropped} dropped: Skellam sum std ${(std / (z * C)).toFixed(3)}·zC (target ${(target / (z * C)).toFixed(3)}, predicted ${(distributedSumNoiseStd(plan, contributors) / (z * C)).toFixed(3)}); per-participant Gaussian ${(oldStd / (z * C)).toFixed(3)}·zC`,
      );
      assert.ok(
        Math.abs(std / distributedSumNoiseStd(plan, contributors) - 1) < 0.02,
        `measured ${std}, predicted ${distributedSumNoiseStd(plan, contributors)}`,
      );
      // With the protected participant's own share removed too (add/remove), the rest still carries the target.
      assert.ok(distributedSumNoiseStd(plan, contributors - 1) >= target * (1 - 1e-12));
      if (dropped > 0) assert.ok(oldStd < 0.95 * z * C, 'the old scheme loses noise with dropouts');
    }
    console.log(lines.map((l) => `# ${l}`).join('\n'));
  });

  it('ε of the sum matches central DP (q = 1, same z) within the Skellam slack; per-participant accounting is far above', () => {
    const d = 1_663_370;
    const plan = planDistributedNoise({
      clipNorm: 1,
      noiseMultiplier: 1,
      dimension: d,
      step: 1 / 2 ** 16,
      expectedContributors: 20,
      toleratedDropouts: 4,
    });
    // z_eff bounds the Skellam RDP at every order the accountant uses.
    for (const alpha of [1.1, 2, 8, 32, 256]) {
      assert.ok(
        skellamRdp(alpha, plan.targetVariance, plan.sensitivityL1, plan.sensitivityL2) <=
          (alpha / (2 * plan.effectiveNoiseMultiplier ** 2)) * (1 + 1e-12),
      );
    }
    const eps = (z: number, rounds: number) =>
      new RdpAccountant().step({ sampleRate: 1, noiseMultiplier: z, steps: rounds }).getEpsilon(1e-5);
    const central1 = eps(1, 1);
    const distributed1 = eps(plan.effectiveNoiseMultiplier, 1);
    const central100 = eps(1, 100);
    const distributed100 = eps(plan.effectiveNoiseMultiplier, 100);
    const perParticipant100 = eps(1 / Math.sqrt(20), 100);
    console.log(
      `# z = 1, m = 20, d = ${d}: z_eff ${plan.effectiveNoiseMultiplier.toFixed(6)}; ε after 1 round central ${central1.toFixed(3)} / distributed ${distributed1.toFixed(3)}; after 100: ${central100.toFixed(3)} / ${distributed100.toFixed(3)} (per-participant accounting: ${perParticipant100.toFixed(1)})`,
    );
    assert.ok(distributed1 / central1 < 1.01 && distributed100 / central100 < 1.01);
    assert.ok(perParticipant100 > 10 * distributed100);
  });
});
