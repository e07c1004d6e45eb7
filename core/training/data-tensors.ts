import * as tf from '@tensorflow/tfjs';
import type { ByteDataset } from '../data/dataset.ts';
import type { ModelSpec } from '../protocol/messages.ts';

/** A dataset on the backend: features scaled to [0, 1] and one-hot labels, one row per example. */
export interface DataTensors {
  readonly xs: tf.Tensor2D;
  readonly ys: tf.Tensor2D;
}

/** Throws a readable error when `data` cannot train or test a model of `spec`. */
export function checkDataFitsModel(spec: ModelSpec, data: ByteDataset): void {
  if (data.count === 0) throw new Error('no local training data');
  const inputSize = spec.inputShape.reduce((a, b) => a * b, 1);
  if (data.features !== inputSize) {
    throw new Error(`the data has ${data.features} features per example, the model takes ${inputSize}`);
  }
  if (data.numClasses > spec.numClasses) {
    throw new Error(`the data has ${data.numClasses} classes, the model ${spec.numClasses}`);
  }
}

/** Uploads a byte dataset once; the caller disposes both tensors. */
export function toDataTensors(data: ByteDataset, numClasses: number): DataTensors {
  return {
    xs: tf.tidy(() => tf.tensor2d(data.features8, [data.count, data.features], 'int32').toFloat().div(255)),
    ys: tf.tidy(() => tf.oneHot(tf.tensor1d(data.labels, 'int32'), numClasses).toFloat() as tf.Tensor2D),
  };
}
