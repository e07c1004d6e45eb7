import { rotatedLengthFor, rotationBlock } from '../compression/update-codec.ts';
import { clipRangeHoldingNoise } from './modulus.ts';
import { FALSE_ABORT_PROBABILITY, rotatedCoordinateBound } from './sum-range.ts';

/**
 * The smallest clip range c of a compressed secure round that holds every
 * honest coordinate (docs/secagg-compression.md, "The clip range under the
 * rotation"), for updates clipped to L2 norm C and, with Gaussian shares,
 * noised with std σ before quantisation.
 *
 * - Unrotated: a coordinate of a clipped update can be C itself, so
 *   c ≥ C + t·σ with t the Gaussian tail over all n·d draws at probability p.
 * - Rotated (int4, core/privacy/skellam-rotation.ts): a rotated coordinate of
 *   an update of norm ≤ C is at most min(C, C·√(2 ln(4nd'/p)/B)) except with
 *   probability p/2 over all n·d' (Hoeffding over the random signs, the bound
 *   core/secagg/sum-range.ts checks the rotated sum with), and the rotated
 *   noise share (again N(0, σ²) per coordinate) gets the other p/2. For the
 *   demo MLP (d' = 102,400, B = 1024, n = 16) that is c = 0.27·C instead of C:
 *   a 3.7× finer step for the same value bits.
 *
 * p is FALSE_ABORT_PROBABILITY (10⁻⁹): the probability that clamping to ±c
 * bites at all in a round. Clamping a coordinate only moves it towards 0, so
 * it never increases an update's L2 norm: the sensitivity C (and, under
 * Skellam, the conditionally rounded norm) holds whatever c is; p charges
 * the bias of a clamped value and, with Gaussian shares, the chance that the
 * sum carries less noise than reported.
 */
export function clipRangeFloor(inputs: {
  /** C: the L2 norm every update is clipped to. */
  readonly clipNorm: number;
  /** σ of each participant's Gaussian share, added before quantisation; 0 without. */
  readonly noiseStd: number;
  /** n: the most participants a round can have. */
  readonly participants: number;
  /** d: the model's values. */
  readonly dimension: number;
  readonly rotated: boolean;
}): number {
  const { clipNorm, noiseStd, participants: n, dimension: d } = inputs;
  const p = FALSE_ABORT_PROBABILITY;
  if (!inputs.rotated) return clipRangeHoldingNoise(clipNorm, noiseStd, n, d, p);
  const length = rotatedLengthFor(d);
  const coordinate = Math.min(clipNorm, rotatedCoordinateBound(clipNorm, rotationBlock(d), n * length, p / 2));
  return clipRangeHoldingNoise(coordinate, noiseStd, n, length, p / 2);
}
