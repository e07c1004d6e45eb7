import { ascii, concatBytes, copyBytes, fromBase64Url, randomBytes, toBase64Url, uint32be, type Bytes, type KeyHandle } from './bytes.ts';
import { SecAggError } from './errors.ts';

/**
 * Key agreement and share encryption. Each participant makes two fresh ECDH
 * P-256 key pairs per round: one (c) to agree AES-GCM keys for the share
 * ciphertexts, one (s) to agree pairwise mask seeds. Only the masking private
 * key is extractable, because its scalar is Shamir-shared so that the server
 * can remove a dropped participant's pairwise masks.
 *
 * Shared secret (the 32-byte ECDH x coordinate) → HKDF-SHA-256 with an empty
 * salt and info = label ‖ round ‖ min(u,v) ‖ max(u,v): the same value on both
 * sides, different for each pair, round and purpose.
 */

export const PUBLIC_KEY_BYTES = 65;
export const PRIVATE_SCALAR_BYTES = 32;
/** AES-GCM: 12-byte random IV ‖ ciphertext ‖ 16-byte tag. */
export const GCM_IV_BYTES = 12;
export const GCM_TAG_BYTES = 16;

const P256 = { name: 'ECDH', namedCurve: 'P-256' } as const;
const LABEL_SHARE_KEY = ascii('fedbrowser/secagg/v1/share-encryption');
const LABEL_MASK_SEED = ascii('fedbrowser/secagg/v1/pairwise-mask-seed');
const LABEL_SHARE_AAD = ascii('fedbrowser/secagg/v1/share');

export interface EcdhKeyPair {
  readonly publicKey: KeyHandle;
  readonly privateKey: KeyHandle;
  /** The public key as an uncompressed point: 0x04 ‖ x ‖ y (65 bytes). */
  readonly publicRaw: Bytes;
}

/** A fresh ECDH P-256 key pair. `extractable` only for the masking key, whose scalar gets shared. */
export async function generateKeyPair(extractable: boolean): Promise<EcdhKeyPair> {
  const pair = await crypto.subtle.generateKey(P256, extractable, ['deriveBits']);
  const publicRaw = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
  return { publicKey: pair.publicKey, privateKey: pair.privateKey, publicRaw };
}

/** Imports a peer's raw public key; WebCrypto rejects points that are not on the curve. */
export async function importPublicKey(raw: Uint8Array): Promise<KeyHandle> {
  if (!(raw instanceof Uint8Array) || raw.length !== PUBLIC_KEY_BYTES || raw[0] !== 0x04) {
    throw new SecAggError('wrong-size', `a public key must be a ${PUBLIC_KEY_BYTES}-byte uncompressed P-256 point`);
  }
  try {
    return await crypto.subtle.importKey('raw', copyBytes(raw), P256, true, []);
  } catch {
    throw new SecAggError('invalid-crypto', 'the public key is not a valid P-256 point');
  }
}

/** The private scalar d (32 bytes big-endian) of an extractable key pair. */
export async function exportPrivateScalar(pair: EcdhKeyPair): Promise<Bytes> {
  const jwk = await crypto.subtle.exportKey('jwk', pair.privateKey);
  if (typeof jwk.d !== 'string') throw new SecAggError('invalid-crypto', 'the private key has no exportable scalar');
  const d = fromBase64Url(jwk.d);
  if (d.length !== PRIVATE_SCALAR_BYTES) throw new SecAggError('invalid-crypto', `private scalar of ${d.length} bytes`);
  return d;
}

