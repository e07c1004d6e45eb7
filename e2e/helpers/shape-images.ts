import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PNG } from 'pngjs';
import { SeededRandom } from '../../core/random/prng.ts';

/**
 * Colour pictures of three shapes for image-task tests: each image is a
 * filled circle, square or triangle of a random bright colour, size and
 * position on a background of a random dark colour, written as RGB PNGs into
 * `<folder>/<shape>/<n>.png`, the layout the folder picker and task files read.
 */

export const SHAPES = ['circle', 'square', 'triangle'] as const;
export type Shape = (typeof SHAPES)[number];

type Rgb = readonly [number, number, number];

export interface ShapeImageOptions {
  /** Images per shape. */
  readonly perShape: number;
  /** Width and height in pixels (default 32). */
  readonly size?: number;
  readonly seed: number;
}

/** Writes the images; returns how many of each shape were written. */
export function writeShapeImages(folder: string, options: ShapeImageOptions): Record<Shape, number> {
  const random = new SeededRandom(options.seed);
  const size = options.size ?? 32;
  const counts = { circle: 0, square: 0, triangle: 0 };
  for (const shape of SHAPES) {
    mkdirSync(path.join(folder, shape), { recursive: true });
    for (let n = 0; n < options.perShape; n++) {
      writeFileSync(path.join(folder, shape, `${String(n).padStart(4, '0')}.png`), shapePng(shape, size, random));
      counts[shape]++;
    }
  }
  return counts;
}

function shapePng(shape: Shape, size: number, random: SeededRandom): Buffer {
  // A dark background and a bright foreground, each of a random hue: the shape is always visible.
  const background = randomColour(random, 0, 90);
  let foreground = randomColour(random, 60, 256);
  while (Math.max(...foreground) < 200) foreground = randomColour(random, 60, 256);
  const half = size * (0.22 + 0.12 * random.next()); // half the shape's extent
  const cx = size / 2 + (random.next() - 0.5) * (size - 2 * half) * 0.5;
  const cy = size / 2 + (random.next() - 0.5) * (size - 2 * half) * 0.5;
  const png = new PNG({ width: size, height: size, colorType: 2 });
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const colour = inside(shape, x + 0.5 - cx, y + 0.5 - cy, half) ? foreground : background;
      const at = (y * size + x) * 4;
      png.data[at] = colour[0];
      png.data[at + 1] = colour[1];
      png.data[at + 2] = colour[2];
      png.data[at + 3] = 255;
    }
  }
  return PNG.sync.write(png, { colorType: 2 });
}

/** Whether the point (dx, dy) from the shape's centre is inside it. */
function inside(shape: Shape, dx: number, dy: number, half: number): boolean {
  switch (shape) {
    case 'circle':
      return dx * dx + dy * dy <= half * half;
    case 'square':
      return Math.abs(dx) <= half * 0.85 && Math.abs(dy) <= half * 0.85;
    case 'triangle': {
      // Apex up, base at the bottom: the half-width grows from 0 at the top to `half` at the base.
      const t = (dy + half) / (2 * half);
      return t >= 0 && t <= 1 && Math.abs(dx) <= t * half;
    }
    default: {
      const unknown: never = shape;
      throw new Error(`unknown shape ${String(unknown)}`);
    }
  }
}

/** Each channel uniform in [low, high). */
function randomColour(random: SeededRandom, low: number, high: number): Rgb {
  const channel = () => low + random.int(high - low);
  return [channel(), channel(), channel()];
}
