import type { WeightShape } from '../../core/protocol/messages.ts';

/** A model in the tfjs layers format: what `tf.loadLayersModel` reads. */
export interface ModelArtifactsFiles {
  /** model.json: topology plus a manifest that points at weights.bin. */
  readonly modelJson: string;
  /** weights.bin: the float32 weights, concatenated in manifest order. */
  readonly weightsBin: Uint8Array;
}

/** Turns flat weights into `model.json` + `weights.bin` bytes (model-serializer.ts, in the model thread). */
export interface ModelFilesWriter {
  toFiles(weights: Float32Array): Promise<ModelArtifactsFiles>;
}

/**
 * Reads the flat weights back from `model.json` + `weights.bin`, checking
 * that the manifest describes exactly the model's weights, in order.
 */
export function weightsFromFiles(files: ModelArtifactsFiles, shapes: readonly WeightShape[]): Float32Array {
  let manifest: unknown;
  try {
    manifest = (JSON.parse(files.modelJson) as { weightsManifest?: { weights?: unknown }[] }).weightsManifest?.[0]?.weights;
  } catch (error) {
    throw new Error(`model.json is not JSON: ${(error as Error).message}`);
  }
  if (!Array.isArray(manifest) || manifest.length !== shapes.length)
    throw new Error(`model.json lists ${Array.isArray(manifest) ? manifest.length : 'no'} weights, the model has ${shapes.length}`);
  manifest.forEach((entry: { shape?: unknown; dtype?: unknown }, i) => {
    const expected = shapes[i]!.shape;
    if (entry.dtype !== 'float32' || !Array.isArray(entry.shape) || entry.shape.join(',') !== expected.join(',')) {
      throw new Error(
        `weight ${i} in model.json is ${String(entry.dtype)} [${String(entry.shape)}], the model expects float32 [${expected.join(',')}]`,
      );
    }
  });
  const count = shapes.reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 1), 0);
  if (files.weightsBin.byteLength !== count * 4)
    throw new Error(`weights.bin is ${files.weightsBin.byteLength} bytes, the model needs ${count * 4}`);
  const out = new Float32Array(count);
  new Uint8Array(out.buffer).set(files.weightsBin);
  return out;
}
