import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { loadTask, TaskLoadError } from '../../coordinator/task/load-task.ts';
import { parseTaskFile } from '../../coordinator/task/task-file.ts';
import { initNodeBackend } from '../../coordinator/tf-node.ts';
import { decodeDataset } from '../../core/data/dataset.ts';
import type { ImageInput } from '../../core/data/schema.ts';
import { buildModel } from '../../core/model/architectures.ts';
import { encodeIdx } from '../../node/data/idx-split.ts';
import { imageSourceAt, readImageSource } from '../../node/data/image-sources.ts';

/** A width x height image of one RGB colour, as PNG bytes. */
function png(width: number, height: number, rgb: readonly [number, number, number]): Buffer {
  const image = new PNG({ width, height });
  for (let p = 0; p < width * height; p++) image.data.set([...rgb, 255], 4 * p);
  return PNG.sync.write(image);
}

function jpg(width: number, height: number, rgb: readonly [number, number, number]): Buffer {
  const data = Buffer.alloc(width * height * 4);
  for (let p = 0; p < width * height; p++) data.set([...rgb, 255], 4 * p);
  return jpeg.encode({ data, width, height }, 95).data;
}

const COLOUR: ImageInput = { kind: 'image', shape: [4, 4, 3] };

describe('image data sets on disk (class folders, IDX pairs, pixel CSVs)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'fl-images-'));
    await initNodeBackend();
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('a class folder of PNG and JPEG images of any size becomes the task shape; other files are skipped and noted', async () => {
    const root = path.join(dir, 'shapes');
    await mkdir(path.join(root, 'red'), { recursive: true });
    await mkdir(path.join(root, 'blue'), { recursive: true });
    await writeFile(path.join(root, 'red', 'a.png'), png(8, 6, [255, 0, 0]));
    await writeFile(path.join(root, 'red', 'b.jpg'), jpg(16, 16, [250, 0, 0]));
    await writeFile(path.join(root, 'blue', 'c.png'), png(3, 5, [0, 0, 255]));
    await writeFile(path.join(root, 'blue', 'notes.txt'), 'not an image');
    const { dataset, notes } = await readImageSource({ kind: 'folder', path: root }, COLOUR, ['red', 'blue']);
    assert.equal(dataset.count, 3);
    assert.equal(dataset.features, 4 * 4 * 3);
    // Folders in name order: blue (c.png) first, then red (a.png, b.jpg).
    assert.deepEqual([...dataset.labels], [1, 0, 0]);
    assert.deepEqual([...dataset.values.subarray(0, 3)], [0, 0, 255]);
    assert.deepEqual([...dataset.values.subarray(48, 51)], [255, 0, 0]);
    const jpegRed = dataset.values[96]!;
    assert.ok(jpegRed > 230 && dataset.values[97]! < 20, `JPEG pixel ${[...dataset.values.subarray(96, 99)]}`);
    assert.equal(notes.length, 1);
    assert.match(notes[0]!, /1 files skipped: .*blue\/notes\.txt \(not a PNG or JPEG image\)/);
    // Grayscale tasks take the luma of the same files.
    const gray = await readImageSource({ kind: 'folder', path: root }, { kind: 'image', shape: [2, 2, 1] }, ['red', 'blue']);
    assert.equal(gray.dataset.values[0], Math.round(0.114 * 255));
  });

  it('errors name the folder or the image: a folder that is no class, a broken PNG, no images at all', async () => {
    const root = path.join(dir, 'bad');
    await mkdir(path.join(root, 'Red'), { recursive: true });
    await writeFile(path.join(root, 'Red', 'a.png'), png(2, 2, [255, 0, 0]));
    await assert.rejects(
      readImageSource({ kind: 'folder', path: root }, COLOUR, ['red', 'blue']),
      /bad\/Red: the folder 'Red' is not among the task's classes \(red, blue\)/,
    );
    const broken = path.join(dir, 'broken');
    await mkdir(path.join(broken, 'red'), { recursive: true });
    await writeFile(path.join(broken, 'red', 'cut.png'), png(4, 4, [1, 2, 3]).subarray(0, 40));
    await assert.rejects(
      readImageSource({ kind: 'folder', path: broken }, COLOUR, ['red', 'blue']),
      /broken\/red\/cut\.png: cannot decode this PNG image/,
    );
    const empty = path.join(dir, 'empty');
    await mkdir(path.join(empty, 'red'), { recursive: true });
    await assert.rejects(readImageSource({ kind: 'folder', path: empty }, COLOUR, ['red', 'blue']), /empty: no PNG or JPEG images found/);
  });

  it('IDX pairs, gzipped or not, and their errors name the file', async () => {
    const pixels = Uint8Array.from({ length: 2 * 4 * 4 }, (_, i) => i);
    await writeFile(path.join(dir, 'x-images-idx3-ubyte.gz'), gzipSync(encodeIdx([2, 4, 4], pixels)));
    await writeFile(path.join(dir, 'x-labels-idx1-ubyte'), encodeIdx([2], Uint8Array.from([1, 0])));
    const source = await imageSourceAt(path.join(dir, 'x-images-idx3-ubyte.gz'));
    assert.deepEqual(source, {
      kind: 'idx',
      images: path.join(dir, 'x-images-idx3-ubyte.gz'),
      labels: path.join(dir, 'x-labels-idx1-ubyte'),
    });
    const { dataset } = await readImageSource(source, { kind: 'image', shape: [4, 4, 1] }, ['a', 'b']);
    assert.deepEqual([...dataset.values], [...pixels]);
    assert.deepEqual([...dataset.labels], [1, 0]);
    await writeFile(path.join(dir, 'y-labels-idx1-ubyte'), encodeIdx([2], Uint8Array.from([1, 5])));
    await assert.rejects(
      readImageSource(
        { kind: 'idx', images: path.join(dir, 'x-images-idx3-ubyte.gz'), labels: path.join(dir, 'y-labels-idx1-ubyte') },
        { kind: 'image', shape: [4, 4, 1] },
        ['a', 'b'],
      ),
      /y-labels-idx1-ubyte: label 5 of image 2 is not a class of the task/,
    );
    await writeFile(path.join(dir, 'z-images-idx3-ubyte'), encodeIdx([2, 4, 4], pixels).subarray(0, 30));
    await assert.rejects(
      readImageSource(
        { kind: 'idx', images: path.join(dir, 'z-images-idx3-ubyte'), labels: path.join(dir, 'x-labels-idx1-ubyte') },
        { kind: 'image', shape: [4, 4, 1] },
        ['a', 'b'],
      ),
      /z-images-idx3-ubyte is truncated/,
    );
  });

  it('a pixel CSV names the line and column of a bad value', async () => {
    const file = path.join(dir, 'pixels.csv');
    await writeFile(file, 'label,pixel0,pixel1,pixel2,pixel3\na,0,10,20,30\nb,1,2,300,4\n');
    await assert.rejects(
      readImageSource({ kind: 'pixel-csv', path: file }, { kind: 'image', shape: [2, 2, 1] }, ['a', 'b']),
      /pixels\.csv: .*Line 3, column pixel2: "300" is not a pixel value/s,
    );
    await writeFile(file, 'label,pixel0,pixel1,pixel2,pixel3\na,0,10,20,30\nb,1,2,3,4\n');
    const { dataset } = await readImageSource({ kind: 'pixel-csv', path: file }, { kind: 'image', shape: [2, 2, 1] }, ['a', 'b']);
    assert.deepEqual([...dataset.values], [0, 10, 20, 30, 1, 2, 3, 4]);
  });

  it('a colour task file loads its folders, serves the train set as demo data and builds a cnn for its shape', async () => {
    const root = path.join(dir, 'task');
    for (const [split, n] of [
      ['train', 3],
      ['test', 2],
    ] as const) {
      for (const [name, rgb] of [
        ['red', [255, 0, 0]],
        ['blue', [0, 0, 255]],
      ] as const) {
        await mkdir(path.join(root, split, name), { recursive: true });
        for (let i = 0; i < n; i++) await writeFile(path.join(root, split, name, `${i}.png`), png(10 + i, 12, rgb));
      }
    }
    const text = JSON.stringify({
      name: 'colours',
      model: 'cnn',
      input: { kind: 'image', shape: [12, 8, 3] },
      classes: ['red', 'blue'],
      data: { train: './train', test: './test' },
    });
    const task = parseTaskFile(text, path.join(root, 'task.json'));
    const loaded = await loadTask({ task, architecture: 'cnn', seed: 1 });
    assert.equal(loaded.test.count, 4);
    assert.deepEqual(loaded.spec.imageShape, [12, 8, 3]);
    const served = decodeDataset(loaded.demoData!.bytes);
    assert.equal(served.count, 6);
    assert.equal(served.features, 12 * 8 * 3);
    const model = buildModel(loaded.spec);
    const out = tf.tidy(() => model.predict(tf.zeros([1, 12 * 8 * 3])) as tf.Tensor);
    assert.deepEqual(out.shape, [1, 2]);
    out.dispose();
    model.dispose();
    // 3x2x64 after two pools, then dense 512 and 2 logits.
    assert.equal(loaded.weightShapes.find((w) => w.shape.length === 2 && w.shape[1] === 512)!.shape[0], 3 * 2 * 64);

    const missing = parseTaskFile(JSON.stringify({ ...JSON.parse(text), data: { test: './nowhere' } }), path.join(root, 'task.json'));
    await assert.rejects(
      loadTask({ task: missing, architecture: 'cnn', seed: 1 }),
      (error: unknown) => error instanceof TaskLoadError && /data\.test: cannot read the image folder .*nowhere/.test(error.message),
    );
  });
});
