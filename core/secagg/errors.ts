/**
 * Errors of the secure aggregation core. `code` is stable so that the
 * transport can map it onto its own acknowledgement codes.
 */

export type SecAggErrorCode =
  /** The configuration is unusable (threshold, graph degree, quantisation overflow...). */
  | 'invalid-config'
  /** The message names another round. */
  | 'wrong-round'
  /** The sender (or a participant named in the message) is not in this step of the round. */
  | 'unknown-participant'
  /** A share is addressed to, or claimed from, a participant who is not the sender's neighbour. */
  | 'unknown-recipient'
  /** A key, share or ciphertext has the wrong number of bytes or is not a byte array. */
  | 'wrong-size'
  /** The masked vector does not have the round's vector length (or its packed bytes are not ⌈L·b/8⌉). */
  | 'wrong-length'
  /** A masked word does not fit the round's word bits, or the padding bits after the last packed word are not zero. */
  | 'bad-packing'
  /** The same sender, recipient or share owner appears twice. */
  | 'duplicate'
  /** The message arrived after its step was closed. */
  | 'late'
  /** The message or call belongs to a step that is not open yet. */
  | 'out-of-order'
  /** A share set is incomplete or names participants inconsistently with what this side knows. */
  | 'inconsistent'
  /** A share of the wrong kind: a survivor's masking-key share or a dropped participant's self-mask share. */
  | 'wrong-share-kind'
  /** A public key is not a valid P-256 point, or a ciphertext fails authentication. */
  | 'invalid-crypto'
  /** Too few participants are left to continue; the round is over and nothing was revealed. */
  | 'too-few-survivors'
  /** The round was aborted earlier; this object can do nothing more. */
  | 'aborted';

export class SecAggError extends Error {
  override readonly name: string = 'SecAggError';
  constructor(
    readonly code: SecAggErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The round cannot finish. Thrown before anything that the abort protects
 * (a reconstruction, a share) is revealed; the object that threw has wiped
 * its secrets and refuses every further call.
 */
export class SecAggAbortError extends SecAggError {
  override readonly name: string = 'SecAggAbortError';
  constructor(message: string, code: SecAggErrorCode = 'too-few-survivors') {
    super(code, message);
  }
}
