import type { Dataset } from '../../../core/data/dataset.ts';

/** Datasets of the same layout, one after the other (e.g. MNIST's train and t10k pairs). */
export function concatDatasets(parts: readonly Dataset[]): Dataset {
  const first = parts[0];
  if (!first) throw new Error('no data');
  if (parts.length === 1) return first;
  const count = parts.reduce((n, p) => n + p.count, 0);
  const floats = first.values instanceof Float32Array;
  const values = floats ? new Float32Array(count * first.features) : new Uint8Array(count * first.features);
  const labels = new Uint8Array(count);
  let offset = 0;
  for (const part of parts) {
    if (part.features !== first.features || part.numClasses !== first.numClasses || part.values instanceof Float32Array !== floats) {
      throw new Error('the files hold examples of different shapes; they cannot be combined');
    }
    values.set(part.values, offset * first.features);
    labels.set(part.labels, offset);
    offset += part.count;
  }
  return { count, features: first.features, numClasses: first.numClasses, values, labels };
}
