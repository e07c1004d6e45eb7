import type { Dataset } from '../../core/data/dataset.ts';

/** MNIST-style IDX files of a 28x28 byte dataset, as a participant would pick them. */

export function idxImages(data: Dataset): Uint8Array {
  if (!(data.values instanceof Uint8Array) || data.features !== 784) throw new Error('idxImages takes 28x28 byte images');
  const out = new Uint8Array(16 + data.values.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, 0x0000_0803);
  view.setUint32(4, data.count);
  view.setUint32(8, 28);
  view.setUint32(12, 28);
  out.set(data.values, 16);
  return out;
}

export function idxLabels(data: Dataset): Uint8Array {
  const out = new Uint8Array(8 + data.count);
  const view = new DataView(out.buffer);
  view.setUint32(0, 0x0000_0801);
  view.setUint32(4, data.count);
  out.set(data.labels, 8);
  return out;
}
