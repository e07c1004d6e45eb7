import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import { describe, it } from 'node:test';
import { fromHex, randomBytes } from '../../core/secagg/bytes.ts';
import { SecAggError } from '../../core/secagg/errors.ts';
import { applyMask, pairwiseSign } from '../../core/secagg/masking.ts';
import { checkPrgTestVector, expandSeed, PRG_CHUNK_WORDS, PRG_TEST_VECTOR } from '../../core/secagg/prg.ts';
import { addInto } from '../../core/secagg/quantize.ts';

/** The same stream from OpenSSL (node:crypto): AES-256-CTR, zero IV, words little-endian. */
function opensslWords(seed: Uint8Array, words: number): Uint32Array {
  const stream = createCipheriv('aes-256-ctr', seed, Buffer.alloc(16)).update(Buffer.alloc(4 * words));
  const out = new Uint32Array(words);
  for (let i = 0; i < words; i++) out[i] = stream.readUInt32LE(4 * i);
  return out;
}

describe('mask PRG (AES-256-CTR via WebCrypto)', () => {
  it('matches the fixed test vector (the same one a browser checks with checkPrgTestVector)', async () => {
    const first = await expandSeed(fromHex(PRG_TEST_VECTOR.seedHex), 8);
    assert.deepEqual([...first], [...PRG_TEST_VECTOR.first8]);
    await checkPrgTestVector();
  });

  it('equals an independent implementation (OpenSSL) over 2^20 + 3 words, across chunk boundaries', async () => {
    const seed = randomBytes(32);
    const n = (1 << 20) + 3;
    const ours = await expandSeed(seed, n);
    const theirs = opensslWords(seed, n);
    assert.equal(ours.length, n);
    assert.ok(Buffer.from(ours.buffer).equals(Buffer.from(theirs.buffer)), 'streams differ');
    assert.ok(n > 16 * PRG_CHUNK_WORDS);
  });

  it('is deterministic and prefix-consistent: a shorter expansion is a prefix of a longer one', async () => {
    const seed = randomBytes(32);
    const a = await expandSeed(seed, PRG_CHUNK_WORDS + 7);
    const b = await expandSeed(seed, 5);
    const c = await expandSeed(seed, PRG_CHUNK_WORDS + 7);
    assert.deepEqual([...b], [...a.subarray(0, 5)]);
    assert.ok(Buffer.from(a.buffer).equals(Buffer.from(c.buffer)));
    const other = await expandSeed(randomBytes(32), 5);
    assert.notDeepEqual([...other], [...b]);
  });

  it('refuses seeds that are not 32 bytes', async () => {
    await assert.rejects(expandSeed(new Uint8Array(16), 4), (e: unknown) => e instanceof SecAggError && e.code === 'wrong-size');
  });
});

describe('masks mod 2^32', () => {
  const length = 1000;
  const n = 6;
  const seeds = new Map<string, Uint8Array>();
  const seed = (u: number, v: number): Uint8Array => {
    const key = `${Math.min(u, v)}-${Math.max(u, v)}`;
    if (!seeds.has(key)) seeds.set(key, randomBytes(32));
    return seeds.get(key)!;
  };
  const inputs = Array.from({ length: n + 1 }, () => {
    const x = new Uint32Array(length);
    crypto.getRandomValues(x);
    return x;
  });
  const plainSum = (senders: readonly number[]): Uint32Array => {
    const s = new Uint32Array(length);
    for (const u of senders) addInto(s, inputs[u]!);
    return s;
  };
  const members = [1, 2, 3, 4, 5, 6];
  const selfSeeds = members.map(() => randomBytes(32));
  /** Σ over `senders` of y_u = x_u + PRG(b_u) + Σ_{v ≠ u} sign(u, v)·PRG(s_uv): every sender masks with all members. */
  const maskedSum = async (senders: readonly number[]): Promise<Uint32Array> => {
    const sum = new Uint32Array(length);
    for (const u of senders) {
      const y = inputs[u]!.slice();
      await applyMask(y, selfSeeds[u - 1]!, 1);
      for (const v of members) if (v !== u) await applyMask(y, seed(u, v), pairwiseSign(u, v));
      addInto(sum, y);
    }
    return sum;
  };

  it('pairwise masks cancel in the sum; self masks come off with their seeds', async () => {
    const sum = await maskedSum(members);
    assert.notDeepEqual([...sum], [...plainSum(members)], 'the self masks are still on');
    for (const u of members) await applyMask(sum, selfSeeds[u - 1]!, -1);
    assert.deepEqual([...sum], [...plainSum(members)]);
  });

  it("a dropped participant's masks come off with the seeds recomputed for it", async () => {
    const dropped = 4;
    const survivors = members.filter((u) => u !== dropped);
    // survivors still mask with the dropped participant: they did not know it would drop
    const sum = await maskedSum(survivors);
    for (const u of survivors) await applyMask(sum, selfSeeds[u - 1]!, -1);
    assert.notDeepEqual([...sum], [...plainSum(survivors)], 'the masks shared with the dropped participant are still on');
    // v added sign(v, d)·PRG(s_vd); sign(d, v) = −sign(v, d) takes it off, as SecAggServer.finish does.
    for (const v of survivors) await applyMask(sum, seed(v, dropped), pairwiseSign(dropped, v));
    assert.deepEqual([...sum], [...plainSum(survivors)]);
  });

  it('adding then subtracting a mask is the identity, including around 2^32 − 1 and 0', async () => {
    const x = new Uint32Array([0, 1, 0xffffffff, 0x80000000, 0x7fffffff]);
    const s = randomBytes(32);
    const y = x.slice();
    await applyMask(y, s, 1);
    assert.notDeepEqual([...y], [...x]);
    await applyMask(y, s, -1);
    assert.deepEqual([...y], [...x]);
  });

  it('signs: +1 for the lower index, −1 for the higher, none with oneself', () => {
    assert.equal(pairwiseSign(2, 5), 1);
    assert.equal(pairwiseSign(5, 2), -1);
    assert.throws(() => pairwiseSign(3, 3), SecAggError);
  });
});
