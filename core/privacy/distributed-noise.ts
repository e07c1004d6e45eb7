import type { UniformSource } from '../random/prng.ts';
import { conditionalRoundingBound } from './conditional-rounding.ts';
import { lgamma } from './math.ts';

/**
 * Distributed DP under secure aggregation with the Skellam mechanism
 * (Agarwal, Kairouz, Liu 2021): each participant scales its clipped update to
 * the secure sum's integer grid γ, rounds it, and adds integer Skellam noise
 * Sk(μ_i) = Poisson(μ_i/2) − Poisson(μ_i/2) per coordinate (variance μ_i).
 * A sum of independent Skellams is exactly a Skellam of the summed variance,
 * so the decoded sum carries Sk(Σμ_i): the sum's noise, not each
 * participant's, is what the accountant charges, and in integers no float
 * representation can leak anything.
 *
 * Over-provisioning for dropouts: with n expected contributors and up to D
 * tolerated dropouts, each adds μ_i = μ / (n − D − 1) where μ = (zΔ₂)² is the
 * target variance (z the noise multiplier of central DP, Δ₂ the grid
 * sensitivity). Any released sum has at least n − D contributors; under the
 * add/remove neighbour relation (the neighbour lacks one participant AND its
 * noise) the other n − D − 1 still carry μ, so the guarantee is that of
 * central DP with multiplier z (plus the Skellam correction below), with up
 * to D dropouts. Assumes the contributors other than the one protected add
 * their noise (honest-but-curious), as every distributed DP scheme does.
 *
 * Sensitivity on the grid: each participant rounds with conditional
 * randomized rounding (core/privacy/conditional-rounding.ts), which enforces
 * ‖z‖₂ ≤ Δ₂ = min(C/γ + √d, √(C²/γ² + d/4 + √(2 ln(1/β))(C/γ + √d/2)))
 * on the integers it sends (β = e^(−1/2); β adds nothing to δ, the bound is
 * enforced, not probable), and for an integer vector
 * ‖z‖₁ ≤ min(√d·Δ₂, Δ₂²) = Δ₁.
 *
 * Accounting (Agarwal et al. 2021, Thm 3.5): Sk(μ) per coordinate is
 * (α, ε(α))-RDP with ε(α) ≤ αΔ₂²/(2μ) + min(((2α−1)Δ₂² + 6Δ₁)/(4μ²), 3Δ₁/(2μ)).
 * With μ = (zΔ₂)² the first term is the Gaussian's α/(2z²); the second is
 * covered by charging the RDP accountant a Gaussian of a slightly smaller
 * multiplier z_eff (see skellamEffectiveMultiplier), valid for every α ≥ 1.
 * This bound is an RDP bound: it must be converted with the RDP accountant,
 * not a PLD of the Gaussian. Sampling cannot amplify (the coordinator knows
 * who was selected): q = 1.
 */

export interface DistributedNoiseSettings {
  /** C: every update's L2 clip norm. */
  readonly clipNorm: number;
  /** z: the central-DP noise multiplier the sum must match. */
  readonly noiseMultiplier: number;
  /** d: values per update. */
  readonly dimension: number;
  /** γ: the secure sum's quantisation step (update units per integer). */
  readonly step: number;
  /** n: contributors expected in a round. */
  readonly expectedContributors: number;
  /** D: dropouts tolerated with the target noise kept (n − D − 1 ≥ 1). */
  readonly toleratedDropouts: number;
}

export interface DistributedNoisePlan extends DistributedNoiseSettings {
  /** Δ₂: the norm conditional rounding enforces, in grid units. */
  readonly sensitivityL2: number;
  /** Δ₁ = min(√d·Δ₂, Δ₂²). */
  readonly sensitivityL1: number;
  /** μ = (zΔ₂)²: the sum's target variance in grid units². */
  readonly targetVariance: number;
  /** μ_i = μ/(n − D − 1): each participant's Skellam variance. */
  readonly participantVariance: number;
  /** What the RDP accountant is charged per round (q = 1). */
  readonly effectiveNoiseMultiplier: number;
}

export function planDistributedNoise(settings: DistributedNoiseSettings): DistributedNoisePlan {
  const { clipNorm: C, noiseMultiplier: z, dimension: d, step, expectedContributors: n, toleratedDropouts: D } = settings;
  if (!(C > 0 && z > 0 && step > 0) || ![C, z, step].every(Number.isFinite))
    throw new RangeError('clip norm, noise multiplier and step must be positive and finite');
  if (!(Number.isInteger(d) && d >= 1)) throw new RangeError(`dimension must be a positive integer, got ${d}`);
  if (!(Number.isInteger(n) && Number.isInteger(D) && D >= 0 && n - D - 1 >= 1)) {
    throw new RangeError(`need n − D − 1 ≥ 1 contributors besides the one protected (n = ${n}, D = ${D})`);
  }
  const sensitivityL2 = conditionalRoundingBound(C, step, d);
  const sensitivityL1 = Math.min(Math.sqrt(d) * sensitivityL2, sensitivityL2 * sensitivityL2);
  const targetVariance = (z * sensitivityL2) ** 2;
  return {
    ...settings,
    sensitivityL2,
    sensitivityL1,
    targetVariance,
    participantVariance: targetVariance / (n - D - 1),
    effectiveNoiseMultiplier: skellamEffectiveMultiplier(targetVariance, sensitivityL1, sensitivityL2),
  };
}

