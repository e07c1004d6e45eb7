import { checkClassCount, type Dataset } from './dataset.ts';
import type { ImageInput } from './schema.ts';

/**
 * A participant's own images, turned into the task's input on the device:
 * pixels are resized by area averaging and converted to the task's channels.
 */

export type ImageShape = readonly [height: number, width: number, channels: number];

/**
 * RGBA pixels (as from canvas getImageData) of a width x height image -> the
 * task's [h, w, c] bytes, row-major, channels interleaved.
 *
 * - Transparent pixels are composited on white: that is how a viewer shows
 *   a transparent PNG on a page, so the result looks like what the person
 *   sees (a drawing with a transparent background becomes dark on white).
 * - c = 1 is luma per ITU-R BT.601 (0.299 R + 0.587 G + 0.114 B); c = 3 keeps RGB.
 * - The resize averages each output pixel's footprint in the source (exact
 *   for down- and upscaling; identity when the sizes match).
 * - MNIST-style digit tasks are trained on white digits on a black
 *   background, the opposite of ink on paper or a scan: pass `invert: true`
 *   for such images (255 - value, applied after compositing).
 */
export function resizeToInput(
  rgba: Uint8Array | Uint8ClampedArray,
  width: number,
  height: number,
  shape: ImageShape,
  options: { readonly invert?: boolean } = {},
): Uint8Array {
  checkImageSize(width, height);
  if (rgba.length !== width * height * 4) {
    throw new Error(`an RGBA image of ${width}x${height} pixels has ${width * height * 4} values, got ${rgba.length}`);
  }
  return convertImage(rgba, width, height, 4, shape, options);
}

/**
 * Pixels of `channels` interleaved channels (1 gray, 3 RGB, 4 RGBA composited
 * on white) -> the task's [h, w, c] bytes: gray -> RGB repeats the value, RGB -> gray is BT.601 luma.
 */
export function convertImage(
  pixels: ArrayLike<number>,
  width: number,
  height: number,
  channels: number,
  shape: ImageShape,
  options: { readonly invert?: boolean } = {},
): Uint8Array {
  checkImageSize(width, height);
  const [outHeight, outWidth, outChannels] = shape;
  checkShape(shape);
  if (channels !== 1 && channels !== 3 && channels !== 4) throw new Error(`images must have 1, 3 or 4 channels, not ${channels}`);
  if (pixels.length !== width * height * channels) {
    throw new Error(
      `an image of ${width}x${height} pixels with ${channels} channel${channels === 1 ? '' : 's'} has ${width * height * channels} values, got ${pixels.length}`,
    );
  }
  const invert = options.invert === true;
  // Colour conversion first, one source row at a time (a 12-megapixel photo is never held as floats):
  // compositing is per pixel, and luma and the area average are linear, so their order does not matter.
  const resized = resizeByRows(width, height, outChannels, outWidth, outHeight, (y, row) => {
    for (let x = 0; x < width; x++) {
      const p = y * width + x;
      let r: number;
      let g: number;
      let b: number;
      if (channels === 1) {
        r = g = b = pixels[p]!;
      } else {
        const alpha = channels === 4 ? pixels[4 * p + 3]! / 255 : 1;
        const background = 255 * (1 - alpha);
        r = pixels[channels * p]! * alpha + background;
        g = pixels[channels * p + 1]! * alpha + background;
        b = pixels[channels * p + 2]! * alpha + background;
      }
      if (outChannels === 1) {
        // 0.299 r + 0.587 g + 0.114 b, written so that gray pixels (r = g = b) stay exact: the weights do not sum to exactly 1 in floating point.
        const gray = r + 0.587 * (g - r) + 0.114 * (b - r);
        row[x] = invert ? 255 - gray : gray;
      } else {
        row[3 * x] = invert ? 255 - r : r;
        row[3 * x + 1] = invert ? 255 - g : g;
        row[3 * x + 2] = invert ? 255 - b : b;
      }
    }
  });
  const out = new Uint8Array(resized.length);
  for (let i = 0; i < resized.length; i++) out[i] = Math.min(255, Math.max(0, Math.round(resized[i]!)));
  return out;
}

/** For each output index along one axis, the source indices it covers and their weights (summing to 1). */
function areaWeights(source: number, target: number): { readonly index: Int32Array; readonly weight: Float64Array }[] {
  const scale = source / target;
  const result = [];
  for (let o = 0; o < target; o++) {
    const lo = o * scale;
    const hi = (o + 1) * scale;
    const indices: number[] = [];
    const weights: number[] = [];
    for (let s = Math.floor(lo); s < Math.min(source, Math.ceil(hi)); s++) {
      const overlap = Math.min(hi, s + 1) - Math.max(lo, s);
      if (overlap > 1e-12) {
        indices.push(s);
        weights.push(overlap);
      }
    }
    const total = weights.reduce((a, b) => a + b, 0);
    result.push({ index: Int32Array.from(indices), weight: Float64Array.from(weights, (w) => w / total) });
  }
  return result;
}

