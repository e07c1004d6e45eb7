import type { WeightShape } from '../protocol/messages.ts';

/**
 * Fine-tuning: a task trains only some of its model's weight tensors (the
 * layers its model.json does not mark `trainable: false`, or the ones its
 * `fineTune.trainable` names). Everything that travels per round (the
 * global weights a round starts from, every update, the secure sum) holds
 * only the trainable values, in `model.weights` order; the frozen values
 * travel once, named by their content hash (docs/fine-tuning.md).
 */

/** Where the trainable values sit in a model's flat weights (core/model/weights.ts order). */
export interface TrainableLayout {
  /** Values of the whole model. */
  readonly fullCount: number;
  /** Values of the trainable weight tensors. */
  readonly trainableCount: number;
  /** [start, end) ranges of the flat weights that are trainable, in order, adjacent tensors merged. */
  readonly segments: readonly (readonly [number, number])[];
}

/** The layout of the weight tensors `trainable` (indices into `shapes`, ascending) within the flat weights. */
export function trainableLayout(shapes: readonly WeightShape[], trainable: readonly number[]): TrainableLayout {
  const wanted = new Set(trainable);
  for (const index of wanted) {
    if (!Number.isInteger(index) || index < 0 || index >= shapes.length)
      throw new RangeError(`trainable weight index ${index} is not one of the model's ${shapes.length} weights`);
  }
  const segments: [number, number][] = [];
  let offset = 0;
  let trainableCount = 0;
  shapes.forEach((weight, index) => {
    const size = weight.shape.reduce((a, b) => a * b, 1);
    if (wanted.has(index) && size > 0) {
      const last = segments.at(-1);
      if (last && last[1] === offset) last[1] += size;
      else segments.push([offset, offset + size]);
      trainableCount += size;
    }
    offset += size;
  });
  return { fullCount: offset, trainableCount, segments };
}

/** The trainable values of full weights, packed. */
export function gatherTrainable(full: Float32Array, layout: TrainableLayout): Float32Array {
  checkLength(full, layout.fullCount, 'full weights');
  const out = new Float32Array(layout.trainableCount);
  let at = 0;
  for (const [start, end] of layout.segments) {
    out.set(full.subarray(start, end), at);
    at += end - start;
  }
  return out;
}

/** The frozen values of full weights, packed (everything outside the segments). */
export function gatherFrozen(full: Float32Array, layout: TrainableLayout): Float32Array {
  checkLength(full, layout.fullCount, 'full weights');
  const out = new Float32Array(layout.fullCount - layout.trainableCount);
  let at = 0;
  let from = 0;
  for (const [start, end] of [...layout.segments, [layout.fullCount, layout.fullCount] as const]) {
    out.set(full.subarray(from, start), at);
    at += start - from;
    from = end;
  }
  return out;
}

/** Full weights from packed trainable and frozen values: the inverse of gatherTrainable and gatherFrozen. */
export function joinWeights(trainable: Float32Array, frozen: Float32Array, layout: TrainableLayout): Float32Array {
  checkLength(trainable, layout.trainableCount, 'trainable values');
  checkLength(frozen, layout.fullCount - layout.trainableCount, 'frozen values');
  const out = new Float32Array(layout.fullCount);
  let fromTrainable = 0;
  let fromFrozen = 0;
  let from = 0;
  for (const [start, end] of [...layout.segments, [layout.fullCount, layout.fullCount] as const]) {
    out.set(frozen.subarray(fromFrozen, fromFrozen + start - from), from);
    fromFrozen += start - from;
    out.set(trainable.subarray(fromTrainable, fromTrainable + end - start), start);
    fromTrainable += end - start;
    from = end;
  }
  return out;
}

/** A copy of `base` with its trainable values replaced: the frozen values stay bit-identical. */
export function withTrainable(base: Float32Array, trainable: Float32Array, layout: TrainableLayout): Float32Array {
  checkLength(base, layout.fullCount, 'full weights');
  checkLength(trainable, layout.trainableCount, 'trainable values');
  const out = Float32Array.from(base);
  let at = 0;
  for (const [start, end] of layout.segments) {
    out.set(trainable.subarray(at, at + end - start), start);
    at += end - start;
  }
  return out;
}

/** SHA-256 (hex) of float32 values as little-endian bytes: the name frozen weights are fetched and cached by. */
export async function weightsContentHash(values: Float32Array): Promise<string> {
  // A copy: digest takes an ArrayBuffer-backed view, and the values may sit in a larger or shared buffer.
  const bytes = new Uint8Array(values.byteLength);
  bytes.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

function checkLength(values: Float32Array, expected: number, what: string): void {
  if (values.length !== expected) throw new RangeError(`${what}: got ${values.length} values, expected ${expected}`);
}
