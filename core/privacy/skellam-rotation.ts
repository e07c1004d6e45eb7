import { rotatedLengthFor, rotationFor } from '../compression/update-codec.ts';
import type { RandomRotation } from '../math/hadamard.ts';
import type { UpdatePrivacy } from '../protocol/messages.ts';
import type { SecAggResult } from '../secagg/messages.ts';
import { privatizeUpdate } from './update-privacy.ts';

/**
 * The random rotation of a secure round's inputs: Skellam rounds (Kairouz,
 * Liu, Steinke 2021; Agarwal et al. 2021) and int4 rounds
 * (`SecAggConfig.rotated`, docs/secagg-compression.md). Each participant
 * rotates its clipped update with core/math/hadamard.ts's block Hadamard
 * rotation before quantising (and, under Skellam, before conditional
 * rounding and the noise), and the coordinator rotates the decoded sum back
 * once. The rotation is orthonormal, so the L2 norm (and the sensitivity the
 * accountant charges) is kept, while a few large coordinates are spread over
 * their block: each rotated coordinate of an update of norm ≤ C is then at
 * most C·√(2 ln(4nd'/p)/B) except with probability p over all n·d'
 * (core/secagg/sum-range.ts), which is what lets a clip range far below C
 * hold the update (core/secagg/rotated-clip-range.ts).
 *
 * The signs are drawn from the round's SecAgg seed (SecAggConfig.roundSeed),
 * which the coordinator draws at random when it opens the round, before any
 * participant has trained or sent anything, and announces to every
 * participant with the round: participants and coordinator derive the same
 * rotation. Privacy does not rest on the signs: it comes from the L2 bound
 * that conditional rounding enforces on the integers (Skellam), or from each
 * participant's own noised share, of which rotation and clamping are
 * post-processing (int4 with Gaussian shares), whatever the rotation. What
 * does rest on the signs being independent of the updates is the p of the
 * rotated bounds (a clamp that bites, a false abort of the sum-range check):
 * that holds for a coordinator that draws the seed honestly. One that ground
 * through the 2^32 rotations against a predicted update could make clamping
 * bite, which costs accuracy or aborts the round, never privacy.
 */

/** The rotation of the round whose SecAgg seed is `roundSeed`, for a model of `modelLength` values. */
export function skellamRotation(roundSeed: Uint8Array, modelLength: number): RandomRotation {
  if (roundSeed.length < 4) throw new RangeError(`a round seed of ${roundSeed.length} bytes cannot seed the rotation`);
  // The seed's first 32 bits, little-endian: the rotation's generator takes a 32-bit seed.
  const seed = new DataView(roundSeed.buffer, roundSeed.byteOffset, 4).getUint32(0, true);
  return rotationFor(modelLength, seed);
}

/**
 * Whether a secure round's inputs are rotated: always with Skellam noise,
 * and when the round's config says so (`rotated`: int4, set by the
 * coordinator and announced with the round).
 */
export function secureInputsRotated(config: { readonly rotated?: boolean }, privacy: UpdatePrivacy | undefined): boolean {
  return config.rotated === true || privacy?.skellamVariance !== undefined;
}

/** The secure vector's length for a round with `privacy`: rotated and padded (`secureInputsRotated`), the model's own otherwise. */
export function secureVectorLength(modelLength: number, privacy: UpdatePrivacy | undefined, rotated = false): number {
  return secureInputsRotated({ rotated }, privacy) ? rotatedLengthFor(modelLength) : modelLength;
}

/**
 * The participant's side: a copy of `update` clipped to the round's L2 norm
 * and noised with its Gaussian share when the round has `privacy`
 * (privatizeUpdate), then rotated with the round's rotation; `update` is
 * left as it is. Throws if the round's secure vector is not the rotation's
 * length.
 */
export function clipAndRotate(
  update: Float32Array,
  privacy: UpdatePrivacy | undefined,
  round: { readonly roundSeed: Uint8Array; readonly vectorLength: number },
): { readonly rotated: Float32Array; readonly clipped: boolean } {
  const rotation = skellamRotation(round.roundSeed, update.length);
  if (rotation.rotatedLength !== round.vectorLength)
    throw new RangeError(
      `the round's secure vector has ${round.vectorLength} values, not the ${rotation.rotatedLength} this model's rotation gives`,
    );
  const copy = new Float32Array(update);
  const clipped = privacy !== undefined && privatizeUpdate(copy, privacy).clipped;
  const rotated = rotation.rotate(copy);
  copy.fill(0);
  return { rotated, clipped };
}

/**
 * The coordinator's side: the decoded sum rotated back into the model's basis
 * and cut to its length, once. Per coordinate, a rotated quantisation error
 * of at most e becomes at most e·√B (B the rotation's block); the noise keeps
 * its variance (an orthonormal map of independent equal-variance noise).
 */
export function unrotateSum(result: SecAggResult, rotation: RandomRotation): SecAggResult {
  return { ...result, sum: rotation.unrotate(result.sum), errorBound: result.errorBound * Math.sqrt(rotation.block) };
}
