import { SecAggError } from './errors.ts';
import { maxParticipantsForWords, signedWord } from './modulus.ts';

/**
 * Fixed-point encoding of updates into Z_{2^32}, two's complement.
 *
 * Encoding, for clip range c and quantisation range R (an even integer):
 *   scale S = R / (2c), step Δ = 1/S = 2c/R
 *   z = stochasticRound(S · clip(x, −c, c)) ∈ [−R/2, R/2], stored as z mod 2^32.
 * Stochastic rounding (up with probability frac(v), CSPRNG) is unbiased:
 * E[z] = S·clip(x); the rounding error of one coordinate is in (−1, 1) units,
 * i.e. |Δ·z − clip(x)| < Δ.
 *
 * Sum of n encodings: Σz ∈ [−n·R/2, n·R/2]. Read as a signed int32 the sum is
 * exact iff n·R/2 ≤ 2^31 − 1, so
 *   maxParticipants = ⌊(2^31 − 1) / (R/2)⌋        (R = 2^22 → 1023)
 * and configurations with more participants are refused. Then, per coordinate,
 *   |decodeSum − Σ clip(x_i)| < n·Δ = n·2c/R     (worst case, deterministic)
 * with mean 0 and standard deviation ≤ √n·Δ/2 (each rounding is a Bernoulli
 * error of variance ≤ 1/4 units²). Example: c = 8, R = 2^22 → Δ = 3.81e-6; for
 * n = 100 the worst case is 3.81e-4 per coordinate, typically ≤ 1.9e-5.
 * Decoding itself (int32 × Δ in float64) adds at most 2^-52 relative error.
 * Clipping is not part of that bound: coordinates outside [−c, c] are moved to
 * ±c. With distributed DP noise, choose c above clip norm + several noise
 * standard deviations so that clipping the noised values rarely bites.
 */

export interface QuantizationConfig {
  /** c > 0: each coordinate is clipped to [−c, c]. */
  readonly clipRange: number;
  /** R: an even integer, 2 ≤ R ≤ 2^31; one coordinate encodes to an integer in [−R/2, R/2]. */
  readonly quantizationRange: number;
}

/** Flower's SecAgg+ defaults: clipping range 8, quantisation range 2^22, modulus 2^32. */
export const DEFAULT_QUANTIZATION: QuantizationConfig = { clipRange: 8, quantizationRange: 2 ** 22 };

export function validateQuantization(config: QuantizationConfig): void {
  const { clipRange: c, quantizationRange: r } = config;
  if (!(typeof c === 'number' && Number.isFinite(c) && c > 0))
    throw new SecAggError('invalid-config', `clipRange must be a finite number > 0, got ${c}`);
  if (!(Number.isInteger(r) && r >= 2 && r <= 2 ** 31 && r % 2 === 0)) {
    throw new SecAggError('invalid-config', `quantizationRange must be an even integer in [2, 2^31], got ${r}`);
  }
}

/** Δ = 2c/R: one integer step in update units. */
export function quantizationStep(config: QuantizationConfig): number {
  validateQuantization(config);
  return (2 * config.clipRange) / config.quantizationRange;
}

/**
 * The most encodings whose sum cannot wrap: ⌊(2^31 − 1)/(R/2)⌋ for 32-bit
 * words; for narrower words the rule of core/secagg/modulus.ts.
 */
export function maxParticipants(config: QuantizationConfig, wordBits = 32): number {
  validateQuantization(config);
  return maxParticipantsForWords(config.quantizationRange, wordBits);
}

/** The worst-case error per coordinate of decodeSum for `count` summed encodings: count·Δ (strict). */
export function sumErrorBound(config: QuantizationConfig, count: number, wordBits = 32): number {
  checkCount(config, count, wordBits);
  return count * quantizationStep(config);
}

function checkCount(config: QuantizationConfig, count: number, wordBits: number): void {
  const max = maxParticipants(config, wordBits);
  if (!Number.isInteger(count) || count < 1 || count > max) {
    throw new SecAggError(
      'invalid-config',
      `a sum of ${count} encodings can wrap mod 2^${wordBits} with quantizationRange ${config.quantizationRange}; at most ${max}`,
    );
  }
}

const RANDOM_BLOCK = 16384; // uint32s: getRandomValues' 65,536-byte limit

/**
 * Clips, scales and stochastically rounds `values` into Z_{2^32}. NaN is
 * refused (it would silently encode as 0); ±Infinity clips to ±c.
 */
export function quantize(values: Float32Array | Float64Array, config: QuantizationConfig): Uint32Array {
  validateQuantization(config);
  const c = config.clipRange;
  const scale = config.quantizationRange / (2 * c);
  const half = config.quantizationRange / 2;
  const out = new Uint32Array(values.length);
  const random = new Uint32Array(Math.min(RANDOM_BLOCK, values.length));
  for (let start = 0; start < values.length; start += RANDOM_BLOCK) {
    const end = Math.min(values.length, start + RANDOM_BLOCK);
    crypto.getRandomValues(random);
    for (let i = start; i < end; i++) {
      const x = values[i]!;
      if (Number.isNaN(x)) throw new RangeError(`coordinate ${i} is NaN`);
      const v = (x > c ? c : Math.max(x, -c)) * scale;
      // Not floor(v + u): near R/2 the sum can round up to the next integer.
      // v − floor(v) is exact; round up with probability frac(v) (to 2^-32).
      const low = Math.floor(v);
      let z = random[i - start]! < (v - low) * 4294967296 ? low + 1 : low;
      // c·(R/2c) may exceed R/2 by an ulp: keep the range the overflow bound assumes.
      if (z > half) z = half;
      else if (z < -half) z = -half;
      out[i] = z >>> 0;
    }
  }
  return out;
}

/**
 * Σ x_i from the mod-2^b sum of `count` encodings (two's complement in b
 * bits → signed integer → × Δ); `sum` holds words below 2^b.
 */
export function dequantizeSum(sum: Uint32Array, count: number, config: QuantizationConfig, wordBits = 32): Float64Array {
  checkCount(config, count, wordBits);
  const step = quantizationStep(config);
  const out = new Float64Array(sum.length);
  for (let i = 0; i < sum.length; i++) out[i] = signedWord(sum[i]!, wordBits) * step;
  return out;
}

/** Adds `b` into `a` mod 2^32, in place: the server's sum of masked inputs (and the plain sum in tests). */
export function addInto(a: Uint32Array, b: Uint32Array): void {
  if (a.length !== b.length) throw new SecAggError('wrong-length', `vectors of length ${a.length} and ${b.length}`);
  for (let i = 0; i < a.length; i++) a[i] = (a[i]! + b[i]!) >>> 0;
}
