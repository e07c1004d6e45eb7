import { SecAggError } from './errors.ts';
import type { MaskedInputMessage, PackedMaskedInputMessage } from './messages.ts';

/**
 * Masked words of b bits (1 ≤ b ≤ 32) packed tightly, as they travel in
 * `secagg:masked`: word i occupies bits i·b … i·b + b − 1 of the byte string,
 * least significant bit first (bit j of the string is bit j mod 8 of byte
 * ⌊j/8⌋). L words take ⌈L·b/8⌉ bytes; the unused high bits of the last byte
 * are zero. For b = 32 this is exactly L little-endian uint32s, the layout
 * of the 32-bit protocol.
 */

export const MAX_WORD_BITS = 32;

/** Bytes of `count` packed words of `bits` bits. */
export function packedBytes(count: number, bits: number): number {
  checkBits(bits);
  return Math.ceil((count * bits) / 8);
}

/** Packs `words` (each below 2^bits) into ⌈L·bits/8⌉ bytes. */
export function packWords(words: Uint32Array, bits: number): Uint8Array {
  checkBits(bits);
  if (bits === 32) return new Uint8Array(littleEndianWords(words).buffer);
  const limit = 2 ** bits;
  const out = new Uint8Array(packedBytes(words.length, bits));
  // Bits waiting to be written, below 2^(bits + 7) < 2^39: exact in a double, so no 32-bit overflow.
  let pending = 0;
  let pendingBits = 0;
  let at = 0;
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w >= limit) throw new SecAggError('bad-packing', `word ${i} (${w}) does not fit ${bits} bits`);
    pending += w * 2 ** pendingBits;
    pendingBits += bits;
    while (pendingBits >= 8) {
      out[at++] = pending % 256;
      pending = Math.floor(pending / 256);
      pendingBits -= 8;
    }
  }
  if (pendingBits > 0) out[at] = pending;
  return out;
}

/**
 * The `count` words of `bits` bits packed in `bytes`. Refuses a byte string
 * of another length ('wrong-length') and non-zero padding bits
 * ('bad-packing'), so every accepted string has exactly one meaning.
 */
export function unpackWords(bytes: Uint8Array, count: number, bits: number): Uint32Array {
  checkBits(bits);
  const expected = packedBytes(count, bits);
  if (!(bytes instanceof Uint8Array) || bytes.length !== expected)
    throw new SecAggError('wrong-length', `masked input must be ${expected} bytes (${count} words of ${bits} bits), got ${bytes.length}`);
  const out = new Uint32Array(count);
  if (bits === 32) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < count; i++) out[i] = view.getUint32(4 * i, true);
    return out;
  }
  const limit = 2 ** bits;
  let pending = 0;
  let pendingBits = 0;
  let at = 0;
  for (let i = 0; i < count; i++) {
    while (pendingBits < bits) {
      pending += bytes[at++]! * 2 ** pendingBits;
      pendingBits += 8;
    }
    out[i] = pending % limit;
    pending = Math.floor(pending / limit);
    pendingBits -= bits;
  }
  if (pending !== 0) throw new SecAggError('bad-packing', `the ${pendingBits} padding bits after the last word must be zero`);
  return out;
}

function checkBits(bits: number): void {
  if (!(Number.isInteger(bits) && bits >= 1 && bits <= MAX_WORD_BITS))
    throw new SecAggError('invalid-config', `word bits must be an integer in [1, ${MAX_WORD_BITS}], got ${bits}`);
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** `words` as little-endian bytes: the array itself on a little-endian machine (a copy, so the caller's array is not shared). */
function littleEndianWords(words: Uint32Array): Uint32Array {
  const out = words.slice();
  if (!LITTLE_ENDIAN) {
    const view = new DataView(out.buffer);
    for (let i = 0; i < words.length; i++) view.setUint32(4 * i, words[i]!, true);
  }
  return out;
}

/** The masked input as it travels: its words packed `config.wordBits` (default 32) bits each. */
export function packMaskedInput(message: MaskedInputMessage, config: { readonly wordBits?: number }): PackedMaskedInputMessage {
  return { round: message.round, from: message.from, packed: packWords(message.masked, config.wordBits ?? MAX_WORD_BITS) };
}

/** The words of a packed masked input, checked against the round's length and word bits. */
export function unpackMaskedInput(
  message: PackedMaskedInputMessage,
  config: { readonly wordBits?: number; readonly vectorLength: number },
): MaskedInputMessage {
  return {
    round: message.round,
    from: message.from,
    masked: unpackWords(message.packed, config.vectorLength, config.wordBits ?? MAX_WORD_BITS),
  };
}
