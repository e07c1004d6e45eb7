import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  areaResize,
  classFromRelativePath,
  convertImage,
  imageFolderDataset,
  resizeToInput,
  type LabelledImage,
} from '../../core/data/images.ts';
import type { ImageInput } from '../../core/data/schema.ts';

/** An opaque RGBA image whose gray value at (x, y) is `gray(x, y)`. */
function grayRgba(width: number, height: number, gray: (x: number, y: number) => number): Uint8Array {
  const rgba = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = (y * width + x) * 4;
      rgba.fill(gray(x, y), p, p + 3);
      rgba[p + 3] = 255;
    }
  }
  return rgba;
}

describe('resizeToInput', () => {
  it('averages a 2x2 checkerboard to its mean', () => {
    const board = grayRgba(2, 2, (x, y) => ((x + y) % 2 === 0 ? 0 : 255));
    assert.deepEqual(Array.from(resizeToInput(board, 2, 2, [1, 1, 1])), [128]); // 127.5 rounds up
    const uneven = grayRgba(2, 2, (x, y) => [10, 20, 30, 60][y * 2 + x]!);
    assert.deepEqual(Array.from(resizeToInput(uneven, 2, 2, [1, 1, 1])), [30]);
  });

  it('halves a 56x56 pattern to 28x28 by averaging each 2x2 block', () => {
    const pattern = (x: number, y: number): number => (x * 37 + y * 11 + ((x * y) % 7) * 9) % 256;
    const out = resizeToInput(grayRgba(56, 56, pattern), 56, 56, [28, 28, 1]);
    assert.equal(out.length, 28 * 28);
    for (let y = 0; y < 28; y++) {
      for (let x = 0; x < 28; x++) {
        const sum = pattern(2 * x, 2 * y) + pattern(2 * x + 1, 2 * y) + pattern(2 * x, 2 * y + 1) + pattern(2 * x + 1, 2 * y + 1);
        assert.equal(out[y * 28 + x], Math.round(sum / 4), `pixel (${x}, ${y})`);
      }
    }
  });

  it('is the identity when the sizes and channels match', () => {
    const rgba = new Uint8Array(5 * 3 * 4);
    for (let i = 0; i < rgba.length; i++) rgba[i] = i % 4 === 3 ? 255 : (i * 97) % 256;
    const rgb = resizeToInput(rgba, 5, 3, [3, 5, 3]);
    assert.deepEqual(
      Array.from(rgb),
      Array.from(rgba).filter((_, i) => i % 4 !== 3),
    );
    const gray = grayRgba(4, 4, (x, y) => x * 60 + y);
    assert.deepEqual(
      Array.from(resizeToInput(gray, 4, 4, [4, 4, 1])),
      Array.from({ length: 16 }, (_, i) => (i % 4) * 60 + Math.floor(i / 4)),
    );
  });

  it('upscales by covering each output pixel with the source area under it', () => {
    const two = grayRgba(2, 2, (x, y) => [0, 100, 200, 40][y * 2 + x]!);
    // Integer factor: every source pixel becomes a 2x2 block.
    assert.deepEqual(Array.from(resizeToInput(two, 2, 2, [4, 4, 1])), [0, 0, 100, 100, 0, 0, 100, 100, 200, 200, 40, 40, 200, 200, 40, 40]);
    // 2 -> 3: the middle output pixel spans [2/3, 4/3] of the source, half of each pixel.
    const row = grayRgba(2, 1, (x) => [0, 90][x]!);
    assert.deepEqual(Array.from(resizeToInput(row, 2, 1, [1, 3, 1])), [0, 45, 90]);
  });

  it('downscales by a non-integer factor with fractional weights', () => {
    // 3 -> 2: output 0 spans [0, 1.5]: (30 + 0.5 * 60) / 1.5 = 40; output 1 spans [1.5, 3]: (0.5 * 60 + 90) / 1.5 = 80.
    const row = grayRgba(3, 1, (x) => [30, 60, 90][x]!);
    assert.deepEqual(Array.from(resizeToInput(row, 3, 1, [1, 2, 1])), [40, 80]);
    const exact = areaResize([30, 60, 90], 3, 1, 1, 2, 1);
    assert.ok(Math.abs(exact[0]! - 40) < 1e-9 && Math.abs(exact[1]! - 80) < 1e-9);
  });

  it('converts colour to BT.601 luma for one channel', () => {
    const rgba = Uint8Array.from([255, 0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 255, 255, 255, 255, 255]);
    // 0.299 * 255 = 76.2, 0.587 * 255 = 149.7, 0.114 * 255 = 29.1, and white stays 255.
    assert.deepEqual(Array.from(resizeToInput(rgba, 4, 1, [1, 4, 1])), [76, 150, 29, 255]);
  });

  it('composites transparency on white, and inverts when asked (for white-on-black tasks like MNIST)', () => {
    const rgba = Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 255, 0, 0, 0, 51, 200, 100, 0, 0]);
    // Transparent -> white; opaque black stays black; black at alpha 0.2 -> 0.8 * 255 = 204; colour fully transparent -> white.
    assert.deepEqual(Array.from(resizeToInput(rgba, 4, 1, [1, 4, 1])), [255, 0, 204, 255]);
    assert.deepEqual(Array.from(resizeToInput(rgba, 4, 1, [1, 4, 1], { invert: true })), [0, 255, 51, 0]);
    assert.deepEqual(Array.from(resizeToInput(rgba, 4, 1, [1, 4, 3])), [255, 255, 255, 0, 0, 0, 204, 204, 204, 255, 255, 255]);
  });

  it('explains bad sizes and shapes', () => {
    assert.throws(() => resizeToInput(new Uint8Array(15), 2, 2, [1, 1, 1]), /an RGBA image of 2x2 pixels has 16 values, got 15/);
    assert.throws(() => resizeToInput(new Uint8Array(0), 0, 0, [1, 1, 1]), /at least 1x1 pixels/);
    assert.throws(() => resizeToInput(new Uint8Array(4), 1, 1, [1, 1, 2]), /\[height, width, 1 or 3\], got \[1, 1, 2\]/);
    assert.throws(() => resizeToInput(new Uint8Array(4), 1, 1, [0, 1, 1]), /\[height, width, 1 or 3\]/);
    assert.throws(() => convertImage(new Uint8Array(2), 1, 1, 2, [1, 1, 1]), /1, 3 or 4 channels, not 2/);
  });
});

