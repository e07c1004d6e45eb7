import { l2Norm } from '../privacy/update-privacy.ts';
import { ErrorCode, ProtocolError } from '../protocol/errors.ts';
import type { UpdateEncodingName } from '../protocol/messages.ts';
import { FrameKind } from '../wire/frame.ts';
import { decodeValues } from './update-codec.ts';

/** An update frame's values (still rotated for int4: `rotated`) and their L2 norm. */
export interface DecodedUpdate {
  readonly update: Float32Array;
  readonly norm: number;
  readonly rotated: boolean;
}

/**
 * Decodes and validates an update frame in one of the `allowed` encodings
 * (decodeValues' checks, every one) and computes its L2 norm, in one pass
 * over the values instead of two: the norm, summed in float64, is finite
 * exactly when every value is (l2Norm), so it is the finiteness check. Only
 * a frame that fails it is read again, for the index of its first bad value
 * (NON_FINITE).
 */
export function decodeUpdate(data: unknown, expectedCount: number, allowed: readonly UpdateEncodingName[] = ['float32']): DecodedUpdate {
  const options = { kind: FrameKind.Update, expectedCount, allowed };
  const decoded = decodeValues(data, { ...options, requireFinite: false });
  const norm = l2Norm(decoded.values);
  if (!Number.isFinite(norm)) {
    decodeValues(data, options);
    throw new ProtocolError(ErrorCode.NonFinite, 'the update holds a value that is not finite');
  }
  return { update: decoded.values, norm, rotated: decoded.rotated };
}
