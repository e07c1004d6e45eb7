import { SecAggError } from './errors.ts';
import { MAX_WORD_BITS } from './word-packing.ts';

/**
 * The modulus of the secure sum for compressed update encodings
 * (docs/secagg-compression.md gives the derivation).
 *
 * With v value bits a participant's coordinate is quantised to an integer z
 * with |z| ≤ R/2 = 2^(v−1) − 1 (R = 2^v − 2: int8 → [−127, 127], int4 →
 * [−7, 7]). The masked words live in Z_{2^b}; the sum of n such inputs, plus
 * any integer noise added after quantisation (Skellam, bounded by `noiseTail`
 * except with negligible probability), is read back as a signed b-bit
 * integer. b is the smallest width with
 *
 *   n·R/2 + noiseTail ≤ 2^(b−2) − 1
 *
 * i.e. one bit for the sign and one bit of headroom: an honest sum then
 * spans at most half of Z_{2^b}, so a garbage masked input (which decodes to
 * a uniform word) lands outside the range core/secagg/sum-range.ts accepts
 * (slightly wider: n·(R/2 + 1) steps plus the noise tail) with probability a
 * little under 1/2 per coordinate without noise (0.43 for int4 at n = 9),
 * lower under Skellam (docs/secagg-compression.md). Without that bit, for n a
 * power of two the honest range n·(c + Δ) would cover the whole ring and the
 * range check could never fire. Without noise this is
 * b = v + ⌈log2 n⌉ + 1.
 *
 * 32-bit words (the default) keep the original rule, n·R/2 ≤ 2^31 − 1
 * (core/secagg/quantize.ts), so the default protocol is unchanged.
 */

/** The value bits of the compressed update encodings under secure aggregation. */
export const VALUE_BITS = { int8: 8, int4: 4 } as const;
export type CompressedEncoding = keyof typeof VALUE_BITS;

/** Bits of headroom above the sign bit, for the sum-range check (see above). */
export const SUM_CHECK_HEADROOM_BITS = 1;

/** R = 2^v − 2: one coordinate encodes to an integer in [−(2^(v−1) − 1), 2^(v−1) − 1], which fits v signed bits. */
export function quantizationRangeForValueBits(valueBits: number): number {
  if (!(Number.isInteger(valueBits) && valueBits >= 2 && valueBits <= 31))
    throw new SecAggError('invalid-config', `value bits must be an integer in [2, 31], got ${valueBits}`);
  return 2 ** valueBits - 2;
}

/** The largest |Σ| of n honest encodings, in integer units: n·R/2 plus the noise allowance. */
function honestReach(quantizationRange: number, participants: number, noiseTail: number): number {
  if (!(Number.isInteger(participants) && participants >= 1))
    throw new SecAggError('invalid-config', `participants must be a positive integer, got ${participants}`);
  if (!(noiseTail >= 0 && Number.isFinite(noiseTail)))
    throw new SecAggError('invalid-config', `the noise allowance must be finite and >= 0, got ${noiseTail}`);
  return participants * (quantizationRange / 2) + noiseTail;
}

/**
 * The smallest word bits b < 32 for which `participants` inputs with
 * quantisation range R (plus `noiseTail` integers of noise) cannot wrap and
 * keep the headroom bit; refuses a sum that needs more than 31 bits.
 */
export function wordBitsFor(quantizationRange: number, participants: number, noiseTail = 0): number {
  const reach = honestReach(quantizationRange, participants, noiseTail);
  for (let b = 2 + SUM_CHECK_HEADROOM_BITS; b < MAX_WORD_BITS; b++) if (reach <= 2 ** (b - 1 - SUM_CHECK_HEADROOM_BITS) - 1) return b;
  throw new SecAggError(
    'invalid-config',
    `a secure sum of ${participants} inputs with quantization range ${quantizationRange}${noiseTail > 0 ? ` and noise up to ${Math.ceil(noiseTail)}` : ''} needs more than ${MAX_WORD_BITS - 1}-bit words: use 32-bit words (float32) or fewer participants`,
  );
}

/**
 * The most inputs whose sum fits b-bit words: for b < 32 with the headroom
 * bit, ⌊(2^(b−2) − 1 − noiseTail)/(R/2)⌋; for b = 32 the original
 * ⌊(2^31 − 1 − noiseTail)/(R/2)⌋.
 */
export function maxParticipantsForWords(quantizationRange: number, wordBits: number, noiseTail = 0): number {
  checkWordBits(wordBits);
  const top = wordBits === MAX_WORD_BITS ? 2 ** 31 - 1 : 2 ** (wordBits - 1 - SUM_CHECK_HEADROOM_BITS) - 1;
  return Math.max(0, Math.floor((top - noiseTail) / (quantizationRange / 2)));
}

export function checkWordBits(wordBits: number): void {
  if (!(Number.isInteger(wordBits) && wordBits >= 2 + SUM_CHECK_HEADROOM_BITS && wordBits <= MAX_WORD_BITS))
    throw new SecAggError(
      'invalid-config',
      `wordBits must be an integer in [${2 + SUM_CHECK_HEADROOM_BITS}, ${MAX_WORD_BITS}], got ${wordBits}`,
    );
}

/** Reduces every word mod 2^b in place (b < 32): the ring map Z_{2^32} → Z_{2^b}, which keeps sums and masks. */
export function reduceWords(words: Uint32Array, wordBits: number): void {
  if (wordBits >= MAX_WORD_BITS) return;
  const mask = 2 ** wordBits - 1;
  for (let i = 0; i < words.length; i++) words[i] = words[i]! & mask;
}

/** A word of Z_{2^b} read as a signed integer in [−2^(b−1), 2^(b−1)): two's complement in b bits. */
export function signedWord(word: number, wordBits: number): number {
  const shift = MAX_WORD_BITS - wordBits;
  return (word << shift) >> shift;
}

/**
 * A Gaussian noise share added before quantisation is clipped with the
 * value at ±c: clipped noise is not the noise the sum is said to carry.
 * With few value bits the operator must choose c to hold the clipped update
 * (|x_j| ≤ C per coordinate under an L2 clip C) plus the noise up to the
 * tail t·σ that every one of n·d draws stays within except with probability
 * `tail` (P(|N(0,1)| > t) ≤ 2·exp(−t²/2)): returns that smallest c.
 */
export function clipRangeHoldingNoise(clipNorm: number, noiseStd: number, participants: number, dimension: number, tail: number): number {
  if (!(clipNorm > 0 && noiseStd >= 0 && tail > 0 && tail < 1))
    throw new RangeError('clip norm must be > 0, noise std >= 0 and the tail in (0, 1)');
  if (noiseStd === 0) return clipNorm;
  const t = Math.sqrt(2 * Math.log((2 * participants * dimension) / tail));
  return clipNorm + t * noiseStd;
}
