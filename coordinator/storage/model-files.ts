import * as tf from '@tensorflow/tfjs';
import path from 'node:path';
import { buildModel } from '../../core/model/architectures.ts';
import { writeWeights } from '../../core/model/weights.ts';
import type { ModelSpec } from '../../core/protocol/messages.ts';
import type { RoundRecord } from '../../core/protocol/status.ts';
import { writeFileAtomic } from './atomic-write.ts';

/**
 * Writes the global model after each aggregated round into the run folder,
 * in the tfjs layers format (`model.json` + `weights.bin`, loadable with
 * `tf.loadLayersModel`), with the round history beside it.
 */
export class ModelFiles {
  private readonly model: tf.LayersModel;

  constructor(
    spec: ModelSpec,
    readonly dir: string,
  ) {
    this.model = buildModel(spec);
  }

  async save(weights: Float32Array, history: readonly RoundRecord[]): Promise<void> {
    writeWeights(this.model, weights);
    let artifacts: tf.io.ModelArtifacts | undefined;
    await this.model.save(
      tf.io.withSaveHandler(async (a) => {
        artifacts = a;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    if (!artifacts?.weightData || !artifacts.weightSpecs) throw new Error('tfjs returned no weights to save');
    const weightData = artifacts.weightData;
    const bytes = weightData instanceof ArrayBuffer ? new Uint8Array(weightData) : new Uint8Array(tf.io.concatenateArrayBuffers(weightData));
    const modelJson = {
      format: 'layers-model',
      generatedBy: `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
      convertedBy: null,
      modelTopology: artifacts.modelTopology,
      weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
    };
    // weights.bin first: a model.json never points at weights that are not there yet.
    await writeFileAtomic(path.join(this.dir, 'weights.bin'), bytes);
    await writeFileAtomic(path.join(this.dir, 'model.json'), JSON.stringify(modelJson));
    await writeFileAtomic(path.join(this.dir, 'history.json'), JSON.stringify(history, null, 2));
  }

  dispose(): void {
    this.model.dispose();
  }
}
