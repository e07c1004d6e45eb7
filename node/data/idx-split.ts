import { readFile, writeFile } from 'node:fs/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import { isGzip, parseIdx, type IdxArray } from '../../core/data/idx.ts';
import { permutation, SeededRandom } from '../../core/random/prng.ts';

/**
 * Cuts an IDX pair (e.g. Debian's Fashion-MNIST t10k) into disjoint seeded
 * parts and writes each as a gzipped IDX pair: how the shipped example task
 * and the tests make their data from files on the machine.
 */

/** An unsigned-byte IDX file: header (0 0 0x08 rank, big-endian sizes) then the bytes. */
export function encodeIdx(dims: readonly number[], data: Uint8Array): Uint8Array {
  const header = 4 + 4 * dims.length;
  const out = new Uint8Array(header + data.length);
  const view = new DataView(out.buffer);
  out[2] = 0x08;
  out[3] = dims.length;
  dims.forEach((d, i) => {
    view.setUint32(4 + 4 * i, d, false);
  });
  out.set(data, header);
  return out;
}

export async function readIdxFile(file: string): Promise<IdxArray> {
  const bytes = new Uint8Array(await readFile(file));
  return parseIdx(isGzip(bytes) ? new Uint8Array(gunzipSync(bytes)) : bytes, file);
}

export interface IdxPart {
  readonly count: number;
  /** Written as `${prefix}-images-idx3-ubyte.gz` and `${prefix}-labels-idx1-ubyte.gz`. */
  readonly prefix: string;
}

/** Writes each part (in order, from one seeded permutation of the images) as a gzipped IDX pair. */
export async function splitIdxPair(imagesFile: string, labelsFile: string, parts: readonly IdxPart[], seed: number): Promise<void> {
  const images = await readIdxFile(imagesFile);
  const labels = await readIdxFile(labelsFile);
  const [count, ...imageDims] = images.dims as [number, ...number[]];
  const size = imageDims.reduce((a, b) => a * b, 1);
  const total = parts.reduce((n, p) => n + p.count, 0);
  if (total > count) throw new Error(`${imagesFile} holds ${count} images, the parts need ${total}`);
  const order = permutation(count, new SeededRandom(seed));
  let next = 0;
  for (const part of parts) {
    const pixels = new Uint8Array(part.count * size);
    const partLabels = new Uint8Array(part.count);
    for (let i = 0; i < part.count; i++) {
      const src = order[next++]!;
      pixels.set(images.data.subarray(src * size, (src + 1) * size), i * size);
      partLabels[i] = labels.data[src]!;
    }
    await writeFile(`${part.prefix}-images-idx3-ubyte.gz`, gzipSync(encodeIdx([part.count, ...imageDims], pixels), { level: 9 }));
    await writeFile(`${part.prefix}-labels-idx1-ubyte.gz`, gzipSync(encodeIdx([part.count], partLabels), { level: 9 }));
  }
}
