import type { UpdatePrivacy } from '../protocol/messages.ts';
import { SecureRandom, type UniformSource } from '../random/prng.ts';
import { clientLevelGrid, noiseOnGrid } from './grid-noise.ts';

/**
 * Clipping and Gaussian noise for a whole model update (client-level
 * privacy). This is the mechanism only; how much privacy it buys over many
 * rounds is the accountant's business.
 */

export function l2Norm(values: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]! * values[i]!;
  return Math.sqrt(sum);
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

/** Standard normal samples by the Box-Muller transform, two per pair of uniforms. */
export class GaussianSampler {
  private spare: number | null = null;
  constructor(private readonly uniform: UniformSource = new SecureRandom()) {}

  next(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    // 1 - u lies in (0, 1], so the logarithm is finite.
    const u1 = 1 - this.uniform.next();
    const u2 = this.uniform.next();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }
}

/** Adds N(0, std^2) independently to every value, in place. `std` is a standard deviation, not a variance. */
export function addGaussianNoise(values: Float32Array, std: number, sampler: GaussianSampler = new GaussianSampler()): void {
  if (!(std >= 0) || !Number.isFinite(std)) throw new RangeError(`noise std must be finite and >= 0, got ${std}`);
  if (std === 0) return;
  for (let i = 0; i < values.length; i++) values[i]! += std * sampler.next();
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
export function privatizeUpdate(update: Float32Array, privacy: UpdatePrivacy, sampler: GaussianSampler = new GaussianSampler()): PrivatizedUpdate {
  const normBeforeClip = clipToNorm(update, privacy.clipNorm);
  if (!(privacy.noiseStd >= 0) || !Number.isFinite(privacy.noiseStd)) throw new RangeError(`noise std must be finite and >= 0, got ${privacy.noiseStd}`);
  // A clipped update has every coordinate within one clip norm.
  if (privacy.noiseStd > 0) noiseOnGrid(update, clientLevelGrid(privacy.clipNorm, privacy.noiseStd / privacy.clipNorm, update.length, 1), sampler);
  return { normBeforeClip, clipped: normBeforeClip > privacy.clipNorm };
}
