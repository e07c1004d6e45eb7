import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { CsvError, parseCsv } from '../../core/data/csv.ts';
import type { Dataset } from '../../core/data/dataset.ts';
import { idxDataset, isGzip, parseIdx } from '../../core/data/idx.ts';
import { imageFolderDataset, resizeToInput, type LabelledImage } from '../../core/data/images.ts';
import { preparePixelTable, suggestPixelRoles } from '../../core/data/pixel-table.ts';
import type { ImageInput } from '../../core/data/schema.ts';
import { skippedRowsNotes, TabularSchemaError } from '../../core/data/tabular.ts';

/**
 * Image data sets read from disk in Node (the coordinator's task data, the
 * participant CLI's own data): a folder of one subfolder per class, an IDX
 * pair (gzipped or not), or a CSV of pixels. They are prepared with the same
 * core code as the participant page (resize by area, luma, class checks), so
 * a file gives the same examples in a tab and here. PNG and JPEG are decoded
 * with pngjs and jpeg-js (pure JavaScript).
 */

export type ImageSource =
  | { readonly kind: 'folder'; readonly path: string }
  | { readonly kind: 'idx'; readonly images: string; readonly labels: string }
  | { readonly kind: 'pixel-csv'; readonly path: string };

export class ImageDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImageDataError';
  }
}

export interface ReadImages {
  readonly dataset: Dataset;
  /** Worth a log line: files skipped and why. */
  readonly notes: readonly string[];
}

/** Decoding a 12-megapixel JPEG takes ~50 MB; refuse anything much larger than a photo. */
const MAX_DECODE_MB = 512;

/** Reads and prepares an image source for the task's input and classes; errors name the file (and line or image). */
export async function readImageSource(source: ImageSource, input: ImageInput, classes: readonly string[]): Promise<ReadImages> {
  switch (source.kind) {
    case 'folder':
      return readImageFolder(source.path, input, classes);
    case 'idx':
      return { dataset: await readIdxPair(source.images, source.labels, input, classes), notes: [] };
    case 'pixel-csv':
      return readPixelCsv(source.path, input, classes);
    default: {
      const unknown: never = source;
      throw new Error(`unknown image source ${JSON.stringify(unknown)}`);
    }
  }
}

/**
 * What a path given on a command line holds: a .csv file is a pixel CSV; an
 * IDX images file (…-images-idx3-ubyte[.gz]) is paired with its labels file
 * beside it; a folder holding an IDX pair is that pair; any other folder is
 * one subfolder per class.
 */
export async function imageSourceAt(file: string): Promise<ImageSource> {
  const info = await statOrFail(file, 'the data');
  if (info.isDirectory()) {
    const entries = await readdir(file);
    const images = entries.filter((name) => /images-idx3-ubyte(\.gz)?$/.test(name)).sort();
    if (images.length > 0) {
      if (images.length > 1)
        throw new ImageDataError(`${file} holds several IDX image files (${images.join(', ')}); give one of them as the data`);
      return idxPairOf(path.join(file, images[0]!));
    }
    return { kind: 'folder', path: file };
  }
  if (/\.csv$/i.test(file)) return { kind: 'pixel-csv', path: file };
  if (/images-idx3-ubyte(\.gz)?$/.test(file)) return idxPairOf(file);
  throw new ImageDataError(
    `${file}: an image task reads a folder with one subfolder per class, a CSV of pixels (.csv) or an IDX images file (…-images-idx3-ubyte[.gz])`,
  );
}

async function idxPairOf(images: string): Promise<ImageSource> {
  const base = path.basename(images);
  const candidates = [
    base.replace('images-idx3-ubyte', 'labels-idx1-ubyte'),
    base.replace(/images-idx3-ubyte(\.gz)?$/, 'labels-idx1-ubyte'),
    base.replace(/images-idx3-ubyte(\.gz)?$/, 'labels-idx1-ubyte.gz'),
  ];
  for (const name of candidates) {
    const labels = path.join(path.dirname(images), name);
    if (
      await stat(labels).then(
        (s) => s.isFile(),
        () => false,
      )
    )
      return { kind: 'idx', images, labels };
  }
  throw new ImageDataError(`${images}: its labels file ${candidates[0]} is not beside it`);
}

export async function readIdxPair(imagesFile: string, labelsFile: string, input: ImageInput, classes: readonly string[]): Promise<Dataset> {
  const images = parseIdx(await readIdxBytes(imagesFile), imagesFile);
  const labels = parseIdx(await readIdxBytes(labelsFile), labelsFile);
  try {
    return idxDataset(images, labels, input, classes);
  } catch (error) {
    throw new ImageDataError(`${imagesFile} + ${labelsFile}: ${(error as Error).message}`);
  }
}

