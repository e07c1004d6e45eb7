import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fwht, RandomRotation } from '../../core/math/hadamard.js';
import { SeededRandom } from '../../core/random/prng.js';

function norm(x: Float32Array): number {
  let s = 0;
  for (const v of x) s += v * v;
  return Math.sqrt(s);
}

test('fwht of a unit vector is a row of ±1, and applying it twice multiplies by the size', () => {
  const x = new Float64Array(8);
  x[3] = 1;
  fwht(x);
  assert.deepEqual(
    Array.from(x, (v) => Math.abs(v)),
    [1, 1, 1, 1, 1, 1, 1, 1],
  );
  fwht(x);
  assert.deepEqual(Array.from(x), [0, 0, 0, 8, 0, 0, 0, 0]);
  assert.throws(() => fwht(new Float32Array(6)), /not a power of two/);
});

test('a rotation keeps the norm, pads to a multiple of the block, and unrotate inverts it', () => {
  const random = new SeededRandom(7);
  const x = Float32Array.from({ length: 3000 }, () => random.next() * 2 - 1);
  const rotation = new RandomRotation(42, x.length, 256);
  const y = rotation.rotate(x);
  assert.equal(y.length, 3072);
  assert.ok(Math.abs(norm(y) - norm(x)) / norm(x) < 1e-5);
  const back = new RandomRotation(42, x.length, 256).unrotate(y);
  let maxError = 0;
  for (let i = 0; i < x.length; i++) maxError = Math.max(maxError, Math.abs(back[i] - x[i]));
  assert.ok(maxError < 1e-5, `round trip error ${maxError}`);
  // Another seed is another rotation.
  assert.notDeepEqual(new RandomRotation(43, x.length, 256).rotate(x), y);
});

test('a rotation spreads one large coordinate over the whole block', () => {
  const x = new Float32Array(1024);
  x[5] = 100;
  const y = new RandomRotation(1, x.length).rotate(x);
  const max = Math.max(...Array.from(y, Math.abs));
  assert.ok(Math.abs(max - 100 / 32) < 1e-4, `max ${max}`);
});

test('a rotation refuses a vector of another length', () => {
  const rotation = new RandomRotation(1, 10, 8);
  assert.throws(() => rotation.rotate(new Float32Array(9)), /expected 10 values/);
  assert.throws(() => rotation.unrotate(new Float32Array(10)), /expected 16 rotated values/);
  assert.throws(() => new RandomRotation(1, 10, 12), /not a power of two/);
});
