import { wordFiller } from '../privacy/update-privacy.ts';
import type { UniformSource } from '../random/prng.ts';

/**
 * Per-block scaled integer quantisation with unbiased stochastic rounding
 * (QSGD-style). Each block of `blockSize` values gets one float32 scale
 * s = max|x| / L, where L is the largest code (127 for int8, 7 for int4), and
 * each value x becomes the integer code c with E[c] = x/s exactly: with
 * v = x/s, c = ⌊v⌋ + 1 with probability v − ⌊v⌋, else ⌊v⌋. The decoded value
 * c·s is then an unbiased estimate of x, with variance at most s²/4.
 *
 * The uniform draws come from a UniformSource with bulk words: the platform
 * CSPRNG (SecureRandom) in participants, the same source as the DP noise; a
 * seeded generator only in tests.
 */

export interface QuantizedBlocks {
  /** One float32 scale per block (0 for an all-zero block). */
  readonly scales: Float32Array;
  /** One code in [−L, L] per value. */
  readonly codes: Int8Array;
}

/** Words drawn per refill: bounded memory for large models. */
const WORDS_PER_DRAW = 16384;
const TWO_POW_32 = 4294967296;

export function quantizeStochastic(values: Float32Array, maxCode: number, blockSize: number, random: UniformSource): QuantizedBlocks {
  if (!Number.isInteger(maxCode) || maxCode < 1 || maxCode > 127) throw new RangeError(`maxCode must be in 1..127, got ${maxCode}`);
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new RangeError(`blockSize must be a positive integer, got ${blockSize}`);
  const blocks = Math.ceil(values.length / blockSize);
  const scales = new Float32Array(blocks);
  const codes = new Int8Array(values.length);
  const words = new Uint32Array(Math.min(WORDS_PER_DRAW, Math.max(1, values.length)));
  const fillWords = wordFiller(random);
  let wordIndex = words.length;
  const nextUniform = (): number => {
    if (wordIndex === words.length) {
      fillWords(words);
      wordIndex = 0;
    }
    return words[wordIndex++]! / TWO_POW_32;
  };
  for (let b = 0; b < blocks; b++) {
    const start = b * blockSize;
    const end = Math.min(values.length, start + blockSize);
    let max = 0;
    for (let i = start; i < end; i++) {
      const a = Math.abs(values[i]!);
      if (a > max) max = a;
    }
    if (!Number.isFinite(max)) throw new RangeError(`cannot quantise a non-finite value (block ${b})`);
    // The scale travels as float32: quantise against exactly the value the decoder will multiply by.
    const scale = Math.fround(max / maxCode);
    scales[b] = scale;
    if (scale === 0) continue; // an all-zero block (or one below float32's range): codes stay 0
    for (let i = start; i < end; i++) {
      const v = values[i]! / scale;
      const floor = Math.floor(v);
      let code = floor + (nextUniform() < v - floor ? 1 : 0);
      // max/scale can exceed maxCode by a rounding error of the float32 scale: clamp that one case.
      if (code > maxCode) code = maxCode;
      else if (code < -maxCode) code = -maxCode;
      codes[i] = code;
    }
  }
  return { scales, codes };
}

/** code · scale for every value, in `out` (which may be longer: the rest is left alone). */
export function dequantize(blocks: QuantizedBlocks, blockSize: number, out: Float32Array): Float32Array {
  const { scales, codes } = blocks;
  for (let b = 0; b < scales.length; b++) {
    const scale = scales[b]!;
    const end = Math.min(codes.length, (b + 1) * blockSize);
    for (let i = b * blockSize; i < end; i++) out[i] = codes[i]! * scale;
  }
  return out;
}
