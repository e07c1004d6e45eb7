import * as tf from '@tensorflow/tfjs';
import { buildModel } from '../../core/model/architectures.ts';
import { writeWeights } from '../../core/model/weights.ts';
import type { ModelSpec, WeightShape } from '../../core/protocol/messages.ts';

/** A model in the tfjs layers format: what `tf.loadLayersModel` reads. */
export interface ModelArtifactsFiles {
  /** model.json: topology plus a manifest that points at weights.bin. */
  readonly modelJson: string;
  /** weights.bin: the float32 weights, concatenated in manifest order. */
  readonly weightsBin: Uint8Array;
}

/** Turns flat weights into `model.json` + `weights.bin` bytes, with a model kept for the purpose. */
export class ModelSerializer {
  private readonly model: tf.LayersModel;

  constructor(spec: ModelSpec) {
    this.model = buildModel(spec);
  }

  async toFiles(weights: Float32Array): Promise<ModelArtifactsFiles> {
    writeWeights(this.model, weights);
    let artifacts: tf.io.ModelArtifacts | undefined;
    await this.model.save(
      tf.io.withSaveHandler(async (a) => {
        artifacts = a;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    if (!artifacts?.weightData || !artifacts.weightSpecs) throw new Error('tfjs returned no weights to save');
    const data = artifacts.weightData;
    const weightsBin = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(tf.io.concatenateArrayBuffers(data));
    const modelJson = JSON.stringify({
      format: 'layers-model',
      generatedBy: `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
      convertedBy: null,
      modelTopology: artifacts.modelTopology,
      weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
    });
    return { modelJson, weightsBin };
  }

  dispose(): void {
    this.model.dispose();
  }
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