/** Skellam RDP at order α for variance μ and grid sensitivities Δ₁, Δ₂ (Agarwal et al. 2021, Thm 3.5). */
export function skellamRdp(alpha: number, variance: number, l1: number, l2: number): number {
  return (
    (alpha * l2 * l2) / (2 * variance) +
    Math.min(((2 * alpha - 1) * l2 * l2 + 6 * l1) / (4 * variance * variance), (3 * l1) / (2 * variance))
  );
}

/**
 * The Gaussian multiplier z_eff whose RDP α/(2z_eff²) bounds the Skellam's at
 * every order α ≥ 1: since (2α − 1)Δ₂² + 6Δ₁ ≤ α(2Δ₂² + 6Δ₁) there,
 * ε(α) ≤ α·[Δ₂²/(2μ) + (2Δ₂² + 6Δ₁)/(4μ²)] = α/(2z_eff²). With μ = (zΔ₂)²
 * the bracket is 1/(2z²) plus a term of order 1/(z⁴Δ₂²): z_eff is z to
 * within that.
 */
export function skellamEffectiveMultiplier(variance: number, l1: number, l2: number): number {
  const perAlpha = (l2 * l2) / (2 * variance) + (2 * l2 * l2 + 6 * l1) / (4 * variance * variance);
  return 1 / Math.sqrt(2 * perAlpha);
}

/**
 * The std per coordinate of the noise in a decoded sum of `contributors`
 * participants' updates, in update units: γ·√(contributors·μ_i). For range
 * checks of the decoded sum (a bound of a few times this, times √d for a
 * norm, keeps false aborts negligible).
 */
export function distributedSumNoiseStd(plan: DistributedNoisePlan, contributors: number): number {
  if (!(Number.isInteger(contributors) && contributors >= 0))
    throw new RangeError(`contributors must be a non-negative integer, got ${contributors}`);
  return plan.step * Math.sqrt(contributors * plan.participantVariance);
}

/** A Poisson(mean) draw: Knuth's product method below 10, Hörmann's PTRS (1993) above. */
export function samplePoisson(mean: number, uniform: UniformSource): number {
  if (!(mean >= 0) || !Number.isFinite(mean)) throw new RangeError(`Poisson mean must be finite and >= 0, got ${mean}`);
  if (mean === 0) return 0;
  if (mean < 10) {
    const limit = Math.exp(-mean);
    let k = 0;
    let product = uniform.next();
    while (product > limit) {
      k++;
      product *= uniform.next();
    }
    return k;
  }
  const slam = Math.sqrt(mean);
  const logMean = Math.log(mean);
  const b = 0.931 + 2.53 * slam;
  const a = -0.059 + 0.02483 * b;
  const invAlpha = 1.1239 + 1.1328 / (b - 3.4);
  const vr = 0.9277 - 3.6224 / (b - 2);
  for (;;) {
    const u = uniform.next() - 0.5;
    const v = uniform.next();
    const us = 0.5 - Math.abs(u);
    const k = Math.floor(((2 * a) / us + b) * u + mean + 0.43);
    if (us >= 0.07 && v <= vr) return k;
    if (k < 0 || (us < 0.013 && v > us)) continue;
    if (Math.log(v) + Math.log(invAlpha) - Math.log(a / (us * us) + b) <= -mean + k * logMean - lgamma(k + 1)) return k;
  }
}

/** Adds Skellam(variance) integer noise to every value, in place (integers stay integers). */
export function addSkellamNoise(values: Int32Array | Float64Array, variance: number, uniform: UniformSource): void {
  const half = variance / 2;
  for (let i = 0; i < values.length; i++) values[i] = values[i]! + samplePoisson(half, uniform) - samplePoisson(half, uniform);
}

/** Adds Skellam(variance) integer noise to a secure-aggregation encoding, mod 2^32 (two's complement), in place. */
export function addSkellamNoiseMod32(encoded: Uint32Array, variance: number, uniform: UniformSource): void {
  const half = variance / 2;
  for (let i = 0; i < encoded.length; i++) encoded[i] = (encoded[i]! + samplePoisson(half, uniform) - samplePoisson(half, uniform)) >>> 0;
}

/**
 * Refuses a plan whose decoded sum could wrap mod 2^b (b = `wordBits`, 32
 * by default): up to `maxContributors` encodings of at most C/γ + 1 per
 * coordinate (the update is clipped to C in L2, hence per coordinate), plus
 * 12 stds of the summed noise, must stay below 2^(b−1).
 */
export function checkSkellamRange(plan: DistributedNoisePlan, maxContributors: number, wordBits = 32): void {
  const worst = maxContributors * (plan.clipNorm / plan.step + 1) + 12 * Math.sqrt(maxContributors * plan.participantVariance);
  if (!(worst < 2 ** (wordBits - 1))) {
    throw new RangeError(
      `a sum of ${maxContributors} updates with Skellam noise can reach ${worst.toExponential(3)}, past 2^${wordBits - 1}: lower the quantisation range or the participants`,
    );
  }
}
