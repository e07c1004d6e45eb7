import { randomBytes, type Bytes } from './bytes.ts';
import { SecAggError } from './errors.ts';

/**
 * Shamir secret sharing (t of n) of 32-byte secrets over GF(p), p the P-256
 * field prime 2^256 − 2^224 + 2^192 + 2^96 − 1.
 *
 * Why this field: the secrets are the self-mask seed (we draw it as a field
 * element) and the masking key's P-256 scalar d < n_P256 < p, so each secret
 * is exactly one field element and each share exactly 32 bytes; BigInt keeps
 * the code short, and with at most a few hundred holders the cost is tiny next
 * to the masks. (Limbs over 2^31 − 1 would need 9+ elements per secret and
 * per share.) Shamir over a field is perfectly hiding: fewer than t shares are
 * jointly uniform whatever the secret. BigInt arithmetic is not constant-time;
 * the shares are computed once per round from fresh secrets.
 *
 * Shares are evaluations at x = the holder's participant index (1..n, never 0).
 */

export const SHAMIR_PRIME = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn;
export const SECRET_BYTES = 32;
export const SHARE_BYTES = 32;

export interface Share {
  /** The holder's participant index: the x coordinate, 1 ≤ index < 2^32. */
  readonly index: number;
  /** f(index) as 32 big-endian bytes. */
  readonly value: Uint8Array;
}

export function bytesToBigInt(bytes: Uint8Array): bigint {
  let out = 0n;
  for (const b of bytes) out = (out << 8n) | BigInt(b);
  return out;
}

export function bigIntToBytes(value: bigint, length = 32): Bytes {
  if (value < 0n || value >> BigInt(8 * length) !== 0n) throw new RangeError(`value does not fit in ${length} bytes`);
  const out = new Uint8Array(length);
  let v = value;
  for (let i = length - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** A uniform element of GF(p) from the CSPRNG (rejection sampling; rejects with probability < 2^-32). */
export function randomFieldElement(): bigint {
  for (;;) {
    const v = bytesToBigInt(randomBytes(32));
    if (v < SHAMIR_PRIME) return v;
  }
}

/** A uniform 32-byte secret that is a field element: how self-mask seeds are drawn. */
export function randomSecret(): Bytes {
  return bigIntToBytes(randomFieldElement());
}

function mod(a: bigint): bigint {
  const r = a % SHAMIR_PRIME;
  return r < 0n ? r + SHAMIR_PRIME : r;
}

/** a^-1 mod p by the extended Euclidean algorithm; a ≠ 0 mod p. */
function inverse(a: bigint): bigint {
  let [r0, r1] = [mod(a), SHAMIR_PRIME];
  let [s0, s1] = [1n, 0n];
  if (r0 === 0n) throw new RangeError('zero has no inverse');
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return mod(s0);
}

function checkIndex(index: number): void {
  if (!Number.isInteger(index) || index < 1 || index > 0xffffffff)
    throw new SecAggError('unknown-participant', `share index must be an integer in [1, 2^32), got ${index}`);
}

function checkThreshold(threshold: number, holders: number): void {
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > holders) {
    throw new SecAggError('invalid-config', `threshold ${threshold} must be an integer in [1, ${holders}]`);
  }
}

/** Reads a secret or share: exactly 32 bytes and a field element. */
export function fieldElement(bytes: Uint8Array, what: string): bigint {
  if (!(bytes instanceof Uint8Array) || bytes.length !== 32) throw new SecAggError('wrong-size', `${what} must be 32 bytes`);
  const v = bytesToBigInt(bytes);
  if (v >= SHAMIR_PRIME) throw new SecAggError('wrong-size', `${what} is not below the field prime`);
  return v;
}

/**
 * Splits `secret` into one share per holder index; any `threshold` of them
 * reconstruct it, fewer are uniformly random. The polynomial's coefficients
 * come from the CSPRNG.
 */
export function split(secret: Uint8Array, holders: readonly number[], threshold: number): Share[] {
  const s = fieldElement(secret, 'secret');
  checkThreshold(threshold, holders.length);
  const seen = new Set<number>();
  for (const index of holders) {
    checkIndex(index);
    if (seen.has(index)) throw new SecAggError('duplicate', `holder ${index} appears twice`);
    seen.add(index);
  }
  const coefficients = [s];
  for (let i = 1; i < threshold; i++) coefficients.push(randomFieldElement());
  const shares = holders.map((index) => {
    const x = BigInt(index);
    let y = 0n;
    for (let i = coefficients.length - 1; i >= 0; i--) y = (y * x + coefficients[i]!) % SHAMIR_PRIME;
    return { index, value: bigIntToBytes(y) };
  });
  coefficients.fill(0n);
  return shares;
}

/**
 * The secret from `threshold` shares with distinct indices (extra shares are
 * ignored: the first `threshold` are used). Lagrange interpolation at 0.
 */
export function reconstruct(shares: readonly Share[], threshold: number): Bytes {
  if (!Number.isInteger(threshold) || threshold < 1)
    throw new SecAggError('invalid-config', `threshold must be a positive integer, got ${threshold}`);
  if (shares.length < threshold) throw new SecAggError('too-few-survivors', `${shares.length} shares, ${threshold} needed`);
  const used = shares.slice(0, threshold);
  const xs: bigint[] = [];
  const ys: bigint[] = [];
  const seen = new Set<number>();
  for (const share of used) {
    checkIndex(share.index);
    if (seen.has(share.index)) throw new SecAggError('duplicate', `two shares with index ${share.index}`);
    seen.add(share.index);
    xs.push(BigInt(share.index));
    ys.push(fieldElement(share.value, `share ${share.index}`));
  }
  let secret = 0n;
  for (let j = 0; j < threshold; j++) {
    // ℓ_j(0) = Π_{m≠j} x_m / (x_m − x_j)
    let num = 1n;
    let den = 1n;
    for (let m = 0; m < threshold; m++) {
      if (m === j) continue;
      num = (num * xs[m]!) % SHAMIR_PRIME;
      den = mod(den * (xs[m]! - xs[j]!));
    }
    secret = (secret + ys[j]! * ((num * inverse(den)) % SHAMIR_PRIME)) % SHAMIR_PRIME;
  }
  return bigIntToBytes(secret);
}
