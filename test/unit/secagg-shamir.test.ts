import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SecAggError } from '../../core/secagg/errors.ts';
import { bigIntToBytes, bytesToBigInt, randomSecret, reconstruct, SHAMIR_PRIME, split, type Share } from '../../core/secagg/shamir.ts';

/** All k-subsets of `items`. */
function subsets<T>(items: readonly T[], k: number): T[][] {
  if (k === 0) return [[]];
  if (items.length < k) return [];
  const [head, ...rest] = items;
  return [...subsets(rest, k - 1).map((s) => [head!, ...s]), ...subsets(rest, k)];
}

/** Chi-square statistic of byte counts against uniform. */
function chiSquare(counts: readonly number[]): number {
  const total = counts.reduce((a, b) => a + b, 0);
  const expected = total / counts.length;
  return counts.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
}

describe('Shamir secret sharing over the P-256 field', () => {
  it('uses the P-256 field prime 2^256 − 2^224 + 2^192 + 2^96 − 1', () => {
    assert.equal(SHAMIR_PRIME, 2n ** 256n - 2n ** 224n + 2n ** 192n + 2n ** 96n - 1n);
  });

  it('reconstructs from every t-subset of n shares (n = 7, t = 4), and the shares are 32 bytes', () => {
    const secret = randomSecret();
    const holders = [1, 2, 3, 4, 5, 6, 7];
    const shares = split(secret, holders, 4);
    assert.deepEqual(
      shares.map((s) => s.index),
      holders,
    );
    for (const s of shares) assert.equal(s.value.length, 32);
    const all = subsets(shares, 4);
    assert.equal(all.length, 35);
    for (const subset of all) assert.deepEqual(reconstruct(subset, 4), secret);
    // extra shares are fine, in any order
    assert.deepEqual(reconstruct([...shares].reverse(), 4), secret);
  });

  it('handles the edge secrets 0 and p − 1 and non-contiguous indices', () => {
    for (const value of [0n, SHAMIR_PRIME - 1n, 1n]) {
      const secret = bigIntToBytes(value);
      const shares = split(secret, [3, 17, 100, 4096, 99999], 3);
      assert.deepEqual(reconstruct([shares[4]!, shares[0]!, shares[2]!], 3), secret);
    }
  });

  it('t − 1 shares give a wrong answer, and any secret is consistent with them', () => {
    const secret = randomSecret();
    const shares = split(secret, [1, 2, 3, 4, 5], 3);
    assert.notDeepEqual(reconstruct(shares.slice(0, 2), 2), secret);
    // For any candidate secret s', the 2 shares plus (0, s') define a degree-2 polynomial: nothing rules s' out.
    const candidate = randomSecret();
    const withCandidate: Share[] = [
      { index: 1, value: shares[0]!.value },
      { index: 2, value: shares[1]!.value },
    ];
    const xs = [0n, 1n, 2n];
    const ys = [bytesToBigInt(candidate), bytesToBigInt(withCandidate[0]!.value), bytesToBigInt(withCandidate[1]!.value)];
    // Interpolating through those three points at x = 0 returns s' by construction; check f(3) is a field element.
    const p = SHAMIR_PRIME;
    const inv = (a: bigint): bigint => {
      let [r0, r1, s0, s1] = [((a % p) + p) % p, p, 1n, 0n];
      while (r1 !== 0n) {
        const q = r0 / r1;
        [r0, r1, s0, s1] = [r1, r0 - q * r1, s1, s0 - q * s1];
      }
      return ((s0 % p) + p) % p;
    };
    let f3 = 0n;
    for (let j = 0; j < 3; j++) {
      let l = 1n;
      for (let m = 0; m < 3; m++) if (m !== j) l = (((l * (3n - xs[m]!)) % p) * inv(xs[j]! - xs[m]!)) % p;
      f3 = (f3 + ys[j]! * l) % p;
    }
    const f3Share: Share = { index: 3, value: bigIntToBytes(((f3 % p) + p) % p) };
    assert.deepEqual(reconstruct([...withCandidate, f3Share], 3), candidate);
  });

  it('fewer than t shares are uniform whatever the secret: byte histograms of t − 1 shares of 0 and of p − 1', () => {
    const runs = 1200;
    for (const value of [0n, SHAMIR_PRIME - 1n]) {
      const counts = new Array<number>(256).fill(0);
      for (let r = 0; r < runs; r++) {
        // t = 3: two shares reveal nothing; look at all their bytes except the top one (p < 2^256 skews it by < 2^-31)
        for (const s of split(bigIntToBytes(value), [1, 2, 3, 4], 3).slice(0, 2)) for (let i = 1; i < 32; i++) counts[s.value[i]!]!++;
      }
      // 255 degrees of freedom: mean 255, sd 22.6; 400 is p < 1e-7.
      assert.ok(chiSquare(counts) < 400, `chi-square ${chiSquare(counts)} for secret ${value}`);
    }
  });

  it('refuses bad inputs', () => {
    const secret = randomSecret();
    assert.throws(
      () => split(secret, [1, 2, 2], 2),
      (e: unknown) => e instanceof SecAggError && e.code === 'duplicate',
    );
    assert.throws(
      () => split(secret, [0, 1, 2], 2),
      (e: unknown) => e instanceof SecAggError && e.code === 'unknown-participant',
    );
    assert.throws(
      () => split(secret, [1, 2], 3),
      (e: unknown) => e instanceof SecAggError && e.code === 'invalid-config',
    );
    assert.throws(
      () => split(new Uint8Array(31), [1, 2], 2),
      (e: unknown) => e instanceof SecAggError && e.code === 'wrong-size',
    );
    assert.throws(
      () => split(bigIntToBytes(SHAMIR_PRIME), [1, 2], 2),
      (e: unknown) => e instanceof SecAggError && e.code === 'wrong-size',
    );
    const shares = split(secret, [1, 2, 3], 2);
    assert.throws(
      () => reconstruct(shares.slice(0, 1), 2),
      (e: unknown) => e instanceof SecAggError && e.code === 'too-few-survivors',
    );
    assert.throws(
      () => reconstruct([shares[0]!, shares[0]!], 2),
      (e: unknown) => e instanceof SecAggError && e.code === 'duplicate',
    );
  });
});