async function readIdxBytes(file: string): Promise<Uint8Array> {
  const bytes = await readBytes(file);
  if (!isGzip(bytes)) return bytes;
  try {
    return new Uint8Array(gunzipSync(bytes));
  } catch (error) {
    throw new ImageDataError(`${file}: starts like gzip but does not decompress: ${(error as Error).message}`);
  }
}

async function readPixelCsv(file: string, input: ImageInput, classes: readonly string[]): Promise<ReadImages> {
  const bytes = await readBytes(file);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new ImageDataError(`${file}: is not UTF-8 text`);
  }
  try {
    const table = parseCsv(text);
    const prepared = preparePixelTable(table, suggestPixelRoles(table), input, classes);
    const notes = skippedRowsNotes(file, prepared.skipped);
    if (prepared.dataset.count === 0) throw new ImageDataError(`${file}: no usable rows`);
    return { dataset: prepared.dataset, notes };
  } catch (error) {
    if (error instanceof CsvError || error instanceof TabularSchemaError) throw new ImageDataError(`${file}: ${error.message}`);
    throw error;
  }
}

/** The class folders are read in name order and their files in name order, so a folder always gives the same dataset. */
async function readImageFolder(folder: string, input: ImageInput, classes: readonly string[]): Promise<ReadImages> {
  const info = await statOrFail(folder, 'the image folder');
  if (!info.isDirectory()) throw new ImageDataError(`${folder}: is not a folder (an image folder holds one subfolder per class)`);
  const notes: string[] = [];
  const skipped: string[] = [];
  const images: LabelledImage[] = [];
  const entries = (await readdir(folder, { withFileTypes: true })).sort((a, b) => compare(a.name, b.name));
  const known = new Set(classes);
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    const where = path.join(folder, entry.name);
    if (!entry.isDirectory()) {
      skipped.push(`${where} (not in a class folder)`);
      continue;
    }
    if (!known.has(entry.name)) {
      throw new ImageDataError(
        `${where}: the folder '${entry.name}' is not among the task's classes (${classes.join(', ')}); name each subfolder exactly after its class`,
      );
    }
    const files = (await readdir(where, { withFileTypes: true })).sort((a, b) => compare(a.name, b.name));
    for (const file of files) {
      const filePath = path.join(where, file.name);
      if (file.name.startsWith('.') || !file.isFile()) continue;
      const bytes = await readBytes(filePath);
      const decoded = decodeImage(bytes, filePath);
      if (decoded === undefined) {
        skipped.push(`${filePath} (not a PNG or JPEG image)`);
        continue;
      }
      images.push({ className: entry.name, pixels: resizeToInput(decoded.rgba, decoded.width, decoded.height, input.shape) });
    }
  }
  if (images.length === 0)
    throw new ImageDataError(
      `${folder}: no PNG or JPEG images found; it needs one subfolder per class (${classes.slice(0, 3).join(', ')}${classes.length > 3 ? ', …' : ''}), each holding that class's images`,
    );
  if (skipped.length > 0)
    notes.push(`${folder}: ${skipped.length} files skipped: ${skipped.slice(0, 5).join(', ')}${skipped.length > 5 ? ', ...' : ''}`);
  try {
    return { dataset: imageFolderDataset(images, input, classes), notes };
  } catch (error) {
    throw new ImageDataError(`${folder}: ${(error as Error).message}`);
  }
}

interface DecodedImage {
  readonly width: number;
  readonly height: number;
  readonly rgba: Uint8Array;
}

/** PNG or JPEG by their magic bytes; undefined for anything else. A broken PNG or JPEG is an error naming the file. */
export function decodeImage(bytes: Uint8Array, file: string): DecodedImage | undefined {
  const png = bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47;
  const jpg = bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
  try {
    if (png) {
      const image = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      return {
        width: image.width,
        height: image.height,
        rgba: new Uint8Array(image.data.buffer, image.data.byteOffset, image.data.byteLength),
      };
    }
    if (jpg) {
      const image = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: MAX_DECODE_MB });
      return { width: image.width, height: image.height, rgba: image.data };
    }
  } catch (error) {
    throw new ImageDataError(`${file}: cannot decode this ${png ? 'PNG' : 'JPEG'} image: ${(error as Error).message}`);
  }
  return undefined;
}

async function readBytes(file: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(file));
  } catch (error) {
    throw new ImageDataError(`cannot read ${file}: ${(error as Error).message}`);
  }
}

async function statOrFail(file: string, what: string) {
  try {
    return await stat(file);
  } catch (error) {
    throw new ImageDataError(`cannot read ${what} ${file}: ${(error as Error).message}`);
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
