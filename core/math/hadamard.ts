/**
 * Randomized Hadamard rotation: y = H·D·x / √B per block of B values, with D a
 * diagonal of ±1 drawn from a seed. It is orthonormal, so norms are kept and
 * `unrotate(rotate(x))` gives x back; and it spreads a few large coordinates
 * over the whole block, which is what lets a coarse quantiser (int4) or a
 * discrete noise (Skellam) use a small range (DRIVE/EDEN; Kairouz et al. 2021).
 *
 * The rotation is applied per block so that a model of n values costs
 * O(n log B) and is padded to a multiple of B, not to the next power of two
 * of n (which would add up to 100%). Signs come from a seeded, non-secret
 * generator: every participant and the coordinator derive the same rotation
 * from a round's public seed; no guarantee rests on the signs being secret.
 */
import { SeededRandom } from '../random/prng.js';

/** The default block: large enough to flatten outliers, small enough that the padding is negligible. */
export const DEFAULT_ROTATION_BLOCK = 1024;

/** In-place unnormalised fast Walsh–Hadamard transform of `x[offset, offset + size)`; `size` a power of two. */
export function fwht(x: Float32Array | Float64Array, offset = 0, size = x.length - offset): void {
  if (!isPowerOfTwo(size)) throw new Error(`fwht: size ${size} is not a power of two`);
  if (offset < 0 || offset + size > x.length) throw new Error('fwht: block outside the array');
  for (let half = 1; half < size; half *= 2) {
    for (let start = offset; start < offset + size; start += 2 * half) {
      for (let i = start; i < start + half; i++) {
        const a = x[i];
        const b = x[i + half];
        x[i] = a + b;
        x[i + half] = a - b;
      }
    }
  }
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** A seeded block rotation of vectors of one length. */
export class RandomRotation {
  /** The rotated length: `length` rounded up to a multiple of the block. */
  readonly rotatedLength: number;
  private readonly signs: Float32Array;
  private readonly scale: number;

  constructor(
    readonly seed: number,
    readonly length: number,
    readonly block: number = DEFAULT_ROTATION_BLOCK,
  ) {
    if (!Number.isInteger(length) || length < 0) throw new Error(`RandomRotation: invalid length ${length}`);
    if (!isPowerOfTwo(block)) throw new Error(`RandomRotation: block ${block} is not a power of two`);
    this.rotatedLength = Math.ceil(length / block) * block;
    this.scale = 1 / Math.sqrt(block);
    this.signs = new Float32Array(this.rotatedLength);
    const random = new SeededRandom(seed);
    for (let i = 0; i < this.rotatedLength; i += 32) {
      const bits = random.nextUint32();
      for (let j = 0; j < 32 && i + j < this.rotatedLength; j++) this.signs[i + j] = (bits >>> j) & 1 ? -1 : 1;
    }
  }

  /** H·D·x/√B per block; `x` is zero-padded to `rotatedLength`. */
  rotate(x: Float32Array): Float32Array {
    if (x.length !== this.length) throw new Error(`RandomRotation: expected ${this.length} values, got ${x.length}`);
    const out = new Float32Array(this.rotatedLength);
    for (let i = 0; i < x.length; i++) out[i] = x[i] * this.signs[i];
    for (let start = 0; start < this.rotatedLength; start += this.block) fwht(out, start, this.block);
    for (let i = 0; i < out.length; i++) out[i] *= this.scale;
    return out;
  }

  /** The inverse, D·H·y/√B per block, cut back to `length` values, in y's precision (a float64 sum stays float64). */
  unrotate(y: Float32Array): Float32Array;
  unrotate(y: Float64Array): Float64Array;
  unrotate(y: Float32Array | Float64Array): Float32Array | Float64Array {
    if (y.length !== this.rotatedLength) {
      throw new Error(`RandomRotation: expected ${this.rotatedLength} rotated values, got ${y.length}`);
    }
    const work = y.slice();
    for (let start = 0; start < this.rotatedLength; start += this.block) fwht(work, start, this.block);
    const out = y instanceof Float64Array ? new Float64Array(this.length) : new Float32Array(this.length);
    for (let i = 0; i < out.length; i++) out[i] = work[i] * this.scale * this.signs[i];
    return out;
  }
}
