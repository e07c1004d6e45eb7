import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addGaussianNoise, clipToNorm, GaussianSampler, l2Norm, privatizeUpdate } from '../../core/privacy/update-privacy.ts';
import { SeededRandom } from '../../core/random/prng.ts';

describe('update clipping and noise', () => {
  it('clips to the bound and keeps the direction', () => {
    const v = Float32Array.from([3, 4]);
    assert.equal(clipToNorm(v, 2.5), 5);
    assert.ok(l2Norm(v) <= 2.5 + 1e-6);
    assert.ok(Math.abs(v[0]! / v[1]! - 0.75) < 1e-6);
  });

  it('leaves small updates and the zero vector alone', () => {
    const v = Float32Array.from([0.1, 0.2]);
    clipToNorm(v, 1);
    assert.deepEqual(Array.from(v), Array.from(Float32Array.from([0.1, 0.2])));
    const zero = new Float32Array(4);
    assert.equal(clipToNorm(zero, 1), 0);
    assert.ok(zero.every((x) => x === 0));
  });

  it('rejects a non-positive bound and a bad std', () => {
    assert.throws(() => clipToNorm(new Float32Array(2), 0), RangeError);
    assert.throws(() => addGaussianNoise(new Float32Array(2), -1), RangeError);
    assert.throws(() => addGaussianNoise(new Float32Array(2), NaN), RangeError);
  });

  it('adds noise whose empirical std is the requested std (not its square)', () => {
    // std 0.3 = sigma 1.5 x C 0.2; a variance/std mix-up would give 0.09 or 0.548.
    const std = 1.5 * 0.2;
    const n = 200_000;
    const v = new Float32Array(n);
    addGaussianNoise(v, std, new GaussianSampler(new SeededRandom(7)));
    let mean = 0;
    for (const x of v) mean += x;
    mean /= n;
    let variance = 0;
    for (const x of v) variance += (x - mean) ** 2;
    const empirical = Math.sqrt(variance / (n - 1));
    assert.ok(Math.abs(mean) < 0.005, `mean ${mean}`);
    assert.ok(Math.abs(empirical / std - 1) < 0.01, `std ${empirical} vs ${std}`);
  });

  it('privatizeUpdate clips before adding noise', () => {
    const v = Float32Array.from({ length: 10_000 }, () => 1); // norm 100
    const out = privatizeUpdate(v, { clipNorm: 1, noiseStd: 0 });
    assert.equal(out.clipped, true);
    assert.equal(out.normBeforeClip, 100);
    assert.ok(Math.abs(l2Norm(v) - 1) < 1e-5);
  });

  it('the default sampler draws from the CSPRNG (two draws differ)', () => {
    const a = new Float32Array(8);
    const b = new Float32Array(8);
    addGaussianNoise(a, 1);
    addGaussianNoise(b, 1);
    assert.notDeepEqual(Array.from(a), Array.from(b));
  });
});
