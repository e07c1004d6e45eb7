import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addSkellamNoiseMod32, distributedSumNoiseStd, planDistributedNoise } from '../../core/privacy/distributed-noise.ts';
import { addGaussianNoise, clipToNorm, GaussianSampler } from '../../core/privacy/update-privacy.ts';
import { SeededRandom } from '../../core/random/prng.ts';
import { recommendedThreshold, type SecAggConfig } from '../../core/secagg/protocol.ts';
import { runLocalRound } from '../../core/secagg/simulate.ts';
import { sha256 } from '../../core/secagg/bytes.ts';

const LENGTH = 20_000;
const N = 10;
const CLIP = 1;
const Z = 1;

async function config(): Promise<SecAggConfig> {
  return {
    round: 1,
    participants: N,
    neighbours: 'all',
    threshold: recommendedThreshold(N, 'all'),
    roundSeed: await sha256(new TextEncoder().encode('skellam')),
    vectorLength: LENGTH,
    quantization: { clipRange: 2, quantizationRange: 2 ** 22 },
  };
}

/** Clipped updates of norm ≤ 1, so the plain sum is known exactly. */
const updates = new Map<number, Float32Array>();
for (let u = 1; u <= N; u++) {
  const r = new SeededRandom(50 + u);
  const x = Float32Array.from({ length: LENGTH }, () => 2 * r.next() - 1);
  clipToNorm(x, CLIP);
  updates.set(u, x);
}

function residualStd(sum: Float64Array, contributors: readonly number[]): number {
  let sq = 0;
  let mean = 0;
  const residual = new Float64Array(LENGTH);
  for (let i = 0; i < LENGTH; i++) {
    let plain = 0;
    for (const u of contributors) plain += updates.get(u)![i]!;
    residual[i] = sum[i]! - plain;
    mean += residual[i]!;
  }
  mean /= LENGTH;
  for (let i = 0; i < LENGTH; i++) sq += (residual[i]! - mean) ** 2;
  return Math.sqrt(sq / (LENGTH - 1));
}

describe('Skellam noise through the real secure aggregation round (10 participants)', () => {
  it('the decoded sum keeps at least the target noise with 0, 2 and 4 dropouts (tolerance 4); Gaussian shares fall below it', async () => {
    const cfg = await config();
    const step = (2 * cfg.quantization.clipRange) / cfg.quantization.quantizationRange;
    const plan = planDistributedNoise({
      clipNorm: CLIP,
      noiseMultiplier: Z,
      dimension: LENGTH,
      step,
      expectedContributors: N,
      toleratedDropouts: 4,
    });
    // Central DP's std with the grid's sensitivity: what the accountant is charged (add/remove: one share fewer).
    const target = Z * plan.sensitivityL2 * step;
    const lines: string[] = [];
    for (const dropped of [0, 2, 4]) {
      const gone = Array.from({ length: dropped }, (_, k) => N - k);
      const skellam = await runLocalRound(cfg, (u) => updates.get(u)!, {
        dropouts: { beforeMaskedInput: gone },
        maskOptions: (u) => ({
          afterQuantize: (encoded) => addSkellamNoiseMod32(encoded, plan.participantVariance, new SeededRandom(700 + u)),
        }),
      });
      const gaussian = await runLocalRound(cfg, (u) => updates.get(u)!, {
        dropouts: { beforeMaskedInput: gone },
        maskOptions: (u) => ({
          beforeQuantize: (values) => addGaussianNoise(values, (Z * CLIP) / Math.sqrt(N), new GaussianSampler(new SeededRandom(900 + u))),
        }),
      });
      assert.equal(skellam.result.contributors.length, N - dropped);
      const measured = residualStd(skellam.result.sum, skellam.result.contributors);
      const old = residualStd(gaussian.result.sum, gaussian.result.contributors);
      const predicted = distributedSumNoiseStd(plan, N - dropped);
      lines.push(
        `${dropped} of ${N} dropped: Skellam sum std ${measured.toFixed(4)} (predicted ${predicted.toFixed(4)}, target zΔ₂γ ${target.toFixed(4)}); Gaussian shares ${old.toFixed(4)} (target zC ${(Z * CLIP).toFixed(4)})`,
      );
      // The quantiser's stochastic rounding adds < 1 step per share: negligible against the noise.
      assert.ok(Math.abs(measured / predicted - 1) < 0.03, `measured ${measured}, predicted ${predicted}`);
      // Without one more share (add/remove) the sum still carries the target.
      assert.ok(distributedSumNoiseStd(plan, N - dropped - 1) >= target * (1 - 1e-12));
      if (dropped > 0) assert.ok(old < 0.95 * Z * CLIP, `Gaussian shares with ${dropped} dropped: ${old}`);
    }
    console.log(lines.map((l) => `# ${l}`).join('\n'));
  });
});
