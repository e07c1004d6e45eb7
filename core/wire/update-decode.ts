import { l2Norm } from '../privacy/update-privacy.ts';
import { decodeFrame, FrameKind } from './frame.ts';

/** An update frame's values and their L2 norm. */
export interface DecodedUpdate {
  readonly update: Float32Array;
  readonly norm: number;
}

/**
 * Decodes and validates an update frame (decodeFrame's checks, every one)
 * and computes its L2 norm, in one pass over the values instead of two: the
 * norm, summed in float64, is finite exactly when every value is (l2Norm),
 * so it is the finiteness check. Only a frame that fails it is read again,
 * by decodeFrame, for the index of its first bad value (NON_FINITE).
 */
export function decodeUpdate(data: unknown, expectedCount: number): DecodedUpdate {
  const update = decodeFrame(data, { kind: FrameKind.Update, expectedCount, requireFinite: false });
  const norm = l2Norm(update);
  if (!Number.isFinite(norm)) decodeFrame(data, { kind: FrameKind.Update, expectedCount });
  return { update, norm };
}
