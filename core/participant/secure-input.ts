import { conditionallyRound, conditionalRoundingBound } from '../privacy/conditional-rounding.ts';
import { addSkellamNoiseMod32 } from '../privacy/distributed-noise.ts';
import { clipAndRotate, secureInputsRotated } from '../privacy/skellam-rotation.ts';
import { privatizeUpdate } from '../privacy/update-privacy.ts';
import type { UpdatePrivacy } from '../protocol/messages.ts';
import { SecureRandom } from '../random/prng.ts';
import type { MaskInputOptions } from '../secagg/messages.ts';
import type { SecAggConfig } from '../secagg/protocol.ts';
import { quantizationStep } from '../secagg/quantize.ts';

/** What a participant masks in a secure round, and how it is quantised. */
export interface SecureInput {
  /** The vector to mask: the update itself, or (rotated rounds) a clipped, rotated and padded copy. */
  readonly input: Float32Array;
  readonly options: MaskInputOptions;
  /** Whether the L2 clip changed the update; known after maskInput ran its beforeQuantize. */
  clipped(): boolean;
}

/**
 * The participant's side of a secure round's encoding: the round's clipping
 * and noise (FitConfig.privacy, once), then, in a rotated round (Skellam,
 * or `config.rotated`: int4), the round's rotation (core/privacy/skellam-rotation.ts),
 * which refuses a secure vector that is not the rotation's padded length.
 *
 * - Skellam: conditional rounding enforces the grid sensitivity the
 *   accountant charges (computed here, not announced), and the noise goes
 *   into the integers after rounding.
 * - Rotated without Skellam: the rotated values are quantised onto the
 *   round's grid, each clamped to ±c. Clamping moves a coordinate towards 0,
 *   so it never increases the L2 norm: the clipped update's norm ≤ C (the
 *   sensitivity) holds for what is quantised.
 * - Unrotated: the noise share goes in before quantisation, in place.
 */
export function secureInput(update: Float32Array, privacy: UpdatePrivacy | undefined, config: SecAggConfig): SecureInput {
  const skellamVariance = privacy?.skellamVariance;
  if (privacy && skellamVariance !== undefined) {
    const { rotated, clipped } = clipAndRotate(update, privacy, config);
    const { quantization } = config;
    return {
      input: rotated,
      clipped: () => clipped,
      options: {
        encode: (values) => {
          const bound = conditionalRoundingBound(privacy.clipNorm, quantizationStep(quantization), values.length);
          return conditionallyRound(values, quantization, bound, new SecureRandom()).encoded;
        },
        // The sum carries the sum of the shares exactly.
        afterQuantize: (encoded) => addSkellamNoiseMod32(encoded, skellamVariance, new SecureRandom()),
      },
    };
  }
  if (secureInputsRotated(config, privacy)) {
    const { rotated, clipped } = clipAndRotate(update, privacy, config);
    return { input: rotated, clipped: () => clipped, options: {} };
  }
  if (!privacy) return { input: update, clipped: () => false, options: {} };
  // The coordinator only ever decodes the noised sum.
  let clipped = false;
  return {
    input: update,
    clipped: () => clipped,
    options: {
      beforeQuantize: (values) => {
        clipped = privatizeUpdate(values, privacy).clipped;
      },
    },
  };
}
