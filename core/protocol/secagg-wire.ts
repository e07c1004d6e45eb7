import type {
  AdvertiseKeysMessage,
  ForwardedSharesMessage,
  KeyDirectoryMessage,
  MaskedInputMessage,
  SecAggConfig,
  ShareKeysMessage,
  UnmaskRequestMessage,
  UnmaskResponseMessage,
} from '../secagg/protocol.ts';
import { packMaskedInput } from '../secagg/word-packing.ts';
import type {
  Binary,
  SecAggAdvertiseWire,
  SecAggForwardedWire,
  SecAggKeysWire,
  SecAggMaskedWire,
  SecAggSharesWire,
  SecAggUnmaskRequestWire,
  SecAggUnmaskWire,
} from './messages.ts';

/**
 * core/secagg's messages as they travel. Lists of keys, ciphertexts and
 * shares go as one binary blob of equal-sized pieces next to a list of
 * indices: socket.io refuses a packet with more than 10 binary attachments,
 * and a round has one per participant. Decoding an incoming blob into pieces
 * is the only check here; core/secagg checks each piece's size and meaning.
 */

export class WireShapeError extends Error {}

/** Binary as it arrives (an ArrayBuffer in browsers, a Buffer in Node) as a Uint8Array. */
export function toBytes(value: Binary): Uint8Array {
  return value instanceof ArrayBuffer ? new Uint8Array(value) : value;
}

export function pack(parts: readonly Uint8Array[]): Uint8Array {
  const size = parts[0]?.length ?? 0;
  const out = new Uint8Array(size * parts.length);
  parts.forEach((p, i) => {
    if (p.length !== size) throw new WireShapeError('pieces of a packed list must have equal sizes');
    out.set(p, i * size);
  });
  return out;
}

/** `count` equal pieces of `blob`, each copied. */
export function unpack(blob: Binary, count: number, what: string): Uint8Array[] {
  const bytes = toBytes(blob);
  if (count === 0) {
    if (bytes.length !== 0) throw new WireShapeError(`${what}: bytes for an empty list`);
    return [];
  }
  if (bytes.length % count !== 0)
    throw new WireShapeError(`wrong-size: ${what}: ${bytes.length} bytes do not split into ${count} equal pieces`);
  const size = bytes.length / count;
  return Array.from({ length: count }, (_, i) => bytes.slice(i * size, (i + 1) * size));
}

export function encodeAdvertise(m: AdvertiseKeysMessage): SecAggAdvertiseWire {
  return { round: m.round, from: m.from, encryptionKey: m.encryptionKey, maskingKey: m.maskingKey };
}

export function encodeKeys(m: KeyDirectoryMessage): SecAggKeysWire {
  return {
    round: m.round,
    indices: m.keys.map((k) => k.index),
    encryptionKeys: pack(m.keys.map((k) => k.encryptionKey)),
    maskingKeys: pack(m.keys.map((k) => k.maskingKey)),
  };
}

export function decodeKeys(w: SecAggKeysWire): KeyDirectoryMessage {
  const enc = unpack(w.encryptionKeys, w.indices.length, 'encryption keys');
  const mask = unpack(w.maskingKeys, w.indices.length, 'masking keys');
  return { round: w.round, keys: w.indices.map((index, i) => ({ index, encryptionKey: enc[i]!, maskingKey: mask[i]! })) };
}

export function encodeShares(m: ShareKeysMessage): SecAggSharesWire {
  return { round: m.round, from: m.from, to: m.shares.map((s) => s.to), ciphertexts: pack(m.shares.map((s) => s.ciphertext)) };
}

export function decodeShares(w: SecAggSharesWire): ShareKeysMessage {
  const c = unpack(w.ciphertexts, w.to.length, 'share ciphertexts');
  return { round: w.round, from: w.from, shares: w.to.map((to, i) => ({ to, ciphertext: c[i]! })) };
}

export function encodeForwarded(m: ForwardedSharesMessage): SecAggForwardedWire {
  return { round: m.round, to: m.to, from: m.shares.map((s) => s.from), ciphertexts: pack(m.shares.map((s) => s.ciphertext)) };
}

export function decodeForwarded(w: SecAggForwardedWire): ForwardedSharesMessage {
  const c = unpack(w.ciphertexts, w.from.length, 'forwarded ciphertexts');
  return { round: w.round, to: w.to, shares: w.from.map((from, i) => ({ from, ciphertext: c[i]! })) };
}

/** The masked words packed `config.wordBits` bits each (32, little-endian uint32s, when the config leaves it out). */
export function encodeMasked(m: MaskedInputMessage, config: Pick<SecAggConfig, 'wordBits'> = {}): SecAggMaskedWire {
  const { round, from, packed } = packMaskedInput(m, config);
  return { round, from, masked: packed };
}

export function encodeUnmaskRequest(m: UnmaskRequestMessage): SecAggUnmaskRequestWire {
  return { round: m.round, survivors: [...m.survivors], dropped: [...m.dropped] };
}

export function encodeUnmask(m: UnmaskResponseMessage): SecAggUnmaskWire {
  return {
    round: m.round,
    from: m.from,
    selfMaskOwners: m.selfMaskShares.map((s) => s.owner),
    selfMaskShares: pack(m.selfMaskShares.map((s) => s.share)),
    maskingKeyOwners: m.maskingKeyShares.map((s) => s.owner),
    maskingKeyShares: pack(m.maskingKeyShares.map((s) => s.share)),
  };
}

export function decodeUnmask(w: SecAggUnmaskWire): UnmaskResponseMessage {
  const self = unpack(w.selfMaskShares, w.selfMaskOwners.length, 'self-mask shares');
  const key = unpack(w.maskingKeyShares, w.maskingKeyOwners.length, 'masking-key shares');
  return {
    round: w.round,
    from: w.from,
    selfMaskShares: w.selfMaskOwners.map((owner, i) => ({ owner, share: self[i]! })),
    maskingKeyShares: w.maskingKeyOwners.map((owner, i) => ({ owner, share: key[i]! })),
  };
}
