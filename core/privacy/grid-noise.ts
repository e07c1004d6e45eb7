/**
 * Float-safe Gaussian noise: the rounded Gaussian on a grid.
 *
 * Adding float noise to a float value leaks the value through which results
 * are representable (Mironov 2012): with float32 noise of std 1 on neighbouring
 * sums 0 and 1, 43% of the outputs from 0 cannot come from 1. Here no float
 * ever meets the noise:
 *
 *   1. the clipped sum S is snapped to the grid γ = C/G (G grid steps per clip
 *      norm C): k = clamp(round(S/γ), ±centreBound), an integer vector;
 *   2. integer noise Z = clamp(round(σ_int · N(0, 1)), ±noiseBound) is drawn
 *      per coordinate, independently of S;
 *   3. k + Z is computed exactly (integers below the arithmetic's exact range:
 *      2^24 in float32, 2^53 in float64) and only then scaled back by γ.
 *
 * Everything released is a function of the integer vector k + Z, and
 * k + round(N) = round(k + N) for integer k: the output is a post-processing
 * of the continuous Gaussian mechanism k ↦ k + N(0, σ_int² I). Its sensitivity
 * is that of k: neighbouring sums differ by at most C in L2, and the two
 * roundings move each coordinate by less than one grid step in total, so
 * ‖k − k'‖₂ ≤ G + √d (clamping is 1-Lipschitz per coordinate and only helps).
 * The noise is over-provisioned to cover that: σ_int = σ·(G + √d), so the
 * noise multiplier against the grid sensitivity is still σ, and every
 * accountant of the continuous (subsampled) Gaussian with multiplier σ holds
 * unchanged. The price is noise larger by the factor 1 + √d/G (the
 * "grid slack", below 1% for the grids chosen here).
 *
 * What remains: the sampler's float Gaussian itself (Box–Muller from 53-bit
 * uniforms) approximates N(0, 1), and its largest output is about 8.6: the
 * output is then impossible only beyond ~8.6σ_int from k, which adds to δ at
 * most P(|N(0,1)| > 8.6 − 1/σ) per coordinate (< 1e-13 for σ ≥ 1). The float
 * error of computing the clipped sum itself (before snapping) is not part of
 * this bound, as in every DP-SGD library.
 */

/**
 * The standard normal source the noise is drawn from (update-privacy.ts's
 * GaussianSampler); declared here so this module does not import the one
 * that imports it.
 */
export interface NormalSampler {
  /** One N(0, 1) sample. */
  next(): number;
  /** Fills `out` with N(0, scale^2) samples. */
  fill(out: Float32Array | Float64Array, scale?: number): void;
}

/** Integers up to this magnitude add exactly in float32. */
export const FLOAT32_EXACT_INTEGER = 2 ** 24;
/** Integers up to this magnitude add exactly in float64. */
export const FLOAT64_EXACT_INTEGER = 2 ** 53;
/** The noise is clamped at this many integer stds (Box–Muller never exceeds ~8.6). */
const NOISE_CLAMP_STDS = 9;

export interface GridNoisePlan {
  /** G: grid steps per clip norm; γ = C/G. */
  readonly stepsPerClip: number;
  /** γ: the grid step in update units. */
  readonly step: number;
  /** σ_int = σ·(G + √d): the integer noise std (before rounding). */
  readonly integerStd: number;
  /** |Z| ≤ noiseBound: the integer noise is clamped here. */
  readonly noiseBound: number;
  /** |k| ≤ centreBound: the snapped sum is clamped here, so |k + Z| stays exact. */
  readonly centreBound: number;
  /** √d/G: the noise is (1 + slack)·σC instead of σC. */
  readonly slack: number;
}

export interface GridOptions {
  /** Integers below this add exactly: FLOAT32_EXACT_INTEGER on tensors, FLOAT64_EXACT_INTEGER in JS numbers. */
  readonly exactInteger: number;
  /** The snapped sum must represent each coordinate up to this many clip norms without clamping. */
  readonly rangeInClips: number;
}

/**
 * Chooses the finest power-of-two grid G for which the clamped sum
 * (±rangeInClips·G) plus the clamped noise (±9σ_int) fits the exact integer
 * range. Depends only on public settings (C, σ, d, range), never on data.
 */
