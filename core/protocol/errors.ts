/**
 * Stable error codes returned through acknowledgements. The codes are part of
 * the wire protocol (docs/protocol.md): clients may switch on them, so a code
 * is never renamed or reused for another meaning.
 */
export const ErrorCode = {
  /** The payload is not an object of the documented shape. */
  BadPayload: 'BAD_PAYLOAD',
  /** The client speaks a protocol version the coordinator does not. */
  UnsupportedProtocol: 'UNSUPPORTED_PROTOCOL',
  /** The event needs a joined participant; call `join` first. */
  NotJoined: 'NOT_JOINED',
  /** The update names a round that is not the one collecting updates. */
  WrongRound: 'WRONG_ROUND',
  /** The update was trained from another global model version. */
  StaleModel: 'STALE_MODEL',
  /** The sender was not selected for this round. */
  NotSelected: 'NOT_SELECTED',
  /** The sender already sent an update for this round. */
  DuplicateUpdate: 'DUPLICATE_UPDATE',
  /** The binary frame is malformed (magic, version, kind, header). */
  BadFrame: 'BAD_FRAME',
  /** The frame's value count differs from the model's parameter count, or its byte length from its header. */
  WrongLength: 'WRONG_LENGTH',
  /** The update contains NaN or +-Infinity. */
  NonFinite: 'NON_FINITE',
  /**
   * The frame's encoding (its dtype byte) is not the one the round asked for,
   * or its compressed body is malformed: a block size out of range, a scale
   * that is negative or not finite, a code out of range, a padding nibble
   * that is not zero (docs/protocol.md §5.3). The sender is out of the round.
   */
  BadEncoding: 'BAD_ENCODING',
  /** The event name is not part of the protocol. */
  UnknownEvent: 'UNKNOWN_EVENT',
  /** The federation has finished; no more rounds will run. */
  FederationDone: 'FEDERATION_DONE',
  /**
   * The update's L2 norm is above the bound the coordinator enforces
   * (`--max-update-norm`). The update is rejected, never clipped, and the
   * sender is out of the round; the message gives the norm and the bound.
   */
  UpdateTooLarge: 'UPDATE_TOO_LARGE',
  /**
   * The update's L2 norm is far above the norms the coordinator accepted
   * recently (a multiple of their median; docs/poisoning.md). The update is
   * rejected, never clipped, and the sender is out of the round; the message
   * gives the norm, the bound and what the bound is relative to.
   */
  UpdateOutlier: 'UPDATE_OUTLIER',
  /**
   * The connection has no valid token: a missing or wrong join token on `/`,
   * a missing or wrong admin token on `/admin` or an admin HTTP route, or an
   * admin event on a dashboard connection of a coordinator without an admin
   * token. Sent as the socket.io `connect_error` (`err.data.code`), as an ack,
   * or as HTTP 401. Retrying with the same token cannot succeed.
   */
  Unauthorized: 'UNAUTHORIZED',
  /**
   * The connection sends faster than its message budget (`--rate-limit`).
   * The request was not processed; slow down and retry. A connection that
   * stays far over the budget is disconnected.
   */
  RateLimited: 'RATE_LIMITED',
  /**
   * The coordinator already holds `--max-connections` connections: the
   * socket.io handshake is refused (`connect_error`, `err.data.code`). Retry later.
   */
  TooManyConnections: 'TOO_MANY_CONNECTIONS',
  /**
   * A secure aggregation message was refused by the protocol core: shares for
   * an unknown recipient, wrong sizes, a duplicate or late message, a masked
   * vector of the wrong length, a `from` that is not the sender's index. The
   * message starts with the core's stable code (e.g. "unknown-recipient: ...").
   * The sender is out of the round; the round goes on without it.
   */
  SecAggRejected: 'SECAGG_REJECTED',
  /**
   * An admin `control` action that does not apply in the federation's
   * current control state (resume while running, start twice, anything
   * after stop). The message names the current state; nothing changed.
   */
  ControlNotAllowed: 'CONTROL_NOT_ALLOWED',
  /**
   * An admin `settings` change was refused: a value out of range (the same
   * rules as the command-line flags), or a change that would make a privacy
   * or secure-aggregation guarantee false. The message says which setting
   * and why; no setting changed.
   */
  InvalidSetting: 'INVALID_SETTING',
  /**
   * `model:frozen` named frozen weights this coordinator does not hold: its
   * task does not fine-tune, or fine-tunes from other frozen weights (the
   * message gives the hash it holds, if any).
   */
  UnknownFrozenWeights: 'UNKNOWN_FROZEN_WEIGHTS',
  /**
   * Asynchronous mode (`--mode async`): the update was trained from a model
   * more than `--max-staleness` versions older than the one it would be
   * applied to. It is refused, never mixed in; the coordinator sends the
   * participant the newest model to train again (docs/async.md).
   */
  UpdateTooStale: 'UPDATE_TOO_STALE',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface ProtocolErrorBody {
  readonly code: ErrorCode;
  readonly message: string;
}

/** An error that carries a protocol error code, thrown by validators and decoders. */
export class ProtocolError extends Error implements ProtocolErrorBody {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
  }
  toBody(): ProtocolErrorBody {
    return { code: this.code, message: this.message };
  }
}

/** The acknowledgement of every request: a value or a coded error, never both. */
export type Ack<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: ProtocolErrorBody };

export function ackOk<T>(value: T): Ack<T> {
  return { ok: true, value };
}

export function ackError<T = never>(code: ErrorCode, message: string): Ack<T> {
  return { ok: false, error: { code, message } };
}
