import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SeededRandom } from '../../core/random/prng.ts';
import { sha256 } from '../../core/secagg/bytes.ts';
import { SecAggError, type SecAggErrorCode } from '../../core/secagg/errors.ts';
import {
  clipRangeHoldingNoise,
  maxParticipantsForWords,
  quantizationRangeForValueBits,
  signedWord,
  VALUE_BITS,
  wordBitsFor,
} from '../../core/secagg/modulus.ts';
import { recommendedThreshold, SecAggClient, SecAggServer, validateConfig, type SecAggConfig } from '../../core/secagg/protocol.ts';
import { maxParticipants, quantizationStep } from '../../core/secagg/quantize.ts';
import { runLocalRound } from '../../core/secagg/simulate.ts';
import { checkDecodedSum } from '../../core/secagg/sum-range.ts';
import { packedBytes, packWords, unpackMaskedInput, unpackWords } from '../../core/secagg/word-packing.ts';

function addInto(sum: Float64Array, values: Float32Array): void {
  for (let i = 0; i < values.length; i++) sum[i]! += values[i]!;
}

const is = (code: SecAggErrorCode) => (error: unknown) => error instanceof SecAggError && error.code === code;

const INT8_RANGE = quantizationRangeForValueBits(VALUE_BITS.int8);

function randomWords(count: number, bits: number, seed: number): Uint32Array {
  const r = new SeededRandom(seed);
  return Uint32Array.from({ length: count }, () => Math.floor(r.next() * 2 ** bits) >>> 0);
}

async function configFor(n: number, wordBits: number | undefined, overrides: Partial<SecAggConfig> = {}): Promise<SecAggConfig> {
  return {
    round: 4,
    participants: n,
    neighbours: 'all',
    threshold: recommendedThreshold(n, 'all'),
    roundSeed: await sha256(new TextEncoder().encode(`compression ${n}`)),
    vectorLength: 3000,
    quantization: { clipRange: 127, quantizationRange: INT8_RANGE },
    ...(wordBits === undefined ? {} : { wordBits }),
    ...overrides,
  };
}

describe('secure aggregation with b-bit words: packing', () => {
  it('packs and unpacks words of every width from 1 to 32 bits, in ⌈L·b/8⌉ bytes', () => {
    for (let bits = 1; bits <= 32; bits++) {
      for (const count of [0, 1, 7, 8, 9, 1001]) {
        const words = randomWords(count, bits, 31 * bits + count);
        const packed = packWords(words, bits);
        assert.equal(packed.length, Math.ceil((count * bits) / 8));
        assert.equal(packed.length, packedBytes(count, bits));
        assert.deepEqual(unpackWords(packed, count, bits), words, `${count} words of ${bits} bits`);
      }
    }
  });

  it('32-bit words are the little-endian uint32 bytes of the original protocol', () => {
    const words = randomWords(33, 32, 5);
    const bytes = packWords(words, 32);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < words.length; i++) assert.equal(view.getUint32(4 * i, true), words[i]);
  });

  it('lays out words least significant bit first', () => {
    // 13-bit words 0x1abc and 0x0123: bits 0..12 then 13..25 of a 4-byte string (6 padding bits).
    assert.deepEqual([...packWords(Uint32Array.from([0x1abc, 0x0123]), 13)], [0xbc, 0x7a, 0x24, 0x00]);
    assert.deepEqual([...unpackWords(Uint8Array.from([0xbc, 0x7a, 0x24, 0x00]), 2, 13)], [0x1abc, 0x0123]);
  });

  it('refuses malformed packed input: a wrong length, non-zero padding, a word too wide', () => {
    const words = randomWords(10, 13, 9);
    const packed = packWords(words, 13); // 130 bits: 17 bytes, 6 padding bits
    assert.throws(() => unpackWords(packed.subarray(0, 16), 10, 13), is('wrong-length'));
    assert.throws(() => unpackWords(Uint8Array.from([...packed, 0]), 10, 13), is('wrong-length'));
    const padded = packed.slice();
    padded[16]! |= 0x80;
    assert.throws(() => unpackWords(padded, 10, 13), is('bad-packing'));
    assert.throws(() => packWords(Uint32Array.from([2 ** 13]), 13), is('bad-packing'));
    assert.throws(() => unpackWords(packed, 10, 33), is('invalid-config'));
  });
});

