import { idxDataset, isGzip, parseIdx, type IdxArray } from '../../../core/data/idx.ts';
import type { Dataset } from '../../../core/data/dataset.ts';
import type { ImageInput } from '../../../core/data/schema.ts';
import { errorMessage } from '../dom.ts';
import { concatDatasets } from './concat.ts';

/** MNIST-style IDX files (`*-images-idx3-ubyte[.gz]` + `*-labels-idx1-ubyte[.gz]`), read and paired in the page. */

async function gunzip(bytes: Uint8Array<ArrayBuffer>, name: string): Promise<Uint8Array> {
  if (typeof DecompressionStream === 'undefined')
    throw new Error(`${name} is gzipped and this browser cannot decompress it (no DecompressionStream); decompress it first`);
  try {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (error) {
    throw new Error(`${name} looks gzipped but cannot be decompressed (${errorMessage(error)}); is the download complete?`);
  }
}

async function readIdx(file: File): Promise<IdxArray> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  return parseIdx(isGzip(bytes) ? await gunzip(bytes, file.name) : bytes, file.name);
}

/** "train-images-idx3-ubyte.gz" -> "train": the name an images file and its labels file share. */
function pairKey(name: string): string {
  return name
    .toLowerCase()
    .replace(/\.gz$/, '')
    .replace(/[-_.]?(images|labels)[-_.]?idx\d-ubyte$/, '')
    .replace(/[-_.]?idx\d-ubyte$/, '');
}

export interface IdxFiles {
  readonly dataset: Dataset;
  /** What was read, e.g. "train-images-idx3-ubyte.gz + train-labels-idx1-ubyte.gz". */
  readonly description: string;
}

/**
 * Reads the chosen IDX files: one images file (3 or 4 dimensions) and one
 * labels file (1 dimension) per pair, paired by their common name prefix
 * when there are several pairs (train and t10k), and concatenated.
 */
export async function readIdxFiles(files: readonly File[], input: ImageInput, classes: readonly string[]): Promise<IdxFiles> {
  if (files.length === 0) throw new Error('choose an images file and a labels file');
  const images: { file: File; array: IdxArray }[] = [];
  const labels: { file: File; array: IdxArray }[] = [];
  for (const file of files) {
    const array = await readIdx(file);
    if (array.dims.length === 1) labels.push({ file, array });
    else if (array.dims.length === 3 || array.dims.length === 4) images.push({ file, array });
    else throw new Error(`${file.name} has dimensions ${array.dims.join('x')}: neither images (count x height x width) nor labels (count)`);
  }
  if (images.length === 0) throw new Error(`no images file among ${files.map((f) => f.name).join(', ')}: add the *-images-idx3-ubyte file`);
  if (labels.length === 0) throw new Error(`no labels file among ${files.map((f) => f.name).join(', ')}: add the *-labels-idx1-ubyte file`);
  if (images.length !== labels.length)
    throw new Error(`${images.length} images file(s) but ${labels.length} labels file(s); choose them in pairs`);
  const pairs: { image: (typeof images)[number]; label: (typeof labels)[number] }[] = [];
  if (images.length === 1) {
    pairs.push({ image: images[0]!, label: labels[0]! });
  } else {
    for (const image of images) {
      const key = pairKey(image.file.name);
      const label = labels.find((l) => pairKey(l.file.name) === key);
      if (!label) throw new Error(`no labels file matches ${image.file.name} (expected a name like ${key}-labels-idx1-ubyte)`);
      pairs.push({ image, label });
    }
  }
  const datasets = pairs.map(({ image, label }) => {
    try {
      return idxDataset(image.array, label.array, input, classes);
    } catch (error) {
      throw new Error(`${image.file.name} + ${label.file.name}: ${errorMessage(error)}`);
    }
  });
  return { dataset: concatDatasets(datasets), description: pairs.map((p) => `${p.image.file.name} + ${p.label.file.name}`).join(', ') };
}
