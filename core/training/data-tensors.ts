import * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../data/dataset.ts';
import type { ModelSpec } from '../protocol/messages.ts';

/** A dataset on the backend: features as the model takes them (bytes scaled to [0, 1]) and one-hot labels, one row per example. */
export interface DataTensors {
  readonly xs: tf.Tensor2D;
  readonly ys: tf.Tensor2D;
}

/** Throws a readable error when `data` cannot train or test a model of `spec`. */
export function checkDataFitsModel(spec: ModelSpec, data: Dataset): void {
  if (data.count === 0) throw new Error('no local training data');
  const inputSize = spec.inputShape.reduce((a, b) => a * b, 1);
  if (data.features !== inputSize) {
    throw new Error(`the data has ${data.features} features per example, the model takes ${inputSize}`);
  }
  if (data.numClasses > spec.numClasses) {
    throw new Error(`the data has ${data.numClasses} classes, the model ${spec.numClasses}`);
  }
}

/** The features of `data` as the model takes them, one row per example; the caller disposes it. */
export function featureTensor(data: Dataset): tf.Tensor2D {
  if (data.values instanceof Float32Array) return tf.tensor2d(data.values, [data.count, data.features]);
  const bytes = data.values;
  return tf.tidy(() => tf.tensor2d(bytes, [data.count, data.features], 'int32').toFloat().div(255));
}

/** Uploads a dataset once; the caller disposes both tensors. */
export function toDataTensors(data: Dataset, numClasses: number): DataTensors {
  return {
    xs: featureTensor(data),
    ys: tf.tidy(() => tf.oneHot(tf.tensor1d(data.labels, 'int32'), numClasses).toFloat() as tf.Tensor2D),
  };
}
