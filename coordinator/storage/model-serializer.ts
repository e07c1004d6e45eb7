import * as tf from '@tensorflow/tfjs';
import { buildModel } from '../../core/model/architectures.ts';
import { writeWeights } from '../../core/model/weights.ts';
import type { ModelSpec } from '../../core/protocol/messages.ts';
import type { ModelArtifactsFiles, ModelFilesWriter } from './model-files.ts';

/** Turns flat weights into `model.json` + `weights.bin` bytes, with a model kept for the purpose. */
export class ModelSerializer implements ModelFilesWriter {
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
