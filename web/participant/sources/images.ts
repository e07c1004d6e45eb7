import { classFromRelativePath, imageFolderDataset, resizeToInput, type LabelledImage } from '../../../core/data/images.ts';
import type { Dataset } from '../../../core/data/dataset.ts';
import type { ImageInput } from '../../../core/data/schema.ts';
import { errorMessage, nextFrame } from '../dom.ts';

/**
 * A folder of images with one subfolder per class, decoded in the page
 * (createImageBitmap, then a canvas's getImageData) and resized to the
 * task's input shape by core/data/images.ts.
 */

export interface SkippedFile {
  readonly file: string;
  readonly reason: string;
}

export interface ImageFolder {
  readonly dataset: Dataset;
  readonly skipped: readonly SkippedFile[];
  readonly description: string;
}

const IMAGE_NAME = /\.(png|jpe?g|gif|webp|bmp|avif|ico|svg)$/i;

/** Decoding at most this many times the task's size keeps huge photos cheap; the area resize in core does the rest. */
const OVERSAMPLE = 4;

type Canvas2D = OffscreenCanvasRenderingContext2D | CanvasRenderingContext2D;

function context(width: number, height: number): Canvas2D {
  if (typeof OffscreenCanvas !== 'undefined') {
    const ctx = new OffscreenCanvas(width, height).getContext('2d', { willReadFrequently: true });
    if (ctx) return ctx;
  }
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  if (!ctx) throw new Error('this browser gives no 2D canvas to decode images with');
  return ctx;
}

/** One image file -> the task's [h, w, c] bytes. */
async function decode(file: File, input: ImageInput, invert: boolean): Promise<Uint8Array> {
  const [height, width] = input.shape;
  let bitmap = await createImageBitmap(file);
  try {
    const scale = Math.min(1, (OVERSAMPLE * width) / bitmap.width, (OVERSAMPLE * height) / bitmap.height);
    if (scale < 1) {
      // Keeps the aspect ratio: core's resize decides how the image maps to the task's shape.
      const smaller = await createImageBitmap(bitmap, {
        resizeWidth: Math.max(1, Math.round(bitmap.width * scale)),
        resizeHeight: Math.max(1, Math.round(bitmap.height * scale)),
        resizeQuality: 'high',
      });
      bitmap.close();
      bitmap = smaller;
    }
    const ctx = context(bitmap.width, bitmap.height);
    ctx.drawImage(bitmap, 0, 0);
    const { data } = ctx.getImageData(0, 0, bitmap.width, bitmap.height);
    return resizeToInput(data, bitmap.width, bitmap.height, input.shape, { invert });
  } finally {
    bitmap.close();
  }
}

/**
 * Reads every file of a directory pick. Files that are not images, sit
 * outside a class folder or cannot be decoded are skipped with the reason;
 * folders that are not classes of the task are an error (imageFolderDataset
 * explains which, and near misses in case).
 */
export async function readImageFolder(
  files: readonly File[],
  input: ImageInput,
  classes: readonly string[],
  options: { readonly invert: boolean; readonly onProgress: (done: number, total: number) => void; readonly cancelled: () => boolean },
): Promise<ImageFolder> {
  if (files.length === 0) throw new Error('the chosen folder holds no files');
  const images: LabelledImage[] = [];
  const skipped: SkippedFile[] = [];
  let lastPaint = performance.now();
  for (let i = 0; i < files.length; i++) {
    if (options.cancelled()) throw new Error('cancelled: another choice was made');
    const file = files[i]!;
    const path = file.webkitRelativePath || file.name;
    const base = path.split(/[\\/]/).pop() ?? path;
    if (base.startsWith('.')) continue; // .DS_Store and other hidden files are not data
    if (!file.type.startsWith('image/') && !IMAGE_NAME.test(base)) {
      skipped.push({ file: path, reason: 'not an image file' });
      continue;
    }
    let className: string;
    try {
      className = classFromRelativePath(path);
    } catch (error) {
      skipped.push({
        file: path,
        reason: file.webkitRelativePath ? errorMessage(error) : 'no folder name (choose a folder, not single files): its class is unknown',
      });
      continue;
    }
    try {
      images.push({ className, pixels: await decode(file, input, options.invert) });
    } catch (error) {
      skipped.push({ file: path, reason: `cannot be decoded as an image (${errorMessage(error)})` });
    }
    if (performance.now() - lastPaint > 100) {
      options.onProgress(i + 1, files.length);
      await nextFrame();
      lastPaint = performance.now();
    }
  }
  options.onProgress(files.length, files.length);
  if (images.length === 0) {
    const why = skipped
      .slice(0, 3)
      .map((s) => `${s.file}: ${s.reason}`)
      .join('; ');
    throw new Error(
      `no usable images in the chosen files${why ? ` (${why}${skipped.length > 3 ? `; and ${skipped.length - 3} more` : ''})` : ''}`,
    );
  }
  const root = (files[0]!.webkitRelativePath || '').split('/')[0];
  return {
    dataset: imageFolderDataset(images, input, classes),
    skipped,
    description: root ? `folder ${root}` : `${files.length.toLocaleString()} image files`,
  };
}
