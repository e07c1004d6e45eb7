import { createCipheriv, createDecipheriv, createECDH, createHash, hkdfSync, randomBytes } from 'node:crypto';

/**
 * The secure aggregation primitives of docs/protocol.md §10.3.2–10.3.3,
 * written from the doc alone with node:crypto. Nothing here comes from core/:
 * this file and participant.ts are the proof that the doc is enough.
 */

const u32be = (...values: number[]): Buffer => {
  const out = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => {
    out.writeUInt32BE(v, 4 * i);
  });
  return out;
};

/** ECDH P-256: 65-byte uncompressed public point, 32-byte big-endian private scalar. */
export interface EcdhPair {
  readonly publicKey: Buffer;
  readonly privateScalar: Buffer;
  agree(peerPublic: Uint8Array): Buffer;
}

export function ecdhPair(privateScalar?: Uint8Array): EcdhPair {
  const ecdh = createECDH('prime256v1');
  if (privateScalar) ecdh.setPrivateKey(Buffer.from(privateScalar));
  else ecdh.generateKeys();
  const scalar = ecdh.getPrivateKey();
  return {
    publicKey: ecdh.getPublicKey(null, 'uncompressed'),
    privateScalar: Buffer.concat([Buffer.alloc(32 - scalar.length), scalar]),
    agree: (peer) => ecdh.computeSecret(Buffer.from(peer)),
  };
}

export type KdfLabel = 'fedbrowser/secagg/v1/share-encryption' | 'fedbrowser/secagg/v1/pairwise-mask-seed';

/** HKDF-SHA-256, empty salt, info = label ‖ u32be(round) ‖ u32be(min) ‖ u32be(max), 32 bytes. */
export function pairKey(shared: Uint8Array, label: KdfLabel, round: number, u: number, v: number): Buffer {
  const info = Buffer.concat([Buffer.from(label, 'ascii'), u32be(round, Math.min(u, v), Math.max(u, v))]);
  return Buffer.from(hkdfSync('sha256', Buffer.from(shared), Buffer.alloc(0), info, 32));
}

function shareAad(round: number, from: number, to: number): Buffer {
  return Buffer.concat([Buffer.from('fedbrowser/secagg/v1/share', 'ascii'), u32be(round, from, to)]);
}

