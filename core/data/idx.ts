import { checkClassCount, type Dataset } from './dataset.ts';
import { convertImage } from './images.ts';
import type { ImageInput } from './schema.ts';

/**
 * The IDX format of MNIST and Fashion-MNIST (yann.lecun.com/exdb/mnist):
 *   0 2  zero
 *   2 1  element type (0x08 unsigned byte, 0x09 signed byte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64)
 *   3 1  number of dimensions
 *   4 4n sizes, big-endian uint32
 *   then the elements, row-major.
 * Only unsigned bytes are read: pixels and labels of those data sets.
 * Files usually come gzip-compressed; the page inflates them (isGzip tells it to).
 */

export interface IdxArray {
  readonly dims: readonly number[];
  readonly data: Uint8Array;
}

const UNSIGNED_BYTE = 0x08;
const TYPE_NAMES: ReadonlyMap<number, string> = new Map([
  [0x08, 'unsigned byte'],
  [0x09, 'signed byte'],
  [0x0b, '16-bit integer'],
  [0x0c, '32-bit integer'],
  [0x0d, '32-bit float'],
  [0x0e, '64-bit float'],
]);

/** Whether the bytes start with the gzip magic (1f 8b), as .gz downloads of IDX files do. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Parses an unsigned-byte IDX file; the data is a view into `bytes`. `name` (e.g. the file name) prefixes errors. */
export function parseIdx(bytes: Uint8Array, name = 'the IDX file'): IdxArray {
  if (isGzip(bytes)) throw new Error(`${name} is gzip-compressed; decompress it first`);
  if (bytes.length < 4) throw new Error(`${name} is ${bytes.length} bytes long, too short for an IDX header (at least 4)`);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new Error(`${name} is not an IDX file: it must start with two zero bytes (like MNIST's train-images-idx3-ubyte)`);
  }
  const type = bytes[2]!;
  if (type !== UNSIGNED_BYTE) {
    const typeName = TYPE_NAMES.get(type);
    throw new Error(
      typeName === undefined
        ? `${name} is not an IDX file: 0x${hex(type)} is not an IDX element type`
        : `${name} holds ${typeName}s (IDX type 0x${hex(type)}); only unsigned-byte IDX files (type 0x08, as MNIST and Fashion-MNIST) can be read`,
    );
  }
  const rank = bytes[3]!;
  if (rank === 0) throw new Error(`${name} declares 0 dimensions; an IDX file needs at least one`);
  const headerBytes = 4 + 4 * rank;
  if (bytes.length < headerBytes)
    throw new Error(
      `${name} is truncated: its header declares ${rank} dimensions (${headerBytes} bytes) but the file has ${bytes.length} bytes`,
    );
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let d = 0; d < rank; d++) dims.push(view.getUint32(4 + 4 * d, false));
  const size = dims.reduce((a, b) => a * b, 1);
  const available = bytes.length - headerBytes;
  if (available < size) {
    throw new Error(`${name} is truncated: dimensions ${dims.join('x')} need ${size} bytes of data, the file has ${available}`);
  }
  if (available > size) {
    throw new Error(
      `${name} has ${available - size} bytes after its data (dimensions ${dims.join('x')} need ${size}); the file may be corrupt or not an IDX file`,
    );
  }
  return { dims, data: bytes.subarray(headerBytes) };
}

function hex(value: number): string {
  return value.toString(16).padStart(2, '0').toUpperCase();
}

/**
 * images: dims [n, h, w] (or [n, h, w, c] with c = 1, 3 or 4); labels: dims [n].
 * Images are resized and converted to the task's shape when they differ
 * (see convertImage); labels must be below classes.length. Byte values.
 */
export function idxDataset(images: IdxArray, labels: IdxArray, input: ImageInput, classes: readonly string[]): Dataset {
  if (images.dims.length !== 3 && images.dims.length !== 4) {
    throw new Error(
      `the images file has dimensions ${images.dims.join('x')}; expected count x height x width (or x channels): is it the labels file?`,
    );
  }
  if (labels.dims.length !== 1) {
    throw new Error(`the labels file has dimensions ${labels.dims.join('x')}; expected one label per image: is it the images file?`);
  }
  const [count, height, width] = images.dims as [number, number, number];
  const channels = images.dims[3] ?? 1;
  if (channels !== 1 && channels !== 3 && channels !== 4)
    throw new Error(`the images have ${channels} channels; 1 (gray), 3 (RGB) or 4 (RGBA) can be read`);
  if (labels.dims[0] !== count)
    throw new Error(`the images file holds ${count} images but the labels file ${labels.dims[0]} labels; they must come in pairs`);
  if (count === 0) throw new Error('the images file holds no images');
  if (height === 0 || width === 0) throw new Error(`the images are ${height}x${width} pixels; they need at least one pixel`);
  checkClassCount(classes);
  if (labels.data.length !== count) throw new Error(`the labels hold ${labels.data.length} bytes, their dimension needs ${count}`);
  for (let i = 0; i < count; i++) {
    if (labels.data[i]! >= classes.length) {
      throw new Error(
        `label ${labels.data[i]} of image ${i + 1} is not a class of the task, which has ${classes.length} (0 to ${classes.length - 1}: ${classes.join(', ')})`,
      );
    }
  }
  const sourceSize = height * width * channels;
  if (images.data.length !== count * sourceSize)
    throw new Error(`the images hold ${images.data.length} bytes, their dimensions ${images.dims.join('x')} need ${count * sourceSize}`);
  const [outHeight, outWidth, outChannels] = input.shape;
  const features = outHeight * outWidth * outChannels;
  let values: Uint8Array;
  if (height === outHeight && width === outWidth && channels === outChannels) {
    values = images.data.slice();
  } else {
    values = new Uint8Array(count * features);
    for (let i = 0; i < count; i++) {
      const image = images.data.subarray(i * sourceSize, (i + 1) * sourceSize);
      values.set(convertImage(image, width, height, channels, input.shape), i * features);
    }
  }
  return { count, features, numClasses: classes.length, values, labels: labels.data.slice() };
}
