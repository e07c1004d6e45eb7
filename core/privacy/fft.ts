/**
 * A small in-place radix-2 complex FFT (iterative Cooley–Tukey), for the PLD
 * accountant's convolutions. Pure math: no DOM, no Node APIs.
 *
 * Twiddle factors are computed directly as cos/sin of 2πk/n (not by repeated
 * multiplication), so the rounding error stays O(log n · 2^-53) relative to
 * the largest coefficient.
 */

/** True for 1, 2, 4, 8, … */
export function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 1 && (n & (n - 1)) === 0;
}

/** The smallest power of two ≥ n (n ≥ 1). */
export function nextPowerOfTwo(n: number): number {
  if (!(n >= 1) || !Number.isFinite(n)) throw new RangeError(`nextPowerOfTwo needs n >= 1, got ${n}`);
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

const twiddleCache = new Map<number, { cos: Float64Array; sin: Float64Array }>();

/** cos and sin of 2πk/n for k < n/2; the last few sizes are kept. */
function twiddles(n: number): { cos: Float64Array; sin: Float64Array } {
  let t = twiddleCache.get(n);
  if (!t) {
    const half = n / 2;
    const cos = new Float64Array(half);
    const sin = new Float64Array(half);
    for (let k = 0; k < half; k++) {
      const angle = (2 * Math.PI * k) / n;
      cos[k] = Math.cos(angle);
      sin[k] = Math.sin(angle);
    }
    t = { cos, sin };
    if (twiddleCache.size >= 4) twiddleCache.delete(twiddleCache.keys().next().value as number);
    twiddleCache.set(n, t);
  }
  return t;
}

/**
 * In-place discrete Fourier transform of (re, im), length a power of two.
 * Forward: X_k = Σ_j x_j e^{−2πi jk/n}. Inverse (`inverse` true): the
 * conjugate transform divided by n, so inverse(forward(x)) = x.
 */
export function fft(re: Float64Array, im: Float64Array, inverse = false): void {
  const n = re.length;
  if (im.length !== n) throw new RangeError(`fft: re and im lengths differ (${n} vs ${im.length})`);
  if (!isPowerOfTwo(n)) throw new RangeError(`fft: length must be a power of two, got ${n}`);
  if (n === 1) return;
  // Bit-reversal permutation.
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      const tr = re[i]!;
      re[i] = re[j]!;
      re[j] = tr;
      const ti = im[i]!;
      im[i] = im[j]!;
      im[j] = ti;
    }
  }
  const { cos, sin } = twiddles(n);
  const sign = inverse ? 1 : -1;
  for (let size = 2; size <= n; size *= 2) {
    const half = size / 2;
    const stride = n / size;
    for (let start = 0; start < n; start += size) {
      for (let k = 0; k < half; k++) {
        const wr = cos[k * stride]!;
        const wi = sign * sin[k * stride]!;
        const a = start + k;
        const b = a + half;
        const xr = re[b]! * wr - im[b]! * wi;
        const xi = re[b]! * wi + im[b]! * wr;
        re[b] = re[a]! - xr;
        im[b] = im[a]! - xi;
        re[a] = re[a]! + xr;
        im[a] = im[a]! + xi;
      }
    }
  }
  if (inverse) {
    for (let i = 0; i < n; i++) {
      re[i]! /= n;
      im[i]! /= n;
    }
  }
}

/**
 * Linear convolution of two real sequences by FFT (zero-padded to a power of
 * two ≥ a.length + b.length − 1). Both real inputs share one complex
 * transform (a in the real part, b in the imaginary part), so it costs two
 * FFTs. Values are as exact as the FFT: ~1e-16 times the largest product sum.
 */
export function convolveReal(a: Float64Array, b: Float64Array): Float64Array {
  if (a.length === 0 || b.length === 0) return new Float64Array(0);
  const outLength = a.length + b.length - 1;
  const n = nextPowerOfTwo(outLength);
  const re = new Float64Array(n);
  const im = new Float64Array(n);
  re.set(a);
  im.set(b);
  fft(re, im);
  // With Z = FFT(a + ib): A_k = (Z_k + conj Z_{n−k})/2, B_k = (Z_k − conj Z_{n−k})/(2i),
  // and FFT(a*b)_k = A_k B_k.
  const outRe = new Float64Array(n);
  const outIm = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const m = (n - k) % n;
    const zr = re[k]!;
    const zi = im[k]!;
    const cr = re[m]!;
    const ci = -im[m]!;
    const ar = (zr + cr) / 2;
    const ai = (zi + ci) / 2;
    // (Z − conj Z_{n−k}) / (2i) = (d_r + i d_i)/(2i) = (d_i − i d_r)/2
    const dr = zr - cr;
    const di = zi - ci;
    const br = di / 2;
    const bi = -dr / 2;
    outRe[k] = ar * br - ai * bi;
    outIm[k] = ar * bi + ai * br;
  }
  fft(outRe, outIm, true);
  return outRe.slice(0, outLength);
}
