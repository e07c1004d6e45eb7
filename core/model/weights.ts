import * as tf from '@tensorflow/tfjs';

/**
 * Flattening between a model's weight tensors and one Float32Array, in the
 * order of `model.weights`. This order is the wire order of every frame.
 */

export function countParameters(model: tf.LayersModel): number {
  return model.weights.reduce((total, w) => total + w.shape.reduce((a: number, b) => a * (b ?? 1), 1), 0);
}

/** Reads all weights into one new Float32Array (waits for the backend, never blocks it). */
export async function readWeights(model: tf.LayersModel): Promise<Float32Array> {
  const out = new Float32Array(countParameters(model));
  let offset = 0;
  for (const w of model.weights) {
    // `read()` returns the variable itself: it must not be disposed.
    const values = (await w.read().data()) as Float32Array;
    out.set(values, offset);
    offset += values.length;
  }
  return out;
}

/** Overwrites all weights from a flat Float32Array. */
export function writeWeights(model: tf.LayersModel, flat: Float32Array): void {
  const expected = countParameters(model);
  if (flat.length !== expected) throw new RangeError(`got ${flat.length} values, the model has ${expected}`);
  let offset = 0;
  for (const w of model.weights) {
    const size = w.shape.reduce((a: number, b) => a * (b ?? 1), 1);
    const value = tf.tensor(flat.subarray(offset, offset + size), w.shape as number[], 'float32');
    w.write(value);
    value.dispose();
    offset += size;
  }
}
