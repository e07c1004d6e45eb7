import { erfc } from '../privacy/math.ts';

/**
 * Standard normal samples by the ziggurat method (Marsaglia & Tsang 2000)
 * with 256 layers, drawn in bulk from a source of uniform 32-bit words.
 *
 * Each sample takes two fresh words, 64 bits: the low 8 bits of the first
 * pick the layer, and 53 other bits (the first word's top 21, all 32 of the
 * second) give a uniform u in [-1, 1). Layer and value never share bits
 * (Doornik 2005 showed that reusing the layer's bits in the value, as the
 * original 32-bit code did, correlates them). x = u·X[i] is accepted at once
 * when |x| < X[i+1] (about 99% of draws); otherwise the wedge is resolved by
 * rejection against the exact density, and layer 0's tail beyond R by
 * Marsaglia's exponential method, with further words from the same source.
 * The method is exact: with exact tables every output has the N(0, 1)
 * distribution; the tables are computed here in double precision from R and
 * the layer area V (checked by test/unit/gaussian-sampler.test.ts).
 *
 * It replaces Box-Muller (a logarithm, a square root, a sine and a cosine per
 * pair): most samples cost a table lookup, a multiply and a compare. The
 * tails reach further than Box-Muller's with 53-bit uniforms (|z| ≤ 8.6):
 * the tail method takes logarithms of 53-bit uniforms, up to R + 36.7/R ≈ 13.7.
 */

const LAYERS = 256;
/** The start of the tail: the x where the base layer (rectangle plus tail) has the common area V. */
export const ZIGGURAT_R = 3.6541528853610088;
const density = (x: number): number => Math.exp(-0.5 * x * x);
/** The area of every layer: R·f(R) + ∫_R^∞ f, with f the unnormalised density e^{−x²/2}. */
export const ZIGGURAT_V = ZIGGURAT_R * density(ZIGGURAT_R) + Math.sqrt(Math.PI / 2) * erfc(ZIGGURAT_R / Math.SQRT2);

/** X[i]: the right edge of layer i (X[0] = V/f(R), the base layer's width if it were a rectangle; X[256] = 0). F[i] = f(X[i]). */
export const ZIGGURAT_X = new Float64Array(LAYERS + 1);
const F = new Float64Array(LAYERS + 1);
ZIGGURAT_X[0] = ZIGGURAT_V / density(ZIGGURAT_R);
ZIGGURAT_X[1] = ZIGGURAT_R;
for (let i = 2; i < LAYERS; i++) ZIGGURAT_X[i] = Math.sqrt(-2 * Math.log(ZIGGURAT_V / ZIGGURAT_X[i - 1]! + density(ZIGGURAT_X[i - 1]!)));
ZIGGURAT_X[LAYERS] = 0;
for (let i = 0; i <= LAYERS; i++) F[i] = density(ZIGGURAT_X[i]!);

/** Words per refill of the buffer: 64 KiB, the most one `crypto.getRandomValues` call may fill. */
export const WORD_BLOCK = 16384;
const TWO_POW_32 = 4294967296;
/** 2^-52 and 2^-53: multiplying by a power of two is exact, and faster than dividing. */
const TWO_POW_MINUS_52 = 1 / 4503599627370496;
const TWO_POW_MINUS_53 = 1 / 9007199254740992;
const TWO_POW_26 = 67108864;

export class ZigguratNormal {
  private readonly words = new Uint32Array(WORD_BLOCK);
  private index = WORD_BLOCK;

  /** `refill(out)` must fill all of `out` with independent uniform 32-bit words. */
  constructor(private readonly refill: (out: Uint32Array) => void) {}

  /** Writes scale · N(0, 1) samples into every element of `out`. */
  fill(out: Float32Array | Float64Array, scale = 1): void {
    const words = this.words;
    const x0 = ZIGGURAT_X;
    let index = this.index;
    let k = 0;
    while (k < out.length) {
      if (index > WORD_BLOCK - 2) {
        this.refill(words);
        index = 0;
      }
      // As many samples as the buffered words allow, with no refill check inside.
      const end = Math.min(out.length, k + ((WORD_BLOCK - index) >> 1));
      for (; k < end; k++) {
        const a = words[index]!;
        const b = words[index + 1]!;
        index += 2;
        const layer = a & 0xff;
        const u = ((a >>> 11) * TWO_POW_32 + b) * TWO_POW_MINUS_52 - 1;
        const x = u * x0[layer]!;
        const edge = x0[layer + 1]!;
        if (x < edge && x > -edge) {
          out[k] = scale * x;
          continue;
        }
        // The slow path may draw more words (and refill): leave this run of the buffer.
        this.index = index;
        out[k] = scale * this.resolve(layer, u, x);
        index = this.index;
        k++;
        break;
      }
    }
    this.index = index;
  }

  private word(): number {
    if (this.index === WORD_BLOCK) {
      this.refill(this.words);
      this.index = 0;
    }
    return this.words[this.index++]!;
  }

  /** A uniform double in [0, 1) with 53 bits. */
  private uniform(): number {
    return ((this.word() >>> 5) * TWO_POW_26 + (this.word() >>> 6)) * TWO_POW_MINUS_53;
  }

  /** A uniform double in (0, 1), never 0, so its logarithm is finite. */
  private openUniform(): number {
    return ((this.word() >>> 5) * TWO_POW_26 + (this.word() >>> 6) + 0.5) * TWO_POW_MINUS_53;
  }

  /** The slow path for a draw that fell outside its layer's inner rectangle: wedge or tail, redrawing on rejection. */
  private resolve(layer: number, u: number, x: number): number {
    for (;;) {
      if (layer === 0) return this.tail(u < 0);
      if (F[layer + 1]! + (F[layer]! - F[layer + 1]!) * this.uniform() < density(x)) return x;
      const a = this.word();
      const b = this.word();
      layer = a & 0xff;
      u = ((a >>> 11) * TWO_POW_32 + b) * TWO_POW_MINUS_52 - 1;
      x = u * ZIGGURAT_X[layer]!;
      if (Math.abs(x) < ZIGGURAT_X[layer + 1]!) return x;
    }
  }

  /** A sample from the normal tail beyond R (Marsaglia 1964), with the given sign. */
  private tail(negative: boolean): number {
    let x: number;
    let y: number;
    do {
      x = Math.log(this.openUniform()) / ZIGGURAT_R;
      y = Math.log(this.openUniform());
    } while (-2 * y < x * x);
    return negative ? x - ZIGGURAT_R : ZIGGURAT_R - x;
  }
}
