import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { withSkellam } from '../../coordinator/distributed-noise-config.ts';
import { rotatedLengthFor } from '../../core/compression/update-codec.ts';
import { conditionallyRound, conditionalRoundingBound } from '../../core/privacy/conditional-rounding.ts';
import { addSkellamNoiseMod32, distributedSumNoiseStd, planDistributedNoise } from '../../core/privacy/distributed-noise.ts';
import { clipAndRotate, secureVectorLength, skellamRotation, unrotateSum } from '../../core/privacy/skellam-rotation.ts';
import { clipToNorm } from '../../core/privacy/update-privacy.ts';
import type { UpdatePrivacy } from '../../core/protocol/messages.ts';
import { SeededRandom } from '../../core/random/prng.ts';
import { sha256 } from '../../core/secagg/bytes.ts';
import { recommendedThreshold, type SecAggConfig } from '../../core/secagg/protocol.ts';
import { quantizationStep } from '../../core/secagg/quantize.ts';
import { runLocalRound } from '../../core/secagg/simulate.ts';
import { checkDecodedSum } from '../../core/secagg/sum-range.ts';
import { distributedClientDp } from '../helpers/client-dp-flags.ts';

/** Not a multiple of the 1024-value block: the rotation pads to 3072. */
const D = 3000;
const N = 5;
const CLIP = 1;
const Z = 0.01;
/** A clip range below one update's largest coordinate (0.9): only a rotated update fits it unclamped. */
const QUANTIZATION = { clipRange: 0.5, quantizationRange: 2 ** 16 };
const SPIKE = 0.9;

/** Updates with most of their norm on one coordinate each: the case rotation exists for. */
function spikyUpdates(): Map<number, Float32Array> {
  const updates = new Map<number, Float32Array>();
  for (let u = 1; u <= N; u++) {
    const r = new SeededRandom(300 + u);
    const x = Float32Array.from({ length: D }, () => 0.01 * (2 * r.next() - 1));
    x[17 * u] = u % 2 === 0 ? SPIKE : -SPIKE;
    clipToNorm(x, CLIP);
    updates.set(u, x);
  }
  return updates;
}

async function roundConfig(vectorLength: number, label = 'rotation'): Promise<SecAggConfig> {
  return {
    round: 1,
    participants: N,
    neighbours: 'all',
    threshold: recommendedThreshold(N, 'all'),
    roundSeed: await sha256(new TextEncoder().encode(label)),
    vectorLength,
    quantization: QUANTIZATION,
  };
}

const plan = planDistributedNoise({
  clipNorm: CLIP,
  noiseMultiplier: Z,
  dimension: rotatedLengthFor(D),
  step: quantizationStep(QUANTIZATION),
  expectedContributors: N,
  toleratedDropouts: 0,
});
const privacy: UpdatePrivacy = { clipNorm: CLIP, noiseStd: 0, skellamVariance: plan.participantVariance };

/** One real SecAgg round of the Skellam path: each participant's input, conditional rounding, Skellam noise. */
async function skellamRound(config: SecAggConfig, input: (u: number) => Float32Array, seedBase: number) {
  return runLocalRound(config, input, {
    maskOptions: (u) => ({
      encode: (values) =>
        conditionallyRound(
          values,
          config.quantization,
          conditionalRoundingBound(CLIP, quantizationStep(config.quantization), values.length),
          new SeededRandom(seedBase + u),
        ).encoded,
      afterQuantize: (encoded) => addSkellamNoiseMod32(encoded, plan.participantVariance, new SeededRandom(seedBase + 50 + u)),
    }),
  });
}

function residuals(sum: Float64Array, updates: Map<number, Float32Array>): Float64Array {
  const out = new Float64Array(D);
  for (let i = 0; i < D; i++) {
    let plain = 0;
    for (const x of updates.values()) plain += x[i]!;
    out[i] = sum[i]! - plain;
  }
  return out;
}

