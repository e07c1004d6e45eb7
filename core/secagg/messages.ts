/** The messages of one secure aggregation round (core/secagg/protocol.ts describes the steps). */

/** Step 0, client → server: the two fresh public keys (raw uncompressed P-256 points). */
export interface AdvertiseKeysMessage {
  readonly round: number;
  readonly from: number;
  /** c_u^PK: for the keys that encrypt shares. */
  readonly encryptionKey: Uint8Array;
  /** s_u^PK: for the pairwise mask seeds. */
  readonly maskingKey: Uint8Array;
}

/** Step 0, server → every client in U1: everyone's public keys. */
export interface KeyDirectoryMessage {
  readonly round: number;
  readonly keys: readonly { readonly index: number; readonly encryptionKey: Uint8Array; readonly maskingKey: Uint8Array }[];
}

/** Step 1, client → server: one ciphertext per live neighbour. */
export interface ShareKeysMessage {
  readonly round: number;
  readonly from: number;
  readonly shares: readonly { readonly to: number; readonly ciphertext: Uint8Array }[];
}

/** Step 1, server → each client in U2: the ciphertexts addressed to it. */
export interface ForwardedSharesMessage {
  readonly round: number;
  readonly to: number;
  readonly shares: readonly { readonly from: number; readonly ciphertext: Uint8Array }[];
}

/** Step 2, client → server: the masked, quantised update, one word (below 2^b) per element. */
export interface MaskedInputMessage {
  readonly round: number;
  readonly from: number;
  readonly masked: Uint32Array;
}

/** Step 2 as it travels: the words packed b bits each (core/secagg/word-packing.ts). */
export interface PackedMaskedInputMessage {
  readonly round: number;
  readonly from: number;
  readonly packed: Uint8Array;
}

/** Step 2, server → every client in U3: who sent a masked input (U3) and who shared keys but did not (U2∖U3). */
export interface UnmaskRequestMessage {
  readonly round: number;
  readonly survivors: readonly number[];
  readonly dropped: readonly number[];
}

export interface OwnedShare {
  /** Whose secret this is a share of. */
  readonly owner: number;
  readonly share: Uint8Array;
}

/** Step 3, client → server: self-mask shares of survivors, masking-key shares of the dropped. */
export interface UnmaskResponseMessage {
  readonly round: number;
  readonly from: number;
  readonly selfMaskShares: readonly OwnedShare[];
  readonly maskingKeyShares: readonly OwnedShare[];
}

export interface SecAggResult {
  readonly round: number;
  /** Σ of the contributors' clipped updates (+ their noise), decoded; float64. */
  readonly sum: Float64Array;
  /** U3: whose inputs are in the sum, ascending. */
  readonly contributors: readonly number[];
  /** Worst-case quantisation error per coordinate: |contributors|·Δ. */
  readonly errorBound: number;
}

export interface MaskInputOptions {
  /**
   * Runs on a copy of the update just before quantisation: the place for the
   * participant's share of distributed DP noise (e.g. addGaussianNoise with
   * std z·C/√m). The server only ever sees the noised sum.
   */
  readonly beforeQuantize?: (values: Float32Array) => void;
  /**
   * Runs on the encoding (Z_{2^32}) before masking: the place for integer
   * distributed DP noise (Skellam), which the sum then carries exactly.
   */
  readonly afterQuantize?: (encoded: Uint32Array) => void;
  /**
   * Replaces quantize(): the caller's own encoding onto the same grid (e.g.
   * conditional rounding, core/privacy/conditional-rounding.ts), same length.
   */
  readonly encode?: (values: Float32Array) => Uint32Array;
}