/** Area-average resize of interleaved pixels, separably: rows first, then columns. */
export function areaResize(
  src: ArrayLike<number>,
  width: number,
  height: number,
  channels: number,
  outWidth: number,
  outHeight: number,
): Float64Array {
  const rowLength = width * channels;
  return resizeByRows(width, height, channels, outWidth, outHeight, (y, row) => {
    for (let i = 0; i < rowLength; i++) row[i] = src[y * rowLength + i]!;
  });
}

/** Area-average resize of an image whose source rows `readRow` fills in, one at a time. */
function resizeByRows(
  width: number,
  height: number,
  channels: number,
  outWidth: number,
  outHeight: number,
  readRow: (y: number, row: Float64Array) => void,
): Float64Array {
  const across = areaWeights(width, outWidth);
  const down = areaWeights(height, outHeight);
  const source = new Float64Array(width * channels);
  const rows = new Float64Array(height * outWidth * channels);
  for (let y = 0; y < height; y++) {
    readRow(y, source);
    for (let ox = 0; ox < outWidth; ox++) {
      const { index, weight } = across[ox]!;
      for (let c = 0; c < channels; c++) {
        let sum = 0;
        for (let k = 0; k < index.length; k++) sum += weight[k]! * source[index[k]! * channels + c]!;
        rows[(y * outWidth + ox) * channels + c] = sum;
      }
    }
  }
  const out = new Float64Array(outHeight * outWidth * channels);
  for (let oy = 0; oy < outHeight; oy++) {
    const { index, weight } = down[oy]!;
    for (let i = 0; i < outWidth * channels; i++) {
      let sum = 0;
      for (let k = 0; k < index.length; k++) sum += weight[k]! * rows[index[k]! * outWidth * channels + i]!;
      out[oy * outWidth * channels + i] = sum;
    }
  }
  return out;
}

function checkImageSize(width: number, height: number): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`an image must be at least 1x1 pixels with whole-number sides, got ${width}x${height}`);
  }
}

function checkShape(shape: ImageShape): void {
  const [h, w, c] = shape;
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1 || (c !== 1 && c !== 3)) {
    throw new Error(`the task's image shape must be [height, width, 1 or 3], got [${shape.join(', ')}]`);
  }
}

export interface LabelledImage {
  readonly className: string;
  /** Already resized to the task's shape. */
  readonly pixels: Uint8Array;
}

/** A folder of one subfolder per class -> a Dataset; class names must be among `classes`. */
export function imageFolderDataset(images: readonly LabelledImage[], input: ImageInput, classes: readonly string[]): Dataset {
  checkShape(input.shape);
  checkClassCount(classes);
  if (images.length === 0)
    throw new Error("no images found: choose a folder holding one subfolder per class, each with that class's images");
  const classIndex = new Map(classes.map((c, i) => [c, i]));
  const unknown = [...new Set(images.map((image) => image.className).filter((name) => !classIndex.has(name)))];
  if (unknown.length > 0) {
    const near = unknown
      .map((name) => [name, classes.find((c) => c.trim().toLowerCase() === name.trim().toLowerCase())] as const)
      .filter(([, match]) => match !== undefined)
      .map(([name, match]) => `'${name}' -> '${match}'`);
    throw new Error(
      `the folder${unknown.length === 1 ? '' : 's'} ${unknown.map((n) => `'${n}'`).join(', ')} ${unknown.length === 1 ? 'is' : 'are'} not among the task's classes ` +
        `(${classes.join(', ')}); name each subfolder after its class${near.length > 0 ? ` (rename ${near.join(', ')}: names must match exactly)` : ''}`,
    );
  }
  const features = input.shape[0] * input.shape[1] * input.shape[2];
  const values = new Uint8Array(images.length * features);
  const labels = new Uint8Array(images.length);
  images.forEach((image, i) => {
    if (image.pixels.length !== features) {
      throw new Error(
        `image ${i + 1} (class '${image.className}') has ${image.pixels.length} values, the task's ${input.shape.join('x')} input needs ${features}: resize it first`,
      );
    }
    values.set(image.pixels, i * features);
    labels[i] = classIndex.get(image.className)!;
  });
  return { count: images.length, features, numClasses: classes.length, values, labels };
}

/**
 * The class of a file from a directory picker's webkitRelativePath: the name
 * of the folder the file is in, e.g. "digits/7/img1.png" -> "7" (and
 * "data/train/7/img1.png" -> "7"). Throws when the file sits directly in the
 * chosen folder.
 */
export function classFromRelativePath(relativePath: string): string {
  const parts = relativePath.split(/[\\/]/).filter((part) => part !== '');
  if (parts.length < 3) {
    const file = parts[parts.length - 1] ?? relativePath;
    const root = parts.length === 2 ? `'${parts[0]}'` : 'the chosen folder';
    throw new Error(
      `'${file}' is directly in ${root}, not in a class folder; put each image in a subfolder named after its class (e.g. ${parts.length === 2 ? parts[0] : 'digits'}/7/${file})`,
    );
  }
  return parts[parts.length - 2]!;
}
