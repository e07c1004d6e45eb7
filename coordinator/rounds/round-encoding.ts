import { frameBytes } from '../../core/compression/update-codec.ts';
import type { ModelEncodingName } from '../../core/protocol/messages.ts';
import type { RoundEncodingStats } from '../../core/protocol/status.ts';
import type { RoundBasis } from './open-round.ts';

/**
 * A round's traffic by encoding, for its record (the dashboard's bytes per
 * round by encoding): absent when everything travelled as float32.
 */
export function roundEncoding(
  open: RoundBasis,
  received: number,
  modelEncoding: ModelEncodingName | undefined,
): { readonly encoding?: RoundEncodingStats } {
  const update = open.fit.compression?.encoding ?? 'float32';
  const model = modelEncoding ?? 'float32';
  if (update === 'float32' && model === 'float32') return {};
  const float32Frame = frameBytes('float32', open.decoder.paramCount);
  return { encoding: { update, model, bytesInFloat32: received * float32Frame, bytesOutFloat32: open.selected.size * float32Frame } };
}
