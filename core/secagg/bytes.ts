/**
 * Byte helpers for core/secagg. WebCrypto (in the DOM typings) only accepts
 * views of a real ArrayBuffer, so everything handed to it is a `Bytes`;
 * inputs from the network (Node Buffers over SharedArrayBuffer-capable
 * pools, unaligned views) are copied into one first.
 */

/** A byte array over its own ArrayBuffer, as WebCrypto accepts. */
export type Bytes = Uint8Array<ArrayBuffer>;

/** A copy of `bytes` in a fresh ArrayBuffer (also detaches us from the caller's buffer). */
export function copyBytes(bytes: Uint8Array): Bytes {
  return new Uint8Array(bytes);
}

export function isBytes(value: unknown, length?: number): value is Uint8Array {
  return value instanceof Uint8Array && (length === undefined || value.length === length);
}

export function concatBytes(...parts: readonly Uint8Array[]): Bytes {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** ASCII labels for domain separation (TextEncoder is not among the core's globals). */
export function ascii(text: string): Bytes {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f) throw new RangeError(`non-ASCII label ${text}`);
    out[i] = c;
  }
  return out;
}

/** Big-endian uint32s, for binding round numbers and indices into KDF inputs and AEAD data. */
export function uint32be(...values: readonly number[]): Bytes {
  const out = new Uint8Array(4 * values.length);
  values.forEach((v, i) => {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`not a uint32: ${v}`);
    out[4 * i] = v >>> 24;
    out[4 * i + 1] = (v >>> 16) & 0xff;
    out[4 * i + 2] = (v >>> 8) & 0xff;
    out[4 * i + 3] = v & 0xff;
  });
  return out;
}

export function toHex(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}

export function fromHex(hex: string): Bytes {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new RangeError('bad hex string');
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** base64url without padding (JWK, RFC 7515 §2); btoa is not among the core's globals. */
export function toBase64Url(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const b0 = bytes[i]!;
    const b1 = i + 1 < bytes.length ? bytes[i + 1]! : 0;
    const b2 = i + 2 < bytes.length ? bytes[i + 2]! : 0;
    const n = (b0 << 16) | (b1 << 8) | b2;
    out += B64URL[(n >>> 18) & 63]! + B64URL[(n >>> 12) & 63]!;
    if (i + 1 < bytes.length) out += B64URL[(n >>> 6) & 63]!;
    if (i + 2 < bytes.length) out += B64URL[n & 63]!;
  }
  return out;
}

export function fromBase64Url(text: string): Bytes {
  if (text.length % 4 === 1) throw new RangeError('bad base64url length');
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let bits = 0;
  let acc = 0;
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    const v = B64URL.indexOf(text[i]!);
    if (v < 0) throw new RangeError('bad base64url character');
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >>> bits) & 0xff;
    }
  }
  return out;
}

/** The platform CSPRNG in blocks: getRandomValues refuses more than 65,536 bytes per call. */
export function randomBytes(length: number): Bytes {
  const out = new Uint8Array(length);
  for (let offset = 0; offset < length; offset += 65536) crypto.getRandomValues(out.subarray(offset, Math.min(length, offset + 65536)));
  return out;
}

/** The key handle type of whichever WebCrypto typings compile this file (DOM, Node or core/globals.d.ts). */
export type KeyHandle = Awaited<ReturnType<typeof crypto.subtle.importKey>>;

/** SHA-256 of the concatenated parts. */
export async function sha256(...parts: readonly Uint8Array[]): Promise<Bytes> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', concatBytes(...parts)));
}
