import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { idxDataset, isGzip, parseIdx, type IdxArray } from '../../core/data/idx.ts';
import type { ImageInput } from '../../core/data/schema.ts';

/** An IDX file: zero, zero, type, rank, big-endian dims, then the data. */
function idxBytes(dims: readonly number[], data: ArrayLike<number>, type = 0x08): Uint8Array {
  const bytes = new Uint8Array(4 + 4 * dims.length + data.length);
  const view = new DataView(bytes.buffer);
  bytes[2] = type;
  bytes[3] = dims.length;
  dims.forEach((d, i) => {
    view.setUint32(4 + 4 * i, d, false);
  });
  bytes.set(Array.from(data), 4 + 4 * dims.length);
  return bytes;
}

const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
const FASHION_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

describe('parseIdx', () => {
  it('reads the dimensions (big-endian) and the data as a view', () => {
    const data = Array.from({ length: 2 * 3 * 4 }, (_, i) => i * 10);
    const bytes = idxBytes([2, 3, 4], data);
    const parsed = parseIdx(bytes);
    assert.deepEqual(parsed.dims, [2, 3, 4]);
    assert.deepEqual(Array.from(parsed.data), data);
    assert.equal(parsed.data.buffer, bytes.buffer, 'no copy');
    const big = parseIdx(idxBytes([300], new Uint8Array(300)));
    assert.deepEqual(big.dims, [300], 'dimensions above 255 need all four bytes');
  });

  it('reads a file that sits at an offset in a larger buffer', () => {
    const inner = idxBytes([3], [7, 8, 9]);
    const outer = new Uint8Array(inner.length + 5);
    outer.set(inner, 5);
    assert.deepEqual(Array.from(parseIdx(outer.subarray(5)).data), [7, 8, 9]);
  });

  it('detects gzip and says to decompress', () => {
    assert.equal(isGzip(Uint8Array.from([0x1f, 0x8b, 8, 0])), true);
    assert.equal(isGzip(idxBytes([1], [0])), false);
    assert.equal(isGzip(Uint8Array.from([0x1f])), false);
    assert.throws(() => parseIdx(Uint8Array.from([0x1f, 0x8b, 8, 0, 0]), 'train-images-idx3-ubyte.gz'), {
      message: 'train-images-idx3-ubyte.gz is gzip-compressed; decompress it first',
    });
  });

  it('explains a short file, bad magic and other element types', () => {
    assert.throws(() => parseIdx(Uint8Array.from([0, 0, 8])), {
      message: 'the IDX file is 3 bytes long, too short for an IDX header (at least 4)',
    });
    assert.throws(
      () => parseIdx(Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 1]), 'photo.png'),
      /photo.png is not an IDX file: it must start with two zero bytes/,
    );
    assert.throws(() => parseIdx(idxBytes([1], [0, 0, 0, 0], 0x0d), 'x'), {
      message: 'x holds 32-bit floats (IDX type 0x0D); only unsigned-byte IDX files (type 0x08, as MNIST and Fashion-MNIST) can be read',
    });
    assert.throws(() => parseIdx(idxBytes([1], [0], 0x09)), /signed bytes \(IDX type 0x09\)/);
    assert.throws(() => parseIdx(idxBytes([1], [0, 0], 0x0b)), /16-bit integers/);
    assert.throws(() => parseIdx(idxBytes([1], [0, 0, 0, 0], 0x0c)), /32-bit integers/);
    assert.throws(() => parseIdx(idxBytes([1], new Uint8Array(8), 0x0e)), /64-bit floats/);
    assert.throws(() => parseIdx(idxBytes([1], [0], 0x42)), {
      message: 'the IDX file is not an IDX file: 0x42 is not an IDX element type',
    });
  });

  it('explains zero dimensions, a truncated header, truncated data and trailing bytes', () => {
    assert.throws(() => parseIdx(Uint8Array.from([0, 0, 8, 0])), /declares 0 dimensions/);
    assert.throws(() => parseIdx(idxBytes([2, 2], [1, 2, 3, 4]).subarray(0, 10), 'f'), {
      message: 'f is truncated: its header declares 2 dimensions (12 bytes) but the file has 10 bytes',
    });
    assert.throws(() => parseIdx(idxBytes([2, 2], [1, 2, 3]), 'f'), {
      message: 'f is truncated: dimensions 2x2 need 4 bytes of data, the file has 3',
    });
    assert.throws(() => parseIdx(idxBytes([2, 2], [1, 2, 3, 4, 5, 6]), 'f'), /f has 2 bytes after its data \(dimensions 2x2 need 4\)/);
  });
});

const INPUT: ImageInput = { kind: 'image', shape: [2, 2, 1] };