describe('secure aggregation with b-bit words: the modulus rule', () => {
  it('is value bits + ⌈log2 n⌉ + 1 without noise', () => {
    for (const [name, v] of Object.entries(VALUE_BITS)) {
      const half = quantizationRangeForValueBits(v) / 2;
      for (const n of [3, 4, 5, 10, 16, 17, 50, 100, 1000]) {
        const b = wordBitsFor(2 * half, n);
        // At most v + ⌈log2 n⌉ + 1 (exactly that for n a power of two), and the smallest b whose half-ring holds n·R/2.
        assert.ok(b <= v + Math.ceil(Math.log2(n)) + 1, `${name}, n = ${n}: b = ${b}`);
        if (Number.isInteger(Math.log2(n))) assert.equal(b, v + Math.log2(n) + 1);
        assert.ok(n * half <= 2 ** (b - 2) - 1 && n * half > 2 ** (b - 3) - 1, `${name}, n = ${n}: b = ${b}`);
      }
    }
    // Noise integers added after quantisation need room too.
    assert.equal(wordBitsFor(INT8_RANGE, 16, 0), 13);
    assert.equal(wordBitsFor(INT8_RANGE, 16, 2000), 14);
  });

  it('holds the documented n: every b gives a maximum at least the n it was sized for, and one more input would break it', () => {
    for (const n of [3, 10, 16, 50, 100]) {
      const b = wordBitsFor(INT8_RANGE, n);
      const max = maxParticipants({ clipRange: 1, quantizationRange: INT8_RANGE }, b);
      assert.ok(max >= n, `b = ${b} holds ${max} < ${n}`);
      assert.equal(max, maxParticipantsForWords(INT8_RANGE, b));
      // The sum of max + 1 extreme inputs leaves the half-ring the headroom bit keeps.
      assert.ok(((max + 1) * INT8_RANGE) / 2 > 2 ** (b - 2) - 1);
    }
    // 32-bit words keep the original rule: ⌊(2^31 − 1)/(R/2)⌋.
    assert.equal(maxParticipants({ clipRange: 8, quantizationRange: 2 ** 22 }), 1023);
    assert.equal(maxParticipants({ clipRange: 8, quantizationRange: 2 ** 22 }, 32), 1023);
  });

  it('reads a b-bit word as two’s complement', () => {
    assert.equal(signedWord(0, 13), 0);
    assert.equal(signedWord(4095, 13), 4095);
    assert.equal(signedWord(4096, 13), -4096);
    assert.equal(signedWord(8191, 13), -1);
    assert.equal(signedWord(0xffffffff, 32), -1);
  });

  it('refuses a round with more participants than its words hold, naming the modulus', async () => {
    const b = wordBitsFor(INT8_RANGE, 10);
    const max = maxParticipantsForWords(INT8_RANGE, b);
    validateConfig(await configFor(max, b));
    const over = await configFor(max + 1, b);
    assert.throws(
      () => validateConfig(over),
      (error: unknown) => is('invalid-config')(error) && /mod-2\^13 sum/.test(String(error)),
    );
    await assert.rejects(SecAggServer.create(over), is('invalid-config'));
  });

  it('asks for a clip range that holds the clipped update plus the noise tail', () => {
    assert.equal(clipRangeHoldingNoise(1, 0, 10, 1000, 1e-9), 1);
    const c = clipRangeHoldingNoise(1, 0.1, 10, 100_000, 1e-9);
    // t = √(2 ln(2·10·10^5/10^-9)) ≈ 8.3
    assert.ok(c > 1 + 0.8 && c < 1 + 0.9, `c = ${c}`);
  });
});

