import { copyBytes, fromHex, toHex, type KeyHandle } from './bytes.ts';
import { SecAggError } from './errors.ts';

/**
 * The mask PRG: AES-256-CTR keystream under the 32-byte seed, counter block
 * starting at zero (all 16 bytes), the low 64 bits incrementing once per
 * 16-byte block; word i is keystream bytes 4i..4i+3 read little-endian.
 * WebCrypto's AES-CTR is specified exactly (W3C WebCrypto §27, NIST SP
 * 800-38A), so browsers and Node produce the same words; PRG_TEST_VECTOR pins
 * it. Expansion is chunked (each chunk restarts CTR at its block offset), so
 * a 2^20+-word mask never needs one giant WebCrypto call or buffer.
 */

export const SEED_BYTES = 32;
/** Words per WebCrypto call: 256 KiB of keystream. A multiple of 4 so chunks start on block boundaries. */
export const PRG_CHUNK_WORDS = 1 << 16;

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Fixed input and output, checked by the Node tests and checkable in a browser with `checkPrgTestVector()`. */
export const PRG_TEST_VECTOR = {
  seedHex: '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f',
  /** Words 0..7 of expandSeed(seed, 8). */
  first8: [0xb60090f2, 0xd09f492a, 0x6a9af3a9, 0x80772edd, 0xae765df0, 0xe59fb94a, 0x319bf6a6, 0x3d36c248] as readonly number[],
  /** Word 2^20 + 5 (the 6th word of the 17th chunk), to pin the chunk counters too. */
  wordAt: { index: (1 << 20) + 5, value: 0x2fd2c417 },
} as const;

async function importSeed(seed: Uint8Array): Promise<KeyHandle> {
  if (!(seed instanceof Uint8Array) || seed.length !== SEED_BYTES)
    throw new SecAggError('wrong-size', `PRG seed must be ${SEED_BYTES} bytes`);
  return crypto.subtle.importKey('raw', copyBytes(seed), { name: 'AES-CTR' }, false, ['encrypt']);
}

/** The 16-byte counter block for block number `block` (< 2^53): zeros, then the block number big-endian. */
function counterBlock(block: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(16);
  let b = block;
  for (let i = 15; i >= 8 && b > 0; i--) {
    out[i] = b % 256;
    b = Math.floor(b / 256);
  }
  return out;
}

let zeros = new Uint8Array(0);

/**
 * Calls `visit(chunk, offset)` with words [offset, offset + chunk.length) of
 * the PRG stream, in order, for the first `words` words (`chunk` is a fresh
 * array each time; the visitor may keep it).
 */
export async function forEachPrgChunk(seed: Uint8Array, words: number, visit: (chunk: Uint32Array, offset: number) => void): Promise<void> {
  if (!Number.isInteger(words) || words < 0) throw new RangeError(`word count must be a non-negative integer, got ${words}`);
  const key = await importSeed(seed);
  for (let offset = 0; offset < words; offset += PRG_CHUNK_WORDS) {
    const count = Math.min(PRG_CHUNK_WORDS, words - offset);
    if (zeros.length < 4 * count) zeros = new Uint8Array(4 * PRG_CHUNK_WORDS);
    const stream = await crypto.subtle.encrypt(
      { name: 'AES-CTR', counter: counterBlock(offset / 4), length: 64 },
      key,
      zeros.subarray(0, 4 * count),
    );
    const chunk = new Uint32Array(stream);
    if (!LITTLE_ENDIAN) {
      const view = new DataView(stream);
      for (let i = 0; i < count; i++) chunk[i] = view.getUint32(4 * i, true);
    }
    visit(chunk, offset);
  }
}

/** The first `words` words of the PRG stream for `seed`. */
export async function expandSeed(seed: Uint8Array, words: number): Promise<Uint32Array> {
  const out = new Uint32Array(words);
  await forEachPrgChunk(seed, words, (chunk, offset) => out.set(chunk, offset));
  return out;
}

/** Recomputes PRG_TEST_VECTOR here (a browser tab, a worker, Node); throws on any difference. */
export async function checkPrgTestVector(): Promise<void> {
  const seed = fromHex(PRG_TEST_VECTOR.seedHex);
  const first = await expandSeed(seed, 8);
  const words = await expandSeed(seed, PRG_TEST_VECTOR.wordAt.index + 1);
  const got = [...first].map((w) => w.toString(16));
  const want = PRG_TEST_VECTOR.first8.map((w) => w.toString(16));
  if (got.join() !== want.join()) throw new Error(`PRG test vector mismatch: got ${got.join()}, want ${want.join()} (seed ${toHex(seed)})`);
  if (words[PRG_TEST_VECTOR.wordAt.index] !== PRG_TEST_VECTOR.wordAt.value) {
    throw new Error(
      `PRG word ${PRG_TEST_VECTOR.wordAt.index}: got ${words[PRG_TEST_VECTOR.wordAt.index]}, want ${PRG_TEST_VECTOR.wordAt.value}`,
    );
  }
}