describe('idxDataset', () => {
  const images: IdxArray = { dims: [3, 2, 2], data: Uint8Array.from([0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23]) };
  const labels: IdxArray = { dims: [3], data: Uint8Array.from([9, 0, 4]) };

  it('copies images that already have the task’s shape', () => {
    const data = idxDataset(images, labels, INPUT, DIGITS);
    assert.equal(data.count, 3);
    assert.equal(data.features, 4);
    assert.equal(data.numClasses, 10);
    assert.deepEqual(Array.from(data.values), Array.from(images.data));
    assert.deepEqual(Array.from(data.labels), [9, 0, 4]);
    assert.notEqual(data.values.buffer, images.data.buffer, 'a copy, not a view into the file');
  });

  it('resizes and converts channels to the task’s shape', () => {
    const small = idxDataset(images, labels, { kind: 'image', shape: [1, 1, 1] }, DIGITS);
    assert.deepEqual(Array.from(small.values), [2, 12, 22]); // means of each 2x2 image (1.5 rounds to 2)
    const rgb = idxDataset(images, labels, { kind: 'image', shape: [1, 1, 3] }, DIGITS);
    assert.deepEqual(Array.from(rgb.values), [2, 2, 2, 12, 12, 12, 22, 22, 22]);
    const colour: IdxArray = { dims: [1, 1, 2, 3], data: Uint8Array.from([255, 0, 0, 0, 0, 255]) };
    const gray = idxDataset(colour, { dims: [1], data: Uint8Array.from([1]) }, { kind: 'image', shape: [1, 2, 1] }, DIGITS);
    assert.deepEqual(Array.from(gray.values), [76, 29]);
  });

  it('explains labels outside the task’s classes and mismatched files', () => {
    assert.throws(() => idxDataset(images, { dims: [3], data: Uint8Array.from([1, 10, 2]) }, INPUT, DIGITS), {
      message: 'label 10 of image 2 is not a class of the task, which has 10 (0 to 9: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)',
    });
    assert.throws(
      () => idxDataset(images, { dims: [2], data: Uint8Array.from([1, 2]) }, INPUT, DIGITS),
      /3 images but the labels file 2 labels/,
    );
    assert.throws(() => idxDataset(labels, images, INPUT, DIGITS), /the images file has dimensions 3; expected count x height x width/);
    assert.throws(() => idxDataset(images, images, INPUT, DIGITS), /the labels file has dimensions 3x2x2; expected one label per image/);
    assert.throws(
      () => idxDataset({ dims: [1, 1, 1, 2], data: new Uint8Array(2) }, { dims: [1], data: new Uint8Array(1) }, INPUT, DIGITS),
      /2 channels; 1 \(gray\), 3 \(RGB\) or 4 \(RGBA\)/,
    );
    assert.throws(
      () => idxDataset({ dims: [0, 28, 28], data: new Uint8Array(0) }, { dims: [0], data: new Uint8Array(0) }, INPUT, DIGITS),
      /holds no images/,
    );
    assert.throws(
      () => idxDataset({ dims: [1, 0, 28], data: new Uint8Array(0) }, { dims: [1], data: new Uint8Array(1) }, INPUT, DIGITS),
      /at least one pixel/,
    );
    assert.throws(
      () => idxDataset({ dims: [3, 2, 2], data: new Uint8Array(11) }, labels, INPUT, DIGITS),
      /the images hold 11 bytes, their dimensions 3x2x2 need 12/,
    );
    assert.throws(() => idxDataset(images, { dims: [3], data: new Uint8Array(2) }, INPUT, DIGITS), /the labels hold 2 bytes/);
    assert.throws(() => idxDataset(images, labels, INPUT, []), /1 to 256 classes/);
  });
});

// Debian's dataset-fashion-mnist package ships the real files, gzip-compressed as downloaded.
const FASHION_DIR = '/usr/share/datasets/fashion-mnist';
const haveFashion = existsSync(`${FASHION_DIR}/t10k-images-idx3-ubyte.gz`) && existsSync(`${FASHION_DIR}/t10k-labels-idx1-ubyte.gz`);

/** Inflates with DecompressionStream, as the participant page does. */
async function gunzip(bytes: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

describe('real IDX files', () => {
  it('reads the Fashion-MNIST test set', {
    skip: haveFashion ? false : `no Fashion-MNIST files in ${FASHION_DIR} (apt-get install dataset-fashion-mnist to run this test)`,
  }, async () => {
    const imagesGz = new Uint8Array(readFileSync(`${FASHION_DIR}/t10k-images-idx3-ubyte.gz`));
    const labelsGz = new Uint8Array(readFileSync(`${FASHION_DIR}/t10k-labels-idx1-ubyte.gz`));
    assert.ok(isGzip(imagesGz) && isGzip(labelsGz));
    assert.throws(() => parseIdx(imagesGz, 't10k-images-idx3-ubyte.gz'), /gzip-compressed/);
    const images = parseIdx(await gunzip(imagesGz), 't10k-images-idx3-ubyte');
    const labels = parseIdx(await gunzip(labelsGz), 't10k-labels-idx1-ubyte');
    assert.deepEqual(images.dims, [10_000, 28, 28]);
    assert.deepEqual(labels.dims, [10_000]);
    const data = idxDataset(images, labels, { kind: 'image', shape: [28, 28, 1] }, FASHION_CLASSES);
    assert.equal(data.count, 10_000);
    assert.equal(data.features, 784);
    // The test set holds 1000 images of each class.
    const perClass = new Array<number>(10).fill(0);
    for (const label of data.labels) perClass[label]!++;
    assert.deepEqual(perClass, new Array(10).fill(1000));
    // Real pictures: dark background corners, bright pixels somewhere, and more than a few distinct values.
    const first = data.values.subarray(0, 784);
    assert.equal(first[0], 0);
    assert.ok(Math.max(...first) > 200);
    assert.ok(new Set(first).size > 50);
    // Halving keeps the mean brightness (area averaging), up to rounding.
    const half = idxDataset(images, labels, { kind: 'image', shape: [14, 14, 1] }, FASHION_CLASSES);
    const mean = (values: Uint8Array | Float32Array): number => {
      let sum = 0;
      for (const v of values) sum += v;
      return sum / values.length;
    };
    assert.ok(Math.abs(mean(half.values.subarray(0, 196 * 100)) - mean(data.values.subarray(0, 784 * 100))) < 0.5);
    // Too few classes for the labels.
    assert.throws(
      () => idxDataset(images, labels, { kind: 'image', shape: [28, 28, 1] }, FASHION_CLASSES.slice(0, 9)),
      /label 9 of image \d+ is not a class of the task, which has 9/,
    );
  });
});
