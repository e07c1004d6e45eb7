import { stalenessRefusal } from '../../core/aggregation/staleness.ts';
import { decodeUpdate } from '../../core/compression/update-decode.ts';
import { ackError, ErrorCode, ProtocolError, type Ack } from '../../core/protocol/errors.ts';
import type { UpdateEncodingName, UpdateMessage } from '../../core/protocol/messages.ts';

/** What a training slot handed out: the round of its round:start and the model version sent with it. */
export interface HandedOut {
  readonly round: number;
  readonly baseVersion: number;
}

/** What an upload is checked against: the version it would go into (none open: no staleness yet), S, the run's encoding. */
export interface UploadBasis {
  readonly appliesTo: number | undefined;
  readonly maxStaleness: number;
  readonly encoding: UpdateEncodingName;
  /** Values an update holds (fine-tuning: the trainable ones only). */
  readonly updateLength: number;
}

/**
 * An upload in async mode, checked in one order for both intakes, one
 * process's pool (async-pool.ts) and a cluster node's
 * (cluster/async-node.ts), which differ only in what each outcome does to
 * their own bookkeeping.
 */
export type AsyncUpload<S extends HandedOut> =
  /** The decoded values and their norm, from the decode's one pass (the norm is the finiteness check). */
  | { readonly kind: 'usable'; readonly update: Float32Array; readonly norm: number; readonly slot: S }
  /** No slot for this round: the upload changes nothing. */
  | { readonly kind: 'no-slot'; readonly refusal: Ack<never> }
  /** Trained from another model than its slot handed out, or an unreadable frame: out of this version. */
  | { readonly kind: 'unusable'; readonly refusal: Ack<never> }
  /** Staler than S: refused, and its participant trains again from the newest model. */
  | { readonly kind: 'too-stale'; readonly refusal: Ack<never> };

export function checkAsyncUpload<S extends HandedOut>(slot: S | undefined, message: UpdateMessage, basis: UploadBasis): AsyncUpload<S> {
  if (!slot || slot.round !== message.round) {
    return {
      kind: 'no-slot',
      refusal: ackError(ErrorCode.NotSelected, `no training slot for round ${message.round}: wait for round:start with the newest model`),
    };
  }
  if (message.baseVersion !== slot.baseVersion) {
    return {
      kind: 'unusable',
      refusal: ackError(
        ErrorCode.StaleModel,
        `update trained from model ${message.baseVersion}, round ${slot.round} handed out model ${slot.baseVersion}`,
      ),
    };
  }
  const stale = basis.appliesTo === undefined ? undefined : stalenessRefusal(message.baseVersion, basis.appliesTo, basis.maxStaleness);
  if (stale !== undefined) return { kind: 'too-stale', refusal: ackError(ErrorCode.UpdateTooStale, stale) };
  try {
    // The run's encoding (int4, whose rotation is per round, is refused in async mode at start).
    const { update, norm } = decodeUpdate(message.update, basis.updateLength, [basis.encoding]);
    return { kind: 'usable', update, norm, slot };
  } catch (error) {
    if (error instanceof ProtocolError) return { kind: 'unusable', refusal: ackError(error.code, error.message) };
    throw error;
  }
}