export function planGridNoise(clipNorm: number, noiseMultiplier: number, dimension: number, options: GridOptions): GridNoisePlan {
  if (!(clipNorm > 0) || !Number.isFinite(clipNorm)) throw new RangeError(`clip norm must be positive and finite, got ${clipNorm}`);
  if (!(noiseMultiplier >= 0) || !Number.isFinite(noiseMultiplier))
    throw new RangeError(`noise multiplier must be finite and >= 0, got ${noiseMultiplier}`);
  if (!(Number.isInteger(dimension) && dimension >= 1)) throw new RangeError(`dimension must be a positive integer, got ${dimension}`);
  const { exactInteger, rangeInClips } = options;
  const rootD = Math.sqrt(dimension);
  // Need G·range + 9σ(G + √d) + 1 < exact, i.e. G < (exact − 1 − 9σ√d) / (range + 9σ).
  const room = exactInteger - 1 - NOISE_CLAMP_STDS * noiseMultiplier * rootD;
  const limit = room / (rangeInClips + NOISE_CLAMP_STDS * noiseMultiplier);
  if (!(limit >= 1)) {
    throw new RangeError(
      `no integer grid fits noise multiplier ${noiseMultiplier} on ${dimension} values within the exact range ${exactInteger}`,
    );
  }
  const G = 2 ** Math.floor(Math.log2(limit));
  const integerStd = noiseMultiplier * (G + rootD);
  const noiseBound = Math.ceil(NOISE_CLAMP_STDS * integerStd);
  const centreBound = exactInteger - 1 - noiseBound;
  return { stepsPerClip: G, step: clipNorm / G, integerStd, noiseBound, centreBound, slack: rootD / G };
}

/** The grid for DP-SGD's clipped sum on the backend (float32): every coordinate up to 64 clip norms, or 2B, unclamped. */
export function dpSgdGrid(clipNorm: number, noiseMultiplier: number, dimension: number, expectedBatchSize: number): GridNoisePlan {
  return planGridNoise(clipNorm, noiseMultiplier, dimension, {
    exactInteger: FLOAT32_EXACT_INTEGER,
    rangeInClips: Math.max(64, 2 * expectedBatchSize),
  });
}

/**
 * The grid for client-level noise computed in JS numbers (float64): a
 * participant's own update (range one clip norm) or the coordinator's sum of
 * clipped updates. float64 leaves room for a grid far finer than the noise, so
 * the slack √d/G and the rounding are negligible.
 */
export function clientLevelGrid(clipNorm: number, noiseMultiplier: number, dimension: number, rangeInClips: number): GridNoisePlan {
  return planGridNoise(clipNorm, noiseMultiplier, dimension, { exactInteger: FLOAT64_EXACT_INTEGER, rangeInClips });
}

/** One integer noise value: round(σ_int·N(0,1)), clamped to ±noiseBound. */
export function roundedGaussian(plan: GridNoisePlan, sampler: NormalSampler): number {
  return clampNoise(Math.round(plan.integerStd * sampler.next()), plan);
}

function clampNoise(z: number, plan: GridNoisePlan): number {
  return Math.min(plan.noiseBound, Math.max(z, -plan.noiseBound));
}

/** `length` integer noise values as float32 (exact: |Z| < 2^24 by the plan). */
export function roundedGaussianNoise(length: number, plan: GridNoisePlan, sampler: NormalSampler): Float32Array {
  if (plan.noiseBound >= FLOAT32_EXACT_INTEGER) throw new RangeError("this grid's noise does not fit float32 exactly");
  const out = new Float32Array(length);
  if (plan.integerStd === 0) return out;
  // σ_int·N(0,1) in bulk (float64), then round and clamp: the same values roundedGaussian draws one at a time.
  // Drawn in cache-sized chunks of one stream (the same values as one draw of `length`), not a 13 MB float64 array.
  const normal = new Float64Array(Math.min(length, NOISE_CHUNK));
  for (let start = 0; start < length; start += NOISE_CHUNK) {
    const chunk = length - start >= normal.length ? normal : normal.subarray(0, length - start);
    sampler.fill(chunk, plan.integerStd);
    for (let i = 0; i < chunk.length; i++) out[start + i] = clampNoise(Math.round(chunk[i]!), plan);
  }
  return out;
}

/** Normals per chunk of roundedGaussianNoise: 64 KiB of float64, which stays in cache. */
const NOISE_CHUNK = 8192;

/**
 * Noises `values` in place on the plan's grid, in float64 (client-level noise
 * on a participant's update or the coordinator's sum): each value becomes
 * (snap(x) + Z)·γ, a function of the exact integer snap(x) + Z only.
 */
export function noiseOnGrid(values: Float32Array | Float64Array, plan: GridNoisePlan, sampler: NormalSampler): void {
  if (plan.centreBound + plan.noiseBound >= FLOAT64_EXACT_INTEGER) throw new RangeError('this grid does not fit float64 exactly');
  const inverse = 1 / plan.step;
  const normal = new Float64Array(values.length);
  if (plan.integerStd > 0) sampler.fill(normal, plan.integerStd);
  for (let i = 0; i < values.length; i++) {
    let k = Math.round(values[i]! * inverse);
    if (k > plan.centreBound) k = plan.centreBound;
    else if (k < -plan.centreBound) k = -plan.centreBound;
    values[i] = (k + clampNoise(Math.round(normal[i]!), plan)) * plan.step;
  }
}

/** The std per coordinate of the noise `noiseOnGrid` adds, in update units: γ·√(σ_int² + 1/12) (the rounding adds ≤ 1/12 step²). */
export function gridNoiseStd(plan: GridNoisePlan): number {
  return plan.integerStd === 0 ? 0 : plan.step * Math.sqrt(plan.integerStd ** 2 + 1 / 12);
}
