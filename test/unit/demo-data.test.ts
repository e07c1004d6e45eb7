import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { test } from 'node:test';
import { loadMnistDemo, MNIST_TEST_COUNT, pixelBytesFromJson } from '../../coordinator/task/demo-data.ts';

const digitsDir = path.join(path.dirname(createRequire(import.meta.url).resolve('mnist/package.json')), 'src', 'digits');

test('the digits scanner gives the bytes JSON.parse gives, for a whole digits file', async () => {
  const text = await readFile(path.join(digitsDir, '7.json'));
  const parsed = (JSON.parse(text.toString('utf8')) as { data: number[] }).data;
  const expected = Uint8Array.from(parsed, (v) => Math.round(Math.min(1, Math.max(0, v)) * 255));
  assert.deepEqual(pixelBytesFromJson(text, '7.json'), expected);
});

test('the digits scanner clamps to [0, 1], reads spaces and negatives, and refuses what is not a plain number', () => {
  const bytes = (s: string) => pixelBytesFromJson(Buffer.from(s), 'f.json');
  assert.deepEqual(Array.from(bytes('{ "data": [ 0, 1, 0.5 ,-2, 3.0 , 0.004 ] }')), [0, 255, 128, 0, 255, 1]);
  assert.deepEqual(Array.from(bytes('{"data":[]}')), []);
  assert.throws(() => bytes('{"data":[0,"1"]}'), /f.json: not a plain number at byte 11/);
  assert.throws(() => bytes('{"data":[0,1e-3]}'), /not a plain number/);
  assert.throws(() => bytes('{"data":[0,,1]}'), /not a plain number/);
  assert.throws(() => bytes('{"data":[0,1'), /not a plain number/);
  assert.throws(() => bytes('{"pixels":[0]}'), /no "data" array/);
});

test('the demo data is the 10,000 digits split into a held-out test set and a training set', async () => {
  const { train, test: held } = await loadMnistDemo();
  assert.equal(held.count, MNIST_TEST_COUNT);
  assert.equal(train.count + held.count, 10_000);
  assert.equal(train.values.length, train.count * 784);
  const counts = new Array(10).fill(0);
  for (const label of [...train.labels, ...held.labels]) counts[label]++;
  assert.ok(
    counts.every((c) => c > 800 && c < 1200),
    `per-digit counts ${counts}`,
  );
});
