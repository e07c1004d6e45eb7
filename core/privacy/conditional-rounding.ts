import type { UniformSource } from '../random/prng.ts';
import type { QuantizationConfig } from '../secagg/quantize.ts';

/**
 * Conditional randomized rounding (Kairouz, Liu, Steinke 2021, DDG; Agarwal,
 * Kairouz, Liu 2021, Skellam): a clipped update x with ‖x‖₂ ≤ C is scaled to
 * the secure sum's grid (step γ) and rounded stochastically, and the rounding
 * is drawn again until the integer vector z has
 *   ‖z‖₂ ≤ Δ₂ = min(C/γ + √d, √(C²/γ² + d/4 + √(2 ln(1/β))·(C/γ + √d/2))).
 * Plain stochastic rounding only guarantees the first term (error < 1 per
 * coordinate); one draw meets the second with probability ≥ 1 − β, so the
 * expected number of draws is at most 1/(1 − β). The bound is enforced on the
 * integers the participant sends, so it is the sensitivity the accountant is
 * charged whatever happened in floating point, and β adds nothing to δ: it
 * only sets how often a draw is repeated (and the small bias that adds).
 *
 * Failure path: after MAX_ROUNDING_DRAWS draws (each failing with probability
 * ≤ β, so all fail with probability ≤ β^64 < 1e-13) the vector is scaled
 * under the bound and rounded toward zero, which cannot increase any
 * coordinate's magnitude; the result is checked like every draw, and an error
 * is thrown (nothing is sent) if even that does not meet it.
 */

/** β = e^(−1/2), the papers' choice. */
export const ROUNDING_BETA = Math.exp(-0.5);
/** Draws before the deterministic fallback. */
export const MAX_ROUNDING_DRAWS = 64;
/**
 * ‖z‖² is summed in float64: for d ≤ 2^24 its relative error is below 2^-29,
 * so comparing against Δ₂²·(1 − 2^-20) never lets a true norm above Δ₂ pass.
 */
const NORM_MARGIN = 1 - 2 ** -20;

/** Δ₂ in grid units for updates clipped to C, grid step γ, d values, and β. */
export function conditionalRoundingBound(clipNorm: number, step: number, dimension: number, beta: number = ROUNDING_BETA): number {
  if (!(clipNorm > 0 && step > 0 && Number.isFinite(clipNorm / step)))
    throw new RangeError('clip norm and step must be positive and finite');
  if (!(Number.isInteger(dimension) && dimension >= 1)) throw new RangeError(`dimension must be a positive integer, got ${dimension}`);
  if (!(beta > 0 && beta < 1)) throw new RangeError(`β must be in (0, 1), got ${beta}`);
  const c = clipNorm / step;
  const rootD = Math.sqrt(dimension);
  const conditioned = Math.sqrt(c * c + dimension / 4 + Math.sqrt(2 * Math.log(1 / beta)) * (c + rootD / 2));
  return Math.min(c + rootD, conditioned);
}

export interface ConditionalRounding {
  /** z mod 2^32 (two's complement), like core/secagg/quantize.ts's output. */
  readonly encoded: Uint32Array;
  /** Stochastic draws made (MAX_ROUNDING_DRAWS + 1 when the fallback ran). */
  readonly draws: number;
  readonly fallback: boolean;
}

/**
 * Encodes `values` (already clipped to L2 norm C) onto the grid of `quantization`
 * with ‖z‖₂ ≤ `bound` (grid units). Coordinates are first clipped to ±c as the
 * plain quantiser does (which only lowers the norm).
 */
export function conditionallyRound(
  values: Float32Array,
  quantization: QuantizationConfig,
  bound: number,
  uniform: UniformSource,
): ConditionalRounding {
  const c = quantization.clipRange;
  const half = quantization.quantizationRange / 2;
  const scale = quantization.quantizationRange / (2 * c);
  const scaled = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const x = values[i]!;
    if (Number.isNaN(x)) throw new RangeError(`coordinate ${i} is NaN`);
    scaled[i] = (x > c ? c : Math.max(x, -c)) * scale;
  }
  const limit = bound * bound * NORM_MARGIN;
  const z = new Int32Array(values.length);
  const within = () => {
    let squares = 0;
    for (let i = 0; i < z.length; i++) squares += z[i]! * z[i]!;
    return squares <= limit;
  };
  const clamp = (v: number) => Math.min(half, Math.max(v, -half));
  let fallback = false;
  let draws = 0;
  let ok = false;
  while (!ok && draws < MAX_ROUNDING_DRAWS) {
    draws++;
    for (let i = 0; i < z.length; i++) {
      const v = scaled[i]!;
      const low = Math.floor(v);
      z[i] = clamp(uniform.next() < v - low ? low + 1 : low);
    }
    ok = within();
  }
  if (!ok) {
    fallback = true;
    draws++;
    let squares = 0;
    for (let i = 0; i < scaled.length; i++) squares += scaled[i]! * scaled[i]!;
    const shrink = Math.min(1, (bound * NORM_MARGIN) / Math.sqrt(squares));
    for (let i = 0; i < z.length; i++) z[i] = clamp(Math.trunc(scaled[i]! * shrink));
    if (!within()) throw new RangeError(`conditional rounding could not bring the update within ‖z‖₂ ≤ ${bound}: nothing is sent`);
  }
  const encoded = new Uint32Array(z.length);
  for (let i = 0; i < z.length; i++) encoded[i] = z[i]! >>> 0;
  return { encoded, draws, fallback };
}