describe('random rotation on the Skellam path', () => {
  it('the decoded secure sum, rotated back, is the plain sum of the clipped updates within the rounding and noise bound', async () => {
    const updates = spikyUpdates();
    const config = await roundConfig(secureVectorLength(D, privacy));
    assert.equal(config.vectorLength, 3072);
    const round = await skellamRound(config, (u) => clipAndRotate(updates.get(u)!, privacy, config).rotated, 1000);
    assert.equal(round.result.sum.length, 3072);
    // An honest rotated round passes the coordinator's range and norm checks (run on the rotated sum, as secure-round.ts does),
    // with the rotated per-coordinate bound C·√(2 ln(4nd'/p)/B) ≈ 0.25 in place of c = 0.5.
    const inputs = { quantization: QUANTIZATION, contributors: N, privacy, rotationBlock: 1024 };
    const check = checkDecodedSum(round.result.sum, inputs);
    assert.ok(check.ok, check.ok ? '' : check.reason);
    const loose = checkDecodedSum(round.result.sum, { ...inputs, rotationBlock: undefined });
    assert.ok(loose.ok);
    assert.ok(check.bounds.coordinate < 0.55 * loose.bounds.coordinate, `${check.bounds.coordinate} vs ${loose.bounds.coordinate}`);
    // Garbage between the two bounds: refused only where the rotation is known.
    const garbage = Float64Array.from(round.result.sum);
    garbage[5] = (check.bounds.coordinate + loose.bounds.coordinate) / 2;
    assert.equal(checkDecodedSum(garbage, inputs).ok, false);
    assert.equal(checkDecodedSum(garbage, { ...inputs, rotationBlock: undefined }).ok, true);
    // A Gaussian share added before the rotation breaks the norm premise: the loose bound stays.
    const gaussian = { ...privacy, noiseStd: 0.01 };
    assert.equal(
      checkDecodedSum(garbage, { ...inputs, privacy: gaussian }).bounds.coordinate,
      checkDecodedSum(garbage, { ...inputs, privacy: gaussian, rotationBlock: undefined }).bounds.coordinate,
    );

    const result = unrotateSum(round.result, skellamRotation(config.roundSeed, D));
    assert.equal(result.sum.length, D);
    const residual = residuals(result.sum, updates);
    const sigma = distributedSumNoiseStd(plan, N);
    let worst = 0;
    let squares = 0;
    for (const r of residual) {
      worst = Math.max(worst, Math.abs(r));
      squares += r * r;
    }
    const std = Math.sqrt(squares / D);
    // The noise keeps its std through the orthonormal map back; the rounding adds < N·γ per rotated coordinate.
    assert.ok(Math.abs(std / sigma - 1) < 0.06, `residual std ${std}, the sum's noise std ${sigma}`);
    // 6σ per coordinate over 3000 Gaussian-like coordinates fails with probability < 1e-5; plus the rounding's worst case.
    assert.ok(worst < 6 * sigma + result.errorBound, `worst residual ${worst}, bound ${6 * sigma + result.errorBound}`);
    for (let u = 1; u <= N; u++) assert.ok(Math.abs(residual[17 * u]!) < 6 * sigma + result.errorBound, `spike of ${u}`);

    // Without the rotation, the same clip range clamps every spike to 0.5: the sum is off by 0.4 there.
    const unrotated = await skellamRound(await roundConfig(D), (u) => updates.get(u)!, 2000);
    const off = residuals(unrotated.result.sum, updates);
    for (let u = 1; u <= N; u++) assert.ok(Math.abs(off[17 * u]!) > 0.35, `unrotated spike of ${u}: ${off[17 * u]}`);
  });

  it('is seeded by the round: identical for every participant and the coordinator, different in another round', async () => {
    const seed = (await roundConfig(3072)).roundSeed;
    const other = (await roundConfig(3072, 'another round')).roundSeed;
    const x = spikyUpdates().get(1)!;
    const a = skellamRotation(seed, D).rotate(x);
    // Another process derives it from the same announced bytes (a copy, not the same object).
    assert.deepEqual(skellamRotation(seed.slice(), D).rotate(x), a);
    assert.deepEqual(clipAndRotate(x, privacy, { roundSeed: seed.slice(), vectorLength: 3072 }).rotated, a);
    assert.notDeepEqual(skellamRotation(other, D).rotate(x), a);
    // A participant refuses a secure vector of any other length.
    assert.throws(() => clipAndRotate(x, privacy, { roundSeed: seed, vectorLength: D }), /3000 values, not the 3072/);
    // Without Skellam the secure vector is the model's own length: nothing is rotated.
    assert.equal(secureVectorLength(D, { clipNorm: CLIP, noiseStd: 0.1 }), D);
    assert.equal(secureVectorLength(D, undefined), D);
  });

  it('keeps the L2 norm, so the accounted ε is the same with rotation; the plan charges the rounded (padded) length', () => {
    const seed = new Uint8Array(32).fill(7);
    const x = spikyUpdates().get(2)!;
    const rotated = skellamRotation(seed, D).rotate(x);
    const norm = (v: Float32Array) => Math.sqrt(v.reduce((s, a) => s + a * a, 0));
    assert.ok(Math.abs(norm(rotated) - norm(x)) < 1e-6);

    const flags = [
      '--secure-aggregation',
      '--min-clients',
      '5',
      '--min-updates',
      '5',
      ...distributedClientDp(5),
      '--distributed-noise',
      'skellam',
      '--admin-token',
      'skellam-rotation-test-admin',
    ];
    const config = parseConfig(flags, {}) as CoordinatorConfig;
    const step = (2 * config.settings.secureAggregation!.clipRange) / config.settings.secureAggregation!.quantizationRange;
    const planOf = (dimension: number) =>
      planDistributedNoise({ clipNorm: 1, noiseMultiplier: 1, dimension, step, expectedContributors: 5, toleratedDropouts: 0 });
    // A model of a whole number of blocks: the rotated plan is the unrotated one, so is ε.
    const whole = withSkellam(config, 4096).clientDp!.skellam!;
    assert.equal(whole.dimension, 4096);
    // A padded model: the participant rounds 3072 values, and the plan charges the Δ₂ of 3072, the bound conditional rounding enforces.
    const padded = withSkellam(config, D).clientDp!.skellam!;
    assert.equal(padded.dimension, 3072);
    assert.equal(
      planOf(padded.dimension).sensitivityL2,
      conditionalRoundingBound(1, step, clipAndRotate(x, privacy, { roundSeed: seed, vectorLength: 3072 }).rotated.length),
    );
    // The padding moves z_eff (hence ε) by less than 1e-9 relative at the default grid.
    const ratio = planOf(3072).effectiveNoiseMultiplier / planOf(D).effectiveNoiseMultiplier;
    assert.ok(Math.abs(ratio - 1) < 1e-9, `z_eff ratio ${ratio}`);
  });
});
