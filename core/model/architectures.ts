import * as tf from '@tensorflow/tfjs';
import type { ModelSpec, WeightShape } from '../protocol/messages.ts';

/**
 * The built-in model architectures. Every model outputs logits (no softmax
 * layer): the loss is softmax cross-entropy on logits, which is numerically
 * stable and gives the per-example gradients the privacy code needs. Apply
 * `tf.softmax` to the output for probabilities.
 *
 * `seed` makes the initial weights reproducible, so the coordinator and a
 * test can build the same starting model.
 */
export function buildModel(spec: ModelSpec, seed = 1): tf.LayersModel {
  // A task's own model: its initial weights come from its model.json, so the seed plays no part.
  if (spec.architecture === 'custom') return buildCustomModel(spec);
  const init = (offset: number) => tf.initializers.glorotUniform({ seed: seed + offset });
  const model = tf.sequential({ name: spec.architecture });
  const flatSize = spec.inputShape.reduce((a, b) => a * b, 1);
  switch (spec.architecture) {
    case 'mlp':
      model.add(tf.layers.reshape({ inputShape: [...spec.inputShape], targetShape: [flatSize] }));
      model.add(tf.layers.dense({ units: 128, activation: 'relu', kernelInitializer: init(1) }));
      model.add(tf.layers.dense({ units: spec.numClasses, kernelInitializer: init(2) }));
      break;
    case '2nn':
      // McMahan et al. 2017, "2NN": two hidden layers of 200 ReLU units (199,210 parameters on MNIST).
      model.add(tf.layers.reshape({ inputShape: [...spec.inputShape], targetShape: [flatSize] }));
      model.add(tf.layers.dense({ units: 200, activation: 'relu', kernelInitializer: init(1) }));
      model.add(tf.layers.dense({ units: 200, activation: 'relu', kernelInitializer: init(2) }));
      model.add(tf.layers.dense({ units: spec.numClasses, kernelInitializer: init(3) }));
      break;
    case 'cnn': {
      // McMahan et al. 2017, "CNN": 5x5 conv 32, pool, 5x5 conv 64, pool, dense 512 (1,663,370 parameters on MNIST).
      // Any [h, w, c] works: 'same' padding and two 2x2 pools give a floor(h/4) x floor(w/4) x 64 map.
      const imageShape = spec.imageShape ? [...spec.imageShape] : imageInputShape(spec.inputShape);
      model.add(tf.layers.reshape({ inputShape: [...spec.inputShape], targetShape: imageShape }));
      model.add(tf.layers.conv2d({ filters: 32, kernelSize: 5, padding: 'same', activation: 'relu', kernelInitializer: init(1) }));
      model.add(tf.layers.maxPooling2d({ poolSize: 2 }));
      model.add(tf.layers.conv2d({ filters: 64, kernelSize: 5, padding: 'same', activation: 'relu', kernelInitializer: init(2) }));
      model.add(tf.layers.maxPooling2d({ poolSize: 2 }));
      model.add(tf.layers.flatten());
      model.add(tf.layers.dense({ units: 512, activation: 'relu', kernelInitializer: init(3) }));
      model.add(tf.layers.dense({ units: spec.numClasses, kernelInitializer: init(4) }));
      break;
    }
    default: {
      const unknown: never = spec.architecture;
      throw new Error(`unknown architecture ${String(unknown)}`);
    }
  }
  return model;
}

/**
 * Rebuilds a custom model from its tfjs layers configuration, synchronously
 * (`tf.models.modelFromJSON` is async): `Sequential.fromConfig` or
 * `LayersModel.fromConfig` on `{ className, config }` from `getConfig()`.
 */
function buildCustomModel(spec: ModelSpec): tf.LayersModel {
  const topology = spec.topology;
  if (topology === null || typeof topology !== 'object' || Array.isArray(topology))
    throw new Error('a custom model needs its topology: { className, config }');
  const { className, config } = topology as { readonly [key: string]: unknown };
  if (config === null || typeof config !== 'object' || Array.isArray(config))
    throw new Error('the custom model topology has no config object');
  // A copy: tfjs writes into the configs it deserialises. JSON objects are the ConfigDicts tfjs types them as.
  const dict = JSON.parse(JSON.stringify(config)) as tf.serialization.ConfigDict;
  if (className === 'Sequential') return tf.Sequential.fromConfig(tf.Sequential, dict) as tf.LayersModel;
  if (className === 'Model' || className === 'Functional') return tf.LayersModel.fromConfig(tf.LayersModel, dict) as tf.LayersModel;
  throw new Error(`the custom model topology must be a Sequential or functional Model, got className ${JSON.stringify(className)}`);
}

/** A square single-channel image shape for a flat or image input, e.g. [784] -> [28, 28, 1]. */
function imageInputShape(inputShape: readonly number[]): number[] {
  if (inputShape.length === 3) return [...inputShape];
  const size = inputShape.reduce((a, b) => a * b, 1);
  const side = Math.round(Math.sqrt(size));
  if (side * side !== size) throw new Error(`cnn needs a square image input, got shape [${inputShape.join(', ')}]`);
  return [side, side, 1];
}

/** The weight tensors of a model in flattening order. */
export function weightShapes(model: tf.LayersModel): WeightShape[] {
  return model.weights.map((w) => ({ name: w.originalName, shape: [...w.shape] as number[] }));
}

export function parameterCount(shapes: readonly WeightShape[]): number {
  return shapes.reduce((total, w) => total + w.shape.reduce((a, b) => a * b, 1), 0);
}
