import type { UpdatePrivacy } from '../protocol/messages.ts';
import type { RoundRecord } from '../protocol/status.ts';
import { quantizationStep, type QuantizationConfig } from './quantize.ts';

/**
 * Checks the decoded secure sum against what honest participants can
 * produce, before it reaches the model. Masking hides each input, so a
 * participant that sends a random masked vector (or random shares that
 * corrupt the unmasking) puts garbage into the sum that nobody can
 * attribute: every coordinate can land anywhere in ±2^31·Δ (±8192 with the
 * defaults), where honest inputs are clipped to ±c. These checks catch such
 * garbage whenever it leaves the range honest inputs span; they cannot catch
 * an in-range lie (docs/secagg-input-validation.md says what would).
 *
 * For n contributors, clip range c, step Δ = 2c/R, and each contributor's
 * update clipped to L2 norm C where the round clips (FitConfig.privacy):
 * - range: every coordinate of the sum lies within n·(c + Δ), plus, with
 *   Skellam noise (added to the integers after quantisation, so not
 *   clipped), the bound `a` on one coordinate of Skellam(n·μ_i)·Δ;
 * - norm: ‖sum‖ ≤ n·(C + √d·Δ) + the noise allowance; without an L2 clip the
 *   range check already bounds the norm by √d·n·(c + Δ), and only it runs.
 *
 * Skellam rounds sum rotated updates (core/privacy/skellam-rotation.ts) and
 * are checked still rotated: a rotated coordinate of one update is at most
 * min(c, t) with t = C·√(2 ln(4nd/p)/B) (`rotatedCoordinateBound`, B the
 * rotation's block, Hoeffding over the random signs, which honest updates do
 * not depend on) except with probability p/2 over all n·d; the Skellam tail
 * then gets the other p/2. A participant that aligns its update with the
 * signs can reach c, and is refused like other garbage.
 *
 * Noise allowances hold except with probability FALSE_ABORT_PROBABILITY per
 * round, by union bounds over coordinates and contributors, so an honest
 * round is aborted with at most that probability:
 * - Skellam(v) per coordinate (a sum of Skellams is one): Chernoff,
 *   P(|X| ≥ a) ≤ 2·exp(−a·asinh(a/v) + v·(√(1 + (a/v)²) − 1)), and the
 *   norm allowance √d·a (every coordinate within a);
 * - Gaussian shares N(0, σ²) per coordinate, added before quantisation (then
 *   clipped with the update): each share's norm is at most
 *   σ·√(d + 2√(d·x) + 2x) with x = ln(n/p) (Laurent–Massart 2000), and by
 *   the triangle inequality the sum's norm is at most n·(C + that + √d·Δ):
 *   coordinate clipping of noised values can make a sum's norm larger than
 *   the unclipped sum's, so the tighter √n bound would not be safe.
 */

/** The probability that an honest round fails either check. */
export const FALSE_ABORT_PROBABILITY = 1e-9;

export interface SumRangeInputs {
  readonly quantization: QuantizationConfig;
  /** n: contributors whose inputs are in the sum. */
  readonly contributors: number;
  /** The round's client-side privacy (clip norm, Gaussian or Skellam noise), when it has any. */
  readonly privacy?: UpdatePrivacy;
  /**
   * B, when the sum is of updates each rotated with the round's random block
   * rotation (Skellam rounds, core/privacy/skellam-rotation.ts) and is checked
   * still rotated. Honest updates do not depend on the rotation's signs.
   */
  readonly rotationBlock?: number;
}

export interface SumBounds {
  /** The most any coordinate of an honest sum can reach (except with FALSE_ABORT_PROBABILITY). */
  readonly coordinate: number;
  /** The most an honest sum's L2 norm can reach; undefined where updates are not L2-clipped. */
  readonly norm?: number;
}

export type SumRangeCheck =
  | { readonly ok: true; readonly bounds: SumBounds }
  | { readonly ok: false; readonly reason: string; readonly bounds: SumBounds };

