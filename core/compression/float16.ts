/**
 * IEEE 754 binary16 ("half") conversion, round to nearest even. A float32
 * beyond the largest half (65 504) saturates to ±65 504 rather than becoming
 * infinite: an update coordinate that large is post-processing noise either
 * way, and the wire never carries an infinity (the decoder refuses one).
 */

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/** The largest finite binary16 value. */
export const FLOAT16_MAX = 65504;

/** The binary16 bits of `value` (round to nearest even, saturating; NaN stays NaN). */
export function toFloat16Bits(value: number): number {
  F32[0] = value;
  const x = U32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  const mantissa = x & 0x7fffff;
  if (exponent === 0xff) return mantissa !== 0 ? 0x7e00 : sign | 0x7bff; // NaN stays NaN (refused later); ±Inf saturates
  // Unbiased exponent e = exponent - 127; half normal range is e in [-14, 15].
  const e = exponent - 127;
  if (e > 15) return sign | 0x7bff;
  if (e >= -14) {
    // Normal half: keep 10 mantissa bits, round to nearest even on the 13 dropped ones.
    let half = ((e + 15) << 10) | (mantissa >>> 13);
    const rest = mantissa & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half++;
    // A carry into the exponent past 30 (0x7c00) would be infinity: saturate.
    return sign | Math.min(half, 0x7bff);
  }
  if (e < -25) return sign; // below half the smallest subnormal: rounds to zero
  // Subnormal half: value = m · 2^-24 with m < 1024. Shift the implicit-1 mantissa into place.
  const full = mantissa | 0x800000;
  const shift = -e - 14 + 13; // 14..24
  let half = full >>> shift;
  const rest = full & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  if (rest > halfway || (rest === halfway && (half & 1) === 1)) half++;
  return sign | half;
}

/** The value of binary16 bits (exact in float32). */
export function fromFloat16Bits(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1024 + mantissa) * 2 ** (exponent - 25);
}

/** Whether binary16 bits hold an infinity or a NaN (exponent all ones). */
export function isFloat16NonFinite(bits: number): boolean {
  return (bits & 0x7c00) === 0x7c00;
}
