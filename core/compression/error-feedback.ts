import type { UpdateCompression } from '../protocol/messages.ts';
import type { UniformSource } from '../random/prng.ts';
import { FrameKind } from '../wire/frame.ts';
import { encodeValues, type EncodedFrame } from './update-codec.ts';

/**
 * Client-side error feedback (Seide et al. 2014; Karimireddy et al. 2019):
 * what compression lost from one update is added to the next, so the sum of
 * what the coordinator decodes over rounds tracks the sum of the updates the
 * participant released, instead of drifting by every round's error.
 *
 * Privacy: the participant feeds this only its *released* update, the one
 * already clipped and noised (FitConfig.privacy). The residual it keeps is
 * (released + previous residual) − decoded: a function of values already
 * released and of rounding randomness independent of the data, so
 * compressing with it is post-processing and the (ε, δ) of the released
 * updates holds unchanged (docs/compression.md). Nothing here sees the raw
 * update, and nothing here changes how the update was clipped.
 */
export class ErrorFeedback {
  private residual: Float32Array | undefined;

  /** The residual carried into the next update (a copy), or undefined when there is none. */
  get carried(): Float32Array | undefined {
    return this.residual?.slice();
  }

  /**
   * Encodes `released` plus the carried residual. The residual moves on only
   * when `commit` is called (the coordinator accepted the update): an update
   * that never arrived loses nothing.
   */
  encode(released: Float32Array, compression: UpdateCompression, random: UniformSource): PendingUpdate {
    const residual = this.usableResidual(released.length);
    const compensated = residual ? addInto(Float32Array.from(released), residual) : released;
    const encoded = encodeValues(FrameKind.Update, compensated, compression, random);
    return {
      ...encoded,
      commit: () => {
        // float32 loses nothing: no residual to carry.
        if (compression.encoding === 'float32') {
          this.residual = undefined;
          return;
        }
        const next = new Float32Array(compensated.length);
        for (let i = 0; i < next.length; i++) next[i] = compensated[i]! - encoded.decoded[i]!;
        this.residual = next;
      },
    };
  }

  /** Forgets the residual (a new model size, or the participant turned error feedback off). */
  reset(): void {
    this.residual = undefined;
  }

  private usableResidual(length: number): Float32Array | undefined {
    if (this.residual && this.residual.length !== length) this.residual = undefined;
    return this.residual;
  }
}

/** An encoded update whose residual is kept once `commit` is called. */
export interface PendingUpdate extends EncodedFrame {
  commit(): void;
}

function addInto(target: Float32Array, addend: Float32Array): Float32Array {
  for (let i = 0; i < target.length; i++) target[i]! += addend[i]!;
  return target;
}
