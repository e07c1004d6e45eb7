import { GaussianSampler } from '../core/privacy/update-privacy.ts';
import { SecureRandom, type UniformSource } from '../core/random/prng.ts';

/**
 * The noise sampler as it was before issue 17, kept only as the benchmarks'
 * baseline: Box-Muller, two normals per pair of 53-bit CSPRNG uniforms, one
 * sample per call. It subclasses GaussianSampler so dpSgdStep takes it.
 */
export class BoxMullerSampler extends GaussianSampler {
  private spare: number | null = null;

  constructor(private readonly uniform: UniformSource = new SecureRandom()) {
    super(uniform);
  }

  override next(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    const u1 = 1 - this.uniform.next();
    const u2 = this.uniform.next();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }

  /** What the old noise loops did: one `next()` per value. */
  override fill(out: Float32Array | Float64Array, scale = 1): void {
    for (let i = 0; i < out.length; i++) out[i] = scale * this.next();
  }
}
