import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dpSgdGrid, roundedGaussian, roundedGaussianNoise } from '../../core/privacy/grid-noise.ts';
import { GaussianSampler } from '../../core/privacy/update-privacy.ts';
import { SeededRandom } from '../../core/random/prng.ts';

describe('roundedGaussianNoise', () => {
  it('draws exactly the values roundedGaussian draws one at a time, across its chunks', () => {
    // Longer than several chunks and not a multiple of one, so the last chunk is partial.
    const length = 3 * 8192 + 1234;
    const plan = dpSgdGrid(1, 1.3, length, 32);
    const bulk = roundedGaussianNoise(length, plan, new GaussianSampler(new SeededRandom(11)));
    const oneByOne = new GaussianSampler(new SeededRandom(11));
    assert.equal(bulk.length, length);
    for (let i = 0; i < length; i++) {
      const expected = roundedGaussian(plan, oneByOne);
      if (bulk[i] !== expected) assert.fail(`value ${i}: ${bulk[i]} from the bulk draw, ${expected} one at a time`);
    }
  });

  it('is all zeros without noise', () => {
    const plan = dpSgdGrid(1, 0, 10, 4);
    assert.deepEqual([...roundedGaussianNoise(10, plan, new GaussianSampler(new SeededRandom(1)))], new Array(10).fill(0));
  });
});
