import { readFile } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../../core/data/dataset.ts';
import { featureTensor } from '../../core/training/data-tensors.ts';
import { initNodeBackend } from '../../coordinator/tf-node.ts';

/**
 * Loads a model saved as model.json + weights.bin (the coordinator's run
 * folder, or the dashboard's download) with tf.loadLayersModel, as a user
 * would; the tfjs file:// handler needs tfjs-node, so the files are read here.
 */
export async function loadSavedModel(modelJsonFile: string, weightsFile: string): Promise<tf.LayersModel> {
  // This thread's backend (a coordinator's tfjs is in its model thread).
  await initNodeBackend();
  const artifacts = JSON.parse(await readFile(modelJsonFile, 'utf8')) as {
    modelTopology: object;
    weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
  };
  const weights = await readFile(weightsFile);
  return tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: artifacts.modelTopology,
      weightSpecs: artifacts.weightsManifest.flatMap((group) => group.weights),
      weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
    }),
  );
}

/** The share of `data` the model classifies right. */
export function accuracyOn(model: tf.LayersModel, data: Dataset): number {
  return tf.tidy(() => {
    const predicted = (model.predict(featureTensor(data)) as tf.Tensor).argMax(1);
    return tf.equal(predicted, tf.tensor1d(data.labels, 'int32')).mean().dataSync()[0]!;
  });
}
