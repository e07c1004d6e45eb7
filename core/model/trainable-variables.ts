import * as tf from '@tensorflow/tfjs';

/*
 * Which of a tfjs model's weights train: kept apart from fine-tune.ts's
 * layout arithmetic, which code that must not load tfjs uses.
 */

/** Positions in `model.weights` of the weights training may change (`model.trainableWeights`). */
export function trainableWeightIndices(model: tf.LayersModel): number[] {
  const trainable = new Set(model.trainableWeights);
  return model.weights.flatMap((w, index) => (trainable.has(w) ? [index] : []));
}

/**
 * The trainable variables of a model, as an optimizer's or `variableGrads`'s
 * var list needs them: without one, tfjs optimizers also step the variables
 * of layers marked `trainable: false`.
 */
export function trainableVariables(model: tf.LayersModel): tf.Variable[] {
  return model.trainableWeights.map((w) => {
    const v = w.read();
    if (!(v instanceof tf.Variable)) throw new Error(`weight ${w.name} is not backed by a tf.Variable`);
    return v;
  });
}
