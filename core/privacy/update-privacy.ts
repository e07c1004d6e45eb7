import type { UpdatePrivacy } from '../protocol/messages.ts';
import { SecureRandom, type UniformSource } from '../random/prng.ts';
import { ZigguratNormal } from '../random/ziggurat.ts';
import { clientLevelGrid, noiseOnGrid } from './grid-noise.ts';
import { floatKernels } from '../math/float-kernels.ts';

/**
 * Clipping and Gaussian noise for a whole model update (client-level
 * privacy). This is the mechanism only; how much privacy it buys over many
 * rounds is the accountant's business.
 */

/**
 * The L2 norm, summed in float64. Not finite exactly when some value is NaN
 * or infinite: a finite float32 squared is below 2^256, so no finite input
 * can overflow the sum (decodeUpdate relies on this).
 */
export function l2Norm(values: Float32Array): number {
  return Math.sqrt(floatKernels().sumOfSquares(values));
}

/**
 * Scales `values` in place so that their L2 norm is at most `bound`.
 * Returns the norm before clipping. A zero vector is left as it is.
 */
export function clipToNorm(values: Float32Array, bound: number): number {
  if (!(bound > 0)) throw new RangeError(`clip bound must be positive, got ${bound}`);
  const norm = l2Norm(values);
  if (norm > bound) {
    const scale = bound / norm;
    for (let i = 0; i < values.length; i++) values[i]! *= scale;
  }
  return norm;
}

/**
 * Standard normal samples from `uniform` (the platform CSPRNG by default):
 * the ziggurat method over bulk 32-bit words, 64 bits per sample
 * (core/random/ziggurat.ts; construction and argument in docs/random.md).
 * `fill` writes a whole array at once; `next` serves one sample at a time
 * from a small buffer filled the same way.
 */
export class GaussianSampler {
  private readonly normal: ZigguratNormal;
  private readonly buffer = new Float64Array(256);
  private index = this.buffer.length;

  constructor(uniform: UniformSource = new SecureRandom()) {
    this.normal = new ZigguratNormal(wordFiller(uniform));
  }

  next(): number {
    if (this.index === this.buffer.length) {
      this.normal.fill(this.buffer);
      this.index = 0;
    }
    return this.buffer[this.index++]!;
  }

  /** Sets every element of `out` to scale · N(0, 1), independently. */
  fill(out: Float32Array | Float64Array, scale = 1): void {
    this.normal.fill(out, scale);
  }
}

/** A source's bulk words, or words made from its doubles (their top 32 bits) when it has no bulk method. */
export function wordFiller(uniform: UniformSource): (out: Uint32Array) => void {
  if (uniform.fillUint32) return (out) => uniform.fillUint32!(out);
  return (out) => {
    for (let i = 0; i < out.length; i++) out[i] = Math.floor(uniform.next() * 4294967296) >>> 0;
  };
}

/** Adds N(0, std^2) independently to every value, in place. `std` is a standard deviation, not a variance. */
export function addGaussianNoise(values: Float32Array, std: number, sampler: GaussianSampler = new GaussianSampler()): void {
  if (!(std >= 0) || !Number.isFinite(std)) throw new RangeError(`noise std must be finite and >= 0, got ${std}`);
  if (std === 0) return;
  // Float64, so each value is rounded once, as when the noise was added sample by sample.
  const noise = new Float64Array(values.length);
  sampler.fill(noise, std);
  for (let i = 0; i < values.length; i++) values[i]! += noise[i]!;
}

export interface PrivatizedUpdate {
  /** Norm of the update before clipping. */
  readonly normBeforeClip: number;
  readonly clipped: boolean;
}

/**
 * Clips `update` to `privacy.clipNorm`, then adds noise of std at least
 * `privacy.noiseStd`, in place, float-safe on a grid (./grid-noise.ts: the
 * clipped update snapped to γ, integer noise added exactly in float64).
 */
export function privatizeUpdate(
  update: Float32Array,
  privacy: UpdatePrivacy,
  sampler: GaussianSampler = new GaussianSampler(),
): PrivatizedUpdate {
  const normBeforeClip = clipToNorm(update, privacy.clipNorm);
  if (!(privacy.noiseStd >= 0) || !Number.isFinite(privacy.noiseStd))
    throw new RangeError(`noise std must be finite and >= 0, got ${privacy.noiseStd}`);
  // A clipped update has every coordinate within one clip norm.
  if (privacy.noiseStd > 0)
    noiseOnGrid(update, clientLevelGrid(privacy.clipNorm, privacy.noiseStd / privacy.clipNorm, update.length, 1), sampler);
  return { normBeforeClip, clipped: normBeforeClip > privacy.clipNorm };
}
