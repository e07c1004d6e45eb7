import { setImmediate as loopTurn } from 'node:timers/promises';
import * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../core/data/dataset.ts';
import { buildModel } from '../core/model/architectures.ts';
import { writeWeights } from '../core/model/weights.ts';
import type { EvalMetrics, ModelSpec } from '../core/protocol/messages.ts';
import { toDataTensors } from '../core/training/data-tensors.ts';
import type { ModelEvaluator } from './rounds/round-engine.ts';

/**
 * Evaluates global weights on the coordinator's held-out test split, in
 * batches, letting the event loop turn between them: a tfjs read resolves
 * without one, and the whole test set in one piece held a cluster leader's
 * loop for up to a second on a loaded machine (docs/cluster-lease.md). It
 * runs in the model thread now (model-thread/), where the turns let the
 * model files and the audit be answered meanwhile.
 */
export class TestSetEvaluator implements ModelEvaluator {
  private readonly model: tf.LayersModel;
  private readonly xs: tf.Tensor2D;
  private readonly ys: tf.Tensor2D;

  constructor(
    spec: ModelSpec,
    private readonly test: Dataset,
    private readonly batchSize = 500,
  ) {
    this.model = buildModel(spec);
    ({ xs: this.xs, ys: this.ys } = toDataTensors(test, spec.numClasses));
  }

  async evaluate(weights: Float32Array): Promise<EvalMetrics> {
    writeWeights(this.model, weights);
    let lossSum = 0;
    let correct = 0;
    for (let start = 0; start < this.test.count; start += this.batchSize) {
      if (start > 0) await loopTurn();
      const size = Math.min(this.batchSize, this.test.count - start);
      const [loss, hits] = tf.tidy(() => {
        const x = this.xs.slice([start, 0], [size, -1]);
        const y = this.ys.slice([start, 0], [size, -1]);
        const logits = this.model.predict(x) as tf.Tensor;
        const perExample = tf.losses.softmaxCrossEntropy(y, logits, undefined, undefined, tf.Reduction.NONE);
        return [perExample.sum(), tf.equal(tf.argMax(logits, 1), tf.argMax(y, 1)).sum()];
      });
      const [l, h] = await Promise.all([loss.data(), hits.data()]);
      loss.dispose();
      hits.dispose();
      lossSum += l[0]!;
      correct += h[0]!;
    }
    return { loss: lossSum / this.test.count, accuracy: correct / this.test.count };
  }

  dispose(): void {
    this.model.dispose();
    this.xs.dispose();
    this.ys.dispose();
  }
}