/** Rebuilds a private key from its scalar and its raw public key (JWK import needs both). */
export async function importPrivateScalar(d: Uint8Array, publicRaw: Uint8Array): Promise<KeyHandle> {
  if (!(d instanceof Uint8Array) || d.length !== PRIVATE_SCALAR_BYTES)
    throw new SecAggError('wrong-size', `a private scalar must be ${PRIVATE_SCALAR_BYTES} bytes`);
  if (!(publicRaw instanceof Uint8Array) || publicRaw.length !== PUBLIC_KEY_BYTES || publicRaw[0] !== 0x04) {
    throw new SecAggError('wrong-size', `a public key must be a ${PUBLIC_KEY_BYTES}-byte uncompressed P-256 point`);
  }
  const jwk = {
    kty: 'EC',
    crv: 'P-256',
    x: toBase64Url(publicRaw.subarray(1, 33)),
    y: toBase64Url(publicRaw.subarray(33, 65)),
    d: toBase64Url(d),
    ext: false,
  };
  try {
    return await crypto.subtle.importKey('jwk', jwk, P256, false, ['deriveBits']);
  } catch {
    throw new SecAggError('invalid-crypto', 'the reconstructed private key is not valid for its public key');
  }
}

/** The raw ECDH shared secret (x coordinate, 32 bytes). */
export async function agree(privateKey: KeyHandle, peerPublicKey: KeyHandle): Promise<Bytes> {
  return new Uint8Array(await crypto.subtle.deriveBits({ name: 'ECDH', public: peerPublicKey }, privateKey, 256));
}

/** Which pair, round and purpose a derived key belongs to; symmetric in a and b. */
export interface PairContext {
  readonly round: number;
  readonly a: number;
  readonly b: number;
}

async function hkdf(shared: Uint8Array, label: Uint8Array, context: PairContext): Promise<Bytes> {
  if (context.a === context.b) throw new SecAggError('inconsistent', 'a pairwise key needs two different participants');
  const ikm = await crypto.subtle.importKey('raw', copyBytes(shared), { name: 'HKDF' }, false, ['deriveBits']);
  const info = concatBytes(label, uint32be(context.round, Math.min(context.a, context.b), Math.max(context.a, context.b)));
  return new Uint8Array(await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info }, ikm, 256));
}

/** The AES-256-GCM key a pair uses for the share ciphertexts between them (non-extractable). */
export async function deriveShareKey(shared: Uint8Array, context: PairContext): Promise<KeyHandle> {
  const bits = await hkdf(shared, LABEL_SHARE_KEY, context);
  const key = await crypto.subtle.importKey('raw', bits, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
  bits.fill(0);
  return key;
}

/** The 32-byte seed of the pair's mask PRG. */
export function derivePairwiseSeed(shared: Uint8Array, context: PairContext): Promise<Bytes> {
  return hkdf(shared, LABEL_MASK_SEED, context);
}

/** Who sent a share ciphertext to whom in which round: authenticated as AES-GCM associated data. */
export interface ShareRoute {
  readonly round: number;
  readonly from: number;
  readonly to: number;
}

function aad(route: ShareRoute): Bytes {
  return concatBytes(LABEL_SHARE_AAD, uint32be(route.round, route.from, route.to));
}

/** IV ‖ AES-GCM(plaintext) with the route as associated data; a random IV, as a key may encrypt in both directions. */
export async function encryptShare(key: KeyHandle, plaintext: Uint8Array, route: ShareRoute): Promise<Bytes> {
  const iv = randomBytes(GCM_IV_BYTES);
  const sealed = await crypto.subtle.encrypt(
    { name: 'AES-GCM', iv, additionalData: aad(route), tagLength: 128 },
    key,
    copyBytes(plaintext),
  );
  return concatBytes(iv, new Uint8Array(sealed));
}

/** Opens encryptShare's output; a wrong key, route or any flipped bit fails authentication. */
export async function decryptShare(key: KeyHandle, ciphertext: Uint8Array, route: ShareRoute): Promise<Bytes> {
  if (!(ciphertext instanceof Uint8Array) || ciphertext.length < GCM_IV_BYTES + GCM_TAG_BYTES)
    throw new SecAggError('wrong-size', 'share ciphertext too short');
  const iv = copyBytes(ciphertext.subarray(0, GCM_IV_BYTES));
  try {
    const opened = await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv, additionalData: aad(route), tagLength: 128 },
      key,
      copyBytes(ciphertext.subarray(GCM_IV_BYTES)),
    );
    return new Uint8Array(opened);
  } catch {
    throw new SecAggError('invalid-crypto', `share ciphertext from ${route.from} to ${route.to} fails authentication`);
  }
}