/** The bounds an honest sum of `inputs.contributors` updates of `dimension` values stays within. */
export function sumBounds(dimension: number, inputs: SumRangeInputs): SumBounds {
  const { quantization, contributors: n, privacy } = inputs;
  if (!(Number.isInteger(n) && n >= 1)) throw new RangeError(`contributors must be a positive integer, got ${n}`);
  if (!(Number.isInteger(dimension) && dimension >= 1)) throw new RangeError(`dimension must be a positive integer, got ${dimension}`);
  const step = quantizationStep(quantization);
  const d = dimension;
  const p = FALSE_ABORT_PROBABILITY;
  // The rotated bound needs each update's norm within C: not with a Gaussian share added before the rotation.
  const rotationBlock = privacy !== undefined && privacy.noiseStd === 0 ? inputs.rotationBlock : undefined;
  // With a rotation the Skellam tail and the rotated coordinates' bound share p.
  const skellamShare = rotationBlock === undefined ? p : p / 2;
  // Skellam noise in integer units: the sum carries Skellam(n·μ_i); every coordinate within it except with probability skellamShare.
  const skellam =
    privacy?.skellamVariance !== undefined && privacy.skellamVariance > 0
      ? step * skellamTail(n * privacy.skellamVariance, skellamShare / (2 * d))
      : 0;
  const perContributor =
    rotationBlock === undefined
      ? quantization.clipRange
      : Math.min(quantization.clipRange, rotatedCoordinateBound(privacy!.clipNorm, rotationBlock, n * d, p / 2));
  const coordinate = n * (perContributor + step) + skellam;
  if (privacy === undefined) return { coordinate };
  const x = Math.log((2 * n) / p);
  const gaussianShare = privacy.noiseStd > 0 ? privacy.noiseStd * Math.sqrt(d + 2 * Math.sqrt(d * x) + 2 * x) : 0;
  const norm = n * (privacy.clipNorm + gaussianShare + Math.sqrt(d) * step) + Math.sqrt(d) * skellam;
  return { coordinate, norm };
}

/**
 * Float32 clipping and rotation err by far less than 1e-6 relative
 * (log2 B ≤ 10 additions deep); the margin covers them many times over.
 */
const ROTATION_MARGIN = 1 + 1e-3;

/**
 * t with P(some of `coordinates` rotated coordinates exceeds t) ≤ `failure`,
 * for updates of L2 norm ≤ C rotated with random signs (Hoeffding): a rotated
 * coordinate is Σ ±x_i/√B over one block, so P(|y| ≥ t) ≤ 2·exp(−t²B/(2C²)),
 * and the union over the coordinates gives t = C·√(2 ln(2·coordinates/failure)/B).
 */
export function rotatedCoordinateBound(clipNorm: number, block: number, coordinates: number, failure: number): number {
  return ROTATION_MARGIN * clipNorm * Math.sqrt((2 * Math.log((2 * coordinates) / failure)) / block);
}

/** The range and norm checks of the decoded sum (see the module comment). */
export function checkDecodedSum(sum: Float64Array, inputs: SumRangeInputs): SumRangeCheck {
  const bounds = sumBounds(sum.length, inputs);
  let squares = 0;
  let outside = 0;
  let worst = 0;
  let worstAt = -1;
  for (let i = 0; i < sum.length; i++) {
    const v = sum[i]!;
    const magnitude = Math.abs(v);
    // NaN cannot come out of dequantizeSum, but a NaN must never pass as "in range".
    if (!(magnitude <= bounds.coordinate)) {
      outside++;
      if (!(magnitude <= worst)) {
        worst = magnitude;
        worstAt = i;
      }
    }
    squares += v * v;
  }
  const n = inputs.contributors;
  if (outside > 0) {
    return {
      ok: false,
      bounds,
      reason:
        `decoded sum refused: the sum of ${n} updates is out of range: ${outside} of ${sum.length} coordinates exceed ${bounds.coordinate.toPrecision(4)} ` +
        `(the most ${n} clipped inputs and their noise can reach), the largest |${worst.toPrecision(4)}| at index ${worstAt}: a participant sent input it could not have encoded honestly`,
    };
  }
  const norm = Math.sqrt(squares);
  if (bounds.norm !== undefined && !(norm <= bounds.norm)) {
    return {
      ok: false,
      bounds,
      reason: `decoded sum refused: the sum of ${n} updates has L2 norm ${norm.toPrecision(4)}, above ${bounds.norm.toPrecision(4)} (the most ${n} updates clipped to ${inputs.privacy!.clipNorm} and their noise can reach): a participant sent input it could not have encoded honestly`,
    };
  }
  return { ok: true, bounds };
}

/** How many rounds of `history` were aborted because their decoded secure sum failed these checks. */
export function countSumRejections(history: readonly RoundRecord[]): number {
  return history.filter((r) => r.secagg?.sumRefused === true).length;
}

/**
 * The smallest a with P(|Skellam(v)| ≥ a) ≤ 2·tail by the Chernoff bound
 * P(X ≥ a) ≤ exp(−a·t + v·(cosh t − 1)) at its best t = asinh(a/v).
 */
export function skellamTail(variance: number, tail: number): number {
  if (!(variance > 0) || !Number.isFinite(variance)) throw new RangeError(`variance must be positive and finite, got ${variance}`);
  const target = -Math.log(tail);
  const exponent = (a: number) => a * Math.asinh(a / variance) - variance * (Math.sqrt(1 + (a / variance) ** 2) - 1);
  let low = 0;
  let high = Math.sqrt(variance) + 1;
  while (exponent(high) < target) high *= 2;
  for (let i = 0; i < 100; i++) {
    const mid = (low + high) / 2;
    if (exponent(mid) < target) low = mid;
    else high = mid;
  }
  return high;
}
