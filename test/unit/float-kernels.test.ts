import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  agreeingWithScalar,
  floatKernels,
  kernelModuleBytes,
  scalarKernels,
  simdKernels,
  type FloatKernels,
} from '../../core/math/float-kernels.ts';
import { SeededRandom } from '../../core/random/prng.ts';

// Lengths around the 4-value step and the 16,384-value chunk, and the demo MLP's 199,210 parameters.
const LENGTHS = [0, 1, 3, 4, 5, 7, 16_383, 16_384, 16_385, 32_771, 199_210];

/** Values over 24 orders of magnitude, both signs, subnormals and zeros: where a different order of operations shows. */
function values(n: number, seed: number): Float32Array {
  const random = new SeededRandom(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = random.next();
    out[i] = r < 0.01 ? 0 : r < 0.02 ? (random.next() - 0.5) * 1e-40 : (random.next() - 0.5) * 10 ** (random.next() * 24 - 12);
  }
  return out;
}

function bitwiseEqual(actual: Float64Array, expected: Float64Array): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (!Object.is(actual[i], expected[i])) assert.fail(`value ${i}: ${actual[i]} against ${expected[i]}`);
  }
}

describe('float kernels', () => {
  const simd = simdKernels();

  it('compile to SIMD WebAssembly on this platform, and floatKernels() picks them', () => {
    assert.ok(simd, 'WebAssembly SIMD did not compile');
    assert.equal(floatKernels().name, 'simd');
    assert.equal(kernelModuleBytes().length < 400, true);
  });

  it('sum the squares exactly as the scalar four-lane loop does, to the bit', () => {
    for (const n of LENGTHS) {
      const v = values(n, n + 1);
      assert.ok(Object.is(simd!.sumOfSquares(v), scalarKernels.sumOfSquares(v)), `length ${n}`);
    }
  });

  it('the four lanes are the values at indices 0, 1, 2 and 3 mod 4, combined in order', () => {
    // Squares 2^54, 1, 1, 1 (the float64 spacing at 2^54 is 4): ((2^54 + 1) + 1) + 1 rounds each 1 away,
    // while 1 + 1 + 1 first would give 2^54 + 4. Which lane holds the large value decides the result.
    for (const kernels of [simd!, scalarKernels]) {
      assert.equal(kernels.sumOfSquares(new Float32Array([2 ** 27, 1, 1, 1])), 2 ** 54);
      assert.equal(kernels.sumOfSquares(new Float32Array([1, 1, 1, 2 ** 27])), 2 ** 54 + 4);
      assert.equal(kernels.sumOfSquares(new Float32Array([1, 1, 1, 2 ** 27, 0, 0, 0, 0])), 2 ** 54 + 4);
    }
    assert.equal(simd!.sumOfSquares(new Float32Array([1, 2, 3, 4, 5])), 55);
  });

  it('add scaled updates exactly as the scalar loop does, to the bit, over many additions', () => {
    for (const n of LENGTHS) {
      const scalar = scalarKernels.float64Sum(n);
      const fast = simd!.float64Sum(n);
      for (const [k, coefficient] of [3, 0.1, -7.25, 1e-30, 600, 1 / 3].entries()) {
        const update = values(n, 1000 * n + k);
        scalar.addScaled(update, coefficient);
        fast.addScaled(update, coefficient);
      }
      bitwiseEqual(fast.values, scalar.values);
    }
  });

  it('a non-finite value makes the sum of squares non-finite (the update check relies on it)', () => {
    for (const kernels of [simd!, scalarKernels] satisfies FloatKernels[]) {
      for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
        for (const at of [0, 5, 16_384, 20_001]) {
          const v = values(20_002, at);
          v[at] = bad;
          assert.equal(Number.isFinite(kernels.sumOfSquares(v)), false, `${kernels.name}: ${bad} at ${at}`);
        }
      }
      // The largest float32 squared is far below float64's range.
      assert.equal(Number.isFinite(kernels.sumOfSquares(new Float32Array(1000).fill(3.4028234663852886e38))), true);
    }
  });

  it('refuse an update of another length, and leave the sum as it was', () => {
    for (const kernels of [simd!, scalarKernels]) {
      const sum = kernels.float64Sum(8);
      sum.addScaled(new Float32Array(8).fill(1), 2);
      assert.throws(() => sum.addScaled(new Float32Array(9), 1), /update has 9 values, the sum has 8/);
      assert.deepEqual([...sum.values], new Array(8).fill(2));
    }
  });

  it('are used only if they agree with the scalar loops on a probe (a big-endian host, an engine bug)', () => {
    assert.equal(agreeingWithScalar(simd), simd);
    assert.equal(agreeingWithScalar(undefined), undefined);
    const offByAnUlp: FloatKernels = { ...simd!, sumOfSquares: (values) => simd!.sumOfSquares(values) * (1 + Number.EPSILON) };
    assert.equal(agreeingWithScalar(offByAnUlp), undefined);
    const wrongSum: FloatKernels = {
      ...simd!,
      float64Sum: (length) => {
        const sum = simd!.float64Sum(length);
        return { values: sum.values, addScaled: (update, coefficient) => sum.addScaled(update, coefficient * 1.0000001) };
      },
    };
    assert.equal(agreeingWithScalar(wrongSum), undefined);
  });

  it('keep each sum apart: sums made one after another share no memory', () => {
    const a = simd!.float64Sum(5);
    const b = simd!.float64Sum(5);
    a.addScaled(new Float32Array([1, 2, 3, 4, 5]), 1);
    assert.deepEqual([...b.values], [0, 0, 0, 0, 0]);
    // A view into the update (as the coordinator's decoded frames are) reads only its own values.
    const backing = new Float32Array([9, 1, 2, 3, 4, 5, 9]);
    b.addScaled(backing.subarray(1, 6), 2);
    assert.deepEqual([...b.values], [2, 4, 6, 8, 10]);
  });
});
