import { type UniformSource, permutation, SeededRandom } from '../random/prng.ts';

/**
 * A labelled dataset of fixed-size examples, and the binary format the
 * coordinator serves demo data in. Features are either bytes (image pixels
 * 0..255, scaled to [0, 1] for training) or float32 values already prepared
 * for the model (standardised numbers, one-hot categories).
 */
export interface Dataset {
  readonly count: number;
  /** Values per example, e.g. 784 for 28x28 images. */
  readonly features: number;
  readonly numClasses: number;
  /** count * features values, example-major. */
  readonly values: Uint8Array | Float32Array;
  /** count labels in [0, numClasses). */
  readonly labels: Uint8Array;
}

/** Labels are bytes, so a dataset (and a task) has 1 to 256 classes; throws otherwise. */
export function checkClassCount(classes: readonly string[]): void {
  if (classes.length < 1 || classes.length > 256)
    throw new Error(`a task needs 1 to 256 classes (labels are bytes), it has ${classes.length}`);
}

/*
 * Dataset file layout (little-endian):
 *   0  4  magic "FLDS" (byte features) or "FLDF" (float32 features)
 *   4  4  count
 *   8  4  features per example
 *   12 4  number of classes
 *   16 count bytes of labels, zero padding to a multiple of 4 (FLDF only),
 *      then count * features features (bytes, or float32)
 */
const BYTES_MAGIC = 0x5344_4c46; // "FLDS"
const FLOATS_MAGIC = 0x4644_4c46; // "FLDF"
const DATASET_HEADER_BYTES = 16;

function featuresOffset(count: number, floats: boolean): number {
  const end = DATASET_HEADER_BYTES + count;
  return floats ? Math.ceil(end / 4) * 4 : end;
}

export function encodeDataset(data: Dataset): Uint8Array {
  const floats = data.values instanceof Float32Array;
  const offset = featuresOffset(data.count, floats);
  const out = new Uint8Array(offset + data.values.byteLength);
  const view = new DataView(out.buffer);
  view.setUint32(0, floats ? FLOATS_MAGIC : BYTES_MAGIC, true);
  view.setUint32(4, data.count, true);
  view.setUint32(8, data.features, true);
  view.setUint32(12, data.numClasses, true);
  out.set(data.labels, DATASET_HEADER_BYTES);
  if (floats) {
    const target = new DataView(out.buffer, offset);
    data.values.forEach((v, i) => {
      target.setFloat32(4 * i, v, true);
    });
  } else {
    out.set(data.values, offset);
  }
  return out;
}

export function decodeDataset(bytes: Uint8Array): Dataset {
  if (bytes.byteLength < DATASET_HEADER_BYTES) throw new Error('dataset file is shorter than its header');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, true);
  if (magic !== BYTES_MAGIC && magic !== FLOATS_MAGIC) throw new Error('not a dataset file (bad magic)');
  const floats = magic === FLOATS_MAGIC;
  const count = view.getUint32(4, true);
  const features = view.getUint32(8, true);
  const numClasses = view.getUint32(12, true);
  const offset = featuresOffset(count, floats);
  const expected = offset + count * features * (floats ? 4 : 1);
  if (bytes.byteLength !== expected) throw new Error(`dataset file is ${bytes.byteLength} bytes, expected ${expected}`);
  const labels = bytes.slice(DATASET_HEADER_BYTES, DATASET_HEADER_BYTES + count);
  for (let i = 0; i < count; i++) {
    if (labels[i]! >= numClasses) throw new Error(`label ${labels[i]} of example ${i} is not below ${numClasses}`);
  }
  if (!floats) return { count, features, numClasses, labels, values: bytes.slice(offset, expected) };
  const values = new Float32Array(count * features);
  for (let i = 0; i < values.length; i++) {
    values[i] = view.getFloat32(offset + 4 * i, true);
    if (!Number.isFinite(values[i]))
      throw new Error(`feature ${i % features} of example ${Math.floor(i / features)} is not a finite number`);
  }
  return { count, features, numClasses, labels, values };
}

/** The examples at `indices`, copied into a new dataset. */
export function subset(data: Dataset, indices: ArrayLike<number>): Dataset {
  const n = indices.length;
  const values = data.values instanceof Float32Array ? new Float32Array(n * data.features) : new Uint8Array(n * data.features);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const src = indices[i]!;
    labels[i] = data.labels[src]!;
    values.set(data.values.subarray(src * data.features, (src + 1) * data.features), i * data.features);
  }
  return { count: n, features: data.features, numClasses: data.numClasses, values, labels };
}

/** A seeded random split into two disjoint parts, the first of `firstCount` examples. */
export function splitDataset(data: Dataset, firstCount: number, seed: number): [Dataset, Dataset] {
  if (firstCount < 0 || firstCount > data.count) throw new RangeError(`cannot take ${firstCount} of ${data.count} examples`);
  const order = permutation(data.count, new SeededRandom(seed));
  return [subset(data, order.subarray(0, firstCount)), subset(data, order.subarray(firstCount))];
}

export type ShardSkew = 'iid' | 'label';

export interface ShardSpec {
  /** 0-based shard index. */
  readonly index: number;
  readonly count: number;
  readonly skew: ShardSkew;
  readonly seed?: number;
}

/**
 * Parses "K/N" (1-based K, as users write it in `?shard=2/3`) into a 0-based spec.
 */
export function parseShard(text: string, skew: ShardSkew = 'iid'): ShardSpec {
  const match = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (!match) throw new Error(`shard must look like K/N (e.g. 2/5), got "${text}"`);
  const k = Number(match[1]);
  const n = Number(match[2]);
  if (n < 1 || k < 1 || k > n) throw new Error(`shard ${text}: need 1 <= K <= N`);
  return { index: k - 1, count: n, skew };
}

/**
 * The example indices of one shard; the shards of a split are disjoint and
 * together hold every example. 'iid' deals a seeded permutation in equal
 * parts. 'label' is the pathological non-IID split of McMahan et al. 2017:
 * examples sorted by label are cut into 2N pieces and each shard gets two of
 * them, so it sees only a few labels.
 */
export function shardIndices(labels: Uint8Array, spec: ShardSpec): Uint32Array {
  const { index, count } = spec;
  if (!(count >= 1) || index < 0 || index >= count) throw new RangeError(`shard ${index} of ${count} does not exist`);
  const random: UniformSource = new SeededRandom(spec.seed ?? 42);
  const order = permutation(labels.length, random);
  if (spec.skew === 'iid') {
    const [start, end] = bounds(labels.length, count, index);
    return order.slice(start, end);
  }
  // Stable sort of a random permutation by label: within a label the order stays random.
  const byLabel = Array.from(order).sort((a, b) => labels[a]! - labels[b]!);
  const pieces = 2 * count;
  const pieceOrder = permutation(pieces, random);
  const mine: number[] = [];
  for (const piece of [pieceOrder[2 * index]!, pieceOrder[2 * index + 1]!]) {
    const [start, end] = bounds(byLabel.length, pieces, piece);
    for (let i = start; i < end; i++) mine.push(byLabel[i]!);
  }
  return Uint32Array.from(mine);
}

function bounds(total: number, parts: number, part: number): [number, number] {
  return [Math.floor((total * part) / parts), Math.floor((total * (part + 1)) / parts)];
}