describe('secure aggregation with b-bit words: rounds', () => {
  /** Integers in [−127, 127]: with c = 127 and R = 254 (Δ = 1) they are on the grid, so the rounding is exact. */
  const onGrid = (index: number): Float32Array => {
    const r = new SeededRandom(700 + index);
    return Float32Array.from({ length: 3000 }, (_, i) => (i < 3 ? 127 * (i === 1 ? -1 : 1) : Math.round(254 * r.next()) - 127));
  };

  it('decodes the same sum with packed 13-bit words as with 32-bit words, with dropouts at every step', async () => {
    const n = 10;
    const b = wordBitsFor(INT8_RANGE, n);
    assert.equal(b, 13);
    const dropouts = { beforeShareKeys: [2], beforeMaskedInput: [5], beforeUnmask: [9] };
    const wide = await runLocalRound(await configFor(n, undefined), onGrid, { dropouts });
    const narrow = await runLocalRound(await configFor(n, b), onGrid, { dropouts });
    assert.deepEqual(narrow.result.contributors, [1, 3, 4, 6, 7, 8, 9, 10]);
    assert.deepEqual(narrow.result.contributors, wide.result.contributors);
    assert.deepEqual(narrow.result.sum, wide.result.sum);
    const expected = new Float64Array(3000);
    for (const u of narrow.result.contributors) addInto(expected, onGrid(u));
    assert.deepEqual(narrow.result.sum, expected);
    // Every masked word the server received fits 13 bits, and its packed form is 13/32 of the 32-bit bytes.
    for (const m of narrow.transcript.masked) assert.ok(m.masked.every((w) => w < 2 ** 13));
    assert.equal(packedBytes(3000, b), 4875);
    assert.ok(narrow.costs.clientBytesSent.get(1)! < wide.costs.clientBytesSent.get(1)!);
  });

  it('does not overflow at the documented n when every input is at the edge of the range', async () => {
    const n = 16; // a power of two: the sum reaches n·127 = 2032 of the 13-bit ring's 4095
    const b = wordBitsFor(INT8_RANGE, n);
    for (const sign of [1, -1]) {
      const round = await runLocalRound(await configFor(n, b), () => new Float32Array(3000).fill(sign * 1e6), {
        dropouts: { beforeMaskedInput: [16] },
      });
      assert.ok(
        round.result.sum.every((s) => s === sign * 15 * 127),
        `sum ${round.result.sum[0]} ≠ ${sign * 15 * 127}`,
      );
    }
  });

  it('decodes stochastically rounded updates within the error bound of the 32-bit path', async () => {
    const n = 5;
    const b = wordBitsFor(INT8_RANGE, n);
    const update = (u: number) => {
      const r = new SeededRandom(40 + u);
      return Float32Array.from({ length: 3000 }, () => 0.05 * (2 * r.next() - 1));
    };
    const config = await configFor(n, b, { quantization: { clipRange: 0.1, quantizationRange: INT8_RANGE } });
    const round = await runLocalRound(config, update);
    const expected = new Float64Array(3000);
    for (let u = 1; u <= n; u++) addInto(expected, update(u));
    assert.equal(round.result.errorBound, n * quantizationStep(config.quantization));
    for (let i = 0; i < 3000; i++) assert.ok(Math.abs(round.result.sum[i]! - expected[i]!) < round.result.errorBound);
  });

  it('refuses packed masked input of the wrong length or with padding bits set', async () => {
    const config = await configFor(10, 13);
    const good = packWords(randomWords(3000, 13, 3), 13);
    assert.equal(unpackMaskedInput({ round: 4, from: 1, packed: good }, config).masked.length, 3000);
    // 32-bit-sized input for a 13-bit round: the wrong length.
    assert.throws(() => unpackMaskedInput({ round: 4, from: 1, packed: new Uint8Array(12_000) }, config), is('wrong-length'));
    const padded = good.slice();
    padded[padded.length - 1]! ^= 0x80; // 3000·13 = 39000 bits = 4875 bytes exactly: no padding, so this is the last word's top bit
    const words = unpackMaskedInput({ round: 4, from: 1, packed: good }, config).masked;
    const flipped = unpackMaskedInput({ round: 4, from: 1, packed: padded }, config).masked;
    assert.equal(flipped[2999], words[2999]! ^ 0x1000);
    assert.deepEqual(flipped.subarray(0, 2999), words.subarray(0, 2999));
    const odd = await configFor(10, 13, { vectorLength: 3001 });
    const oddPacked = packWords(randomWords(3001, 13, 4), 13);
    oddPacked[oddPacked.length - 1]! |= 0x80;
    assert.throws(() => unpackMaskedInput({ round: 4, from: 1, packed: oddPacked }, odd), is('bad-packing'));
  });

  it('the server refuses an in-process masked word of 2^b or more, and accepts the client’s own b-bit words', async () => {
    const config = await configFor(4, 11, { vectorLength: 8 });
    const server = await SecAggServer.create(config);
    const clients = await Promise.all([1, 2, 3, 4].map((u) => SecAggClient.create(config, u)));
    for (const c of clients) await server.receiveAdvertise(c.advertise());
    const directory = server.closeAdvertise();
    for (const c of clients) server.receiveShareKeys(await c.shareKeys(directory));
    const forwarded = server.closeShareKeys();
    const wide = Uint32Array.from({ length: 8 }, (_, i) => (i === 5 ? 2 ** 11 : 0));
    assert.throws(() => server.receiveMaskedInput({ round: 4, from: 1, masked: wide }), is('bad-packing'));
    const own = await clients[0]!.maskInput(forwarded.find((f) => f.to === 1)!, new Float32Array(8).fill(3));
    assert.ok(own.masked.every((w) => w < 2 ** 11));
    server.receiveMaskedInput(own);
  });

  it('keeps a random (garbage) sum detectable: the headroom bit leaves about half the ring outside the accepted range', () => {
    const n = 16;
    const b = wordBitsFor(INT8_RANGE, n);
    const quantization = { clipRange: 1, quantizationRange: INT8_RANGE };
    const step = quantizationStep(quantization);
    // Uniform words decoded: about half of them fall outside n·(c + Δ).
    const decoded = Float64Array.from(randomWords(1000, b, 77), (w) => signedWord(w, b) * step);
    const check = checkDecodedSum(decoded, { quantization, contributors: n });
    assert.equal(check.ok, false);
    // One bit less (no headroom) and the honest range would cover the whole ring: nothing could be refused.
    assert.ok(n * (1 + step) >= 2 ** (b - 2) * step);
  });
});