describe('convertImage', () => {
  it('repeats gray into RGB and reads RGB without alpha', () => {
    assert.deepEqual(Array.from(convertImage([7, 9], 2, 1, 1, [1, 2, 3])), [7, 7, 7, 9, 9, 9]);
    assert.deepEqual(Array.from(convertImage([255, 0, 0], 1, 1, 3, [1, 1, 1])), [76]);
  });
});

const INPUT: ImageInput = { kind: 'image', shape: [2, 2, 1] };

function image(className: string, value: number): LabelledImage {
  return { className, pixels: new Uint8Array(4).fill(value) };
}

describe('imageFolderDataset', () => {
  it('labels each image with its class index', () => {
    const data = imageFolderDataset([image('7', 1), image('0', 2), image('7', 3)], INPUT, [
      '0',
      '1',
      '2',
      '3',
      '4',
      '5',
      '6',
      '7',
      '8',
      '9',
    ]);
    assert.equal(data.count, 3);
    assert.equal(data.features, 4);
    assert.equal(data.numClasses, 10);
    assert.deepEqual(Array.from(data.labels), [7, 0, 7]);
    assert.deepEqual(Array.from(data.values), [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]);
    assert.ok(data.values instanceof Uint8Array);
  });

  it('lists the unknown folders and the task’s classes, with case near misses', () => {
    assert.throws(() => imageFolderDataset([image('cat', 0), image('Dog', 0), image('bird', 0), image('cat', 0)], INPUT, ['cat', 'dog']), {
      message:
        "the folders 'Dog', 'bird' are not among the task's classes (cat, dog); name each subfolder after its class (rename 'Dog' -> 'dog': names must match exactly)",
    });
    assert.throws(() => imageFolderDataset([image('x', 0)], INPUT, ['a']), {
      message: "the folder 'x' is not among the task's classes (a); name each subfolder after its class",
    });
  });

  it('explains no images, wrong pixel counts and impossible class lists', () => {
    assert.throws(() => imageFolderDataset([], INPUT, ['a']), /no images found: choose a folder holding one subfolder per class/);
    assert.throws(
      () => imageFolderDataset([image('a', 0), { className: 'a', pixels: new Uint8Array(9) }], INPUT, ['a']),
      /image 2 \(class 'a'\) has 9 values, the task's 2x2x1 input needs 4: resize it first/,
    );
    assert.throws(() => imageFolderDataset([image('a', 0)], INPUT, []), /1 to 256 classes/);
  });
});

describe('classFromRelativePath', () => {
  it('is the folder the file is in', () => {
    assert.equal(classFromRelativePath('digits/7/img1.png'), '7');
    assert.equal(classFromRelativePath('data/train/cat/a.jpg'), 'cat');
    assert.equal(classFromRelativePath('data\\train\\dog\\b.jpg'), 'dog');
  });

  it('explains a file directly in the chosen folder', () => {
    assert.throws(() => classFromRelativePath('digits/img1.png'), {
      message:
        "'img1.png' is directly in 'digits', not in a class folder; put each image in a subfolder named after its class (e.g. digits/7/img1.png)",
    });
    assert.throws(() => classFromRelativePath('img1.png'), /'img1.png' is directly in the chosen folder, not in a class folder/);
    assert.throws(() => classFromRelativePath(''), /not in a class folder/);
  });
});
