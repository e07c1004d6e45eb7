import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { randomBytes } from '../../core/secagg/bytes.ts';
import { SecAggError } from '../../core/secagg/errors.ts';
import { buildNeighbourGraph, suggestedDegree } from '../../core/secagg/graph.ts';
import {
  agree,
  decryptShare,
  derivePairwiseSeed,
  deriveShareKey,
  encryptShare,
  exportPrivateScalar,
  generateKeyPair,
  importPrivateScalar,
  importPublicKey,
} from '../../core/secagg/keys.ts';

function connected(n: number, neighbours: (u: number) => readonly number[]): boolean {
  const seen = new Set([1]);
  const queue = [1];
  while (queue.length > 0) {
    for (const v of neighbours(queue.pop()!)) {
      if (seen.has(v)) continue;
      seen.add(v);
      queue.push(v);
    }
  }
  return seen.size === n;
}

describe('SecAgg+ neighbour graph', () => {
  it('is k-regular, symmetric, loop-free and connected, for even and odd k', async () => {
    for (const [n, k] of [
      [10, 4],
      [10, 6],
      [10, 5],
      [50, 12],
      [100, 14],
      [101, 14],
    ] as const) {
      const g = await buildNeighbourGraph(n, k, randomBytes(32));
      for (let u = 1; u <= n; u++) {
        const list = g.neighbours(u);
        assert.equal(list.length, k, `n=${n} k=${k} u=${u}`);
        assert.equal(new Set(list).size, k);
        assert.ok(!list.includes(u));
        for (const v of list) assert.ok(g.areNeighbours(v, u));
      }
      assert.ok(connected(n, (u) => g.neighbours(u)));
    }
  });

  it('is the same for everyone with the same seed, and differs with another seed', async () => {
    const seed = randomBytes(32);
    const a = await buildNeighbourGraph(30, 6, seed);
    const b = await buildNeighbourGraph(30, 6, new Uint8Array(seed));
    const c = await buildNeighbourGraph(30, 6, randomBytes(32));
    const lists = (g: typeof a) => Array.from({ length: 30 }, (_, i) => g.neighbours(i + 1).join());
    assert.deepEqual(lists(a), lists(b));
    assert.notDeepEqual(lists(a), lists(c));
  });

  it("gives all pairs for k ≥ n − 1 or 'all', and refuses impossible degrees", async () => {
    for (const k of ['all', 9, 20] as const) {
      const g = await buildNeighbourGraph(10, k, randomBytes(32));
      assert.ok(g.complete);
      assert.deepEqual(g.neighbours(4), [1, 2, 3, 5, 6, 7, 8, 9, 10]);
    }
    await assert.rejects(
      buildNeighbourGraph(9, 3, randomBytes(32)),
      (e: unknown) => e instanceof SecAggError && e.code === 'invalid-config',
    );
    await assert.rejects(buildNeighbourGraph(10, 4, randomBytes(16)), (e: unknown) => e instanceof SecAggError && e.code === 'wrong-size');
  });

  it('suggests k = 2⌈log2 n⌉', () => {
    assert.deepEqual([10, 50, 100, 1000, 5].map(suggestedDegree), [8, 12, 14, 20, 4]);
  });
});

describe('keys: ECDH P-256, HKDF, AES-GCM', () => {
  it('both sides derive the same seed and share key; the scalar round-trips through its shares', async () => {
    const [a, b] = await Promise.all([generateKeyPair(true), generateKeyPair(false)]);
    assert.equal(a.publicRaw.length, 65);
    const bPub = await importPublicKey(b.publicRaw);
    const aPub = await importPublicKey(a.publicRaw);
    const ctx = { round: 7, a: 3, b: 9 };
    const seedAB = await derivePairwiseSeed(await agree(a.privateKey, bPub), ctx);
    const seedBA = await derivePairwiseSeed(await agree(b.privateKey, aPub), { round: 7, a: 9, b: 3 });
    assert.deepEqual(seedAB, seedBA);
    assert.notDeepEqual(seedAB, await derivePairwiseSeed(await agree(a.privateKey, bPub), { round: 8, a: 3, b: 9 }));
    // the server's path: rebuild a's private key from its scalar and public key
    const rebuilt = await importPrivateScalar(await exportPrivateScalar(a), a.publicRaw);
    assert.deepEqual(await derivePairwiseSeed(await agree(rebuilt, bPub), ctx), seedAB);
  });

  it('share ciphertexts open only with the right key and route', async () => {
    const [a, b] = await Promise.all([generateKeyPair(false), generateKeyPair(false)]);
    const keyA = await deriveShareKey(await agree(a.privateKey, await importPublicKey(b.publicRaw)), { round: 1, a: 1, b: 2 });
    const keyB = await deriveShareKey(await agree(b.privateKey, await importPublicKey(a.publicRaw)), { round: 1, a: 2, b: 1 });
    const plaintext = randomBytes(64);
    const sealed = await encryptShare(keyA, plaintext, { round: 1, from: 1, to: 2 });
    assert.equal(sealed.length, 12 + 64 + 16);
    assert.deepEqual(await decryptShare(keyB, sealed, { round: 1, from: 1, to: 2 }), plaintext);
    const bad = (e: unknown) => e instanceof SecAggError && e.code === 'invalid-crypto';
    await assert.rejects(decryptShare(keyB, sealed, { round: 1, from: 2, to: 1 }), bad);
    await assert.rejects(decryptShare(keyB, sealed, { round: 2, from: 1, to: 2 }), bad);
    const flipped = sealed.slice();
    flipped[20]! ^= 1;
    await assert.rejects(decryptShare(keyB, flipped, { round: 1, from: 1, to: 2 }), bad);
  });

  it('refuses public keys that are not curve points', async () => {
    const notOnCurve = new Uint8Array(65);
    notOnCurve[0] = 4;
    notOnCurve[64] = 1;
    await assert.rejects(importPublicKey(notOnCurve), (e: unknown) => e instanceof SecAggError && e.code === 'invalid-crypto');
    await assert.rejects(importPublicKey(new Uint8Array(33)), (e: unknown) => e instanceof SecAggError && e.code === 'wrong-size');
  });
});