/** 92 bytes: 12-byte IV ‖ AES-256-GCM(64-byte plaintext) ‖ 16-byte tag. */
export function sealShare(
  key: Uint8Array,
  plaintext: Uint8Array,
  round: number,
  from: number,
  to: number,
  iv: Uint8Array = randomBytes(12),
): Buffer {
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(shareAad(round, from, to));
  return Buffer.concat([Buffer.from(iv), cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

export function openShare(key: Uint8Array, ciphertext: Uint8Array, round: number, from: number, to: number): Buffer {
  if (ciphertext.length !== 92) throw new Error(`share ciphertext of ${ciphertext.length} bytes, not 92`);
  const decipher = createDecipheriv('aes-256-gcm', key, ciphertext.subarray(0, 12));
  decipher.setAAD(shareAad(round, from, to));
  decipher.setAuthTag(Buffer.from(ciphertext.subarray(76)));
  return Buffer.concat([decipher.update(ciphertext.subarray(12, 76)), decipher.final()]);
}

/** The P-256 field prime 2^256 − 2^224 + 2^192 + 2^96 − 1. */
export const FIELD_PRIME = 2n ** 256n - 2n ** 224n + 2n ** 192n + 2n ** 96n - 1n;

export const toBig = (bytes: Uint8Array): bigint => BigInt(`0x${Buffer.from(bytes).toString('hex') || '0'}`);
export const toBytes32 = (value: bigint): Buffer => Buffer.from(value.toString(16).padStart(64, '0'), 'hex');

/** A uniform field element from 32 random bytes, drawn again while ≥ p. */
export function randomFieldElement(): bigint {
  for (;;) {
    const v = toBig(randomBytes(32));
    if (v < FIELD_PRIME) return v;
  }
}

/** Shamir: f(x) = secret + a1·x + … + a_{t−1}·x^{t−1} mod p at each holder index. */
export function shamirSplit(
  secret: Uint8Array,
  holders: readonly number[],
  threshold: number,
  coefficients?: readonly bigint[],
): Map<number, Buffer> {
  const a = [toBig(secret), ...(coefficients ?? Array.from({ length: threshold - 1 }, randomFieldElement))];
  const out = new Map<number, Buffer>();
  for (const holder of holders) {
    const x = BigInt(holder);
    let y = 0n;
    for (let i = a.length - 1; i >= 0; i--) y = (y * x + a[i]!) % FIELD_PRIME;
    out.set(holder, toBytes32(y));
  }
  return out;
}

const mod = (a: bigint): bigint => ((a % FIELD_PRIME) + FIELD_PRIME) % FIELD_PRIME;
const power = (base: bigint, exponent: bigint): bigint => {
  let result = 1n;
  let b = mod(base);
  for (let e = exponent; e > 0n; e >>= 1n) {
    if (e & 1n) result = (result * b) % FIELD_PRIME;
    b = (b * b) % FIELD_PRIME;
  }
  return result;
};

/** Lagrange interpolation at 0 of t shares. */
export function shamirReconstruct(shares: readonly { index: number; value: Uint8Array }[]): Buffer {
  let secret = 0n;
  for (const [j, sj] of shares.entries()) {
    let num = 1n;
    let den = 1n;
    for (const [m, sm] of shares.entries()) {
      if (m === j) continue;
      num = (num * BigInt(sm.index)) % FIELD_PRIME;
      den = mod(den * (BigInt(sm.index) - BigInt(sj.index)));
    }
    secret = (secret + toBig(sj.value) * num * power(den, FIELD_PRIME - 2n)) % FIELD_PRIME;
  }
  return toBytes32(secret);
}

/** The first `count` PRG words: AES-256-CTR keystream (zero counter block), read little-endian. */
export function prgWords(seed: Uint8Array, count: number): Uint32Array {
  const stream = createCipheriv('aes-256-ctr', seed, Buffer.alloc(16)).update(Buffer.alloc(4 * count));
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) out[i] = stream.readUInt32LE(4 * i);
  return out;
}

/** Neighbour lists (index → ascending neighbours) of the round's graph, §10.3.3. */
export function neighbourGraph(n: number, k: number | 'all', roundSeed: Uint8Array): Map<number, number[]> {
  const lists = new Map<number, number[]>();
  for (let u = 1; u <= n; u++) lists.set(u, []);
  const degree = k === 'all' || k >= n - 1 ? n - 1 : k;
  if (degree === n - 1) {
    for (let u = 1; u <= n; u++) for (let v = 1; v <= n; v++) if (v !== u) lists.get(u)!.push(v);
    return lists;
  }
  const graphSeed = createHash('sha256')
    .update(Buffer.concat([Buffer.from('fedbrowser/secagg/v1/graph', 'ascii'), Buffer.from(roundSeed), u32be(n, degree)]))
    .digest();
  // Enough words for the shuffle: each draw is rejected with probability < 1/2.
  const words = prgWords(graphSeed, 64 * n + 256);
  let next = 0;
  const below = (m: number): number => {
    const limit = Math.floor(2 ** 32 / m) * m;
    for (;;) {
      const w = words[next++];
      if (w === undefined) throw new Error('ran out of graph words');
      if (w < limit) return w % m;
    }
  };
  const place = Array.from({ length: n }, (_, i) => i + 1);
  for (let i = n - 1; i > 0; i--) {
    const j = below(i + 1);
    [place[i], place[j]] = [place[j]!, place[i]!];
  }
  for (let p = 0; p < n; p++) {
    const links = lists.get(place[p]!)!;
    for (let j = 1; j <= Math.floor(degree / 2); j++) links.push(place[(p + j) % n]!, place[(p - j + n) % n]!);
    if (degree % 2 === 1) links.push(place[(p + n / 2) % n]!);
  }
  for (const list of lists.values()) list.sort((a, b) => a - b);
  return lists;
}

/** Clip to [−c, c], scale by R/(2c), round stochastically, keep in [−R/2, R/2], store mod 2^32. */
export function quantize(values: Float32Array, clipRange: number, quantizationRange: number): Uint32Array {
  const scale = quantizationRange / (2 * clipRange);
  const half = quantizationRange / 2;
  const random = randomBytes(4 * values.length);
  const out = new Uint32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const x = values[i]!;
    if (Number.isNaN(x)) throw new Error(`coordinate ${i} is NaN`);
    const v = Math.max(-clipRange, Math.min(clipRange, x)) * scale;
    const low = Math.floor(v);
    let z = random.readUInt32LE(4 * i) < (v - low) * 2 ** 32 ? low + 1 : low;
    z = Math.max(-half, Math.min(half, z));
    out[i] = z >>> 0;
  }
  return out;
}

/** target += sign · PRG(seed), mod 2^32. */
export function addMask(target: Uint32Array, seed: Uint8Array, sign: 1 | -1): void {
  const mask = prgWords(seed, target.length);
  for (let i = 0; i < target.length; i++) target[i] = (target[i]! + sign * mask[i]!) >>> 0;
}
