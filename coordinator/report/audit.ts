import * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../../core/data/dataset.ts';
import { buildModel } from '../../core/model/architectures.ts';
import { writeWeights } from '../../core/model/weights.ts';
import { lossThresholdAudit, type MembershipAuditResult } from '../../core/privacy/membership-audit.ts';
import type { ModelSpec } from '../../core/protocol/messages.ts';
import { checkDataFitsModel, toDataTensors } from '../../core/training/data-tensors.ts';

/** Examples the coordinator holds that the model was trained on (members) and never saw (non-members). */
export interface AuditData {
  readonly members: Dataset;
  readonly nonMembers: Dataset;
  /** Where each group comes from, for the report (e.g. "a seeded sample of the demo training set"). */
  readonly membersSource?: string;
  readonly nonMembersSource?: string;
}

/**
 * Runs the loss-threshold membership-inference attack on global weights:
 * per-example softmax cross-entropy on members and non-members, in batches,
 * on a model of its own (the evaluator's is busy with rounds). Audits run
 * one at a time, since they share that model.
 */
export class MembershipAuditor {
  private readonly model: tf.LayersModel;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly spec: ModelSpec,
    readonly data: AuditData,
    private readonly batchSize = 500,
  ) {
    checkDataFitsModel(spec, data.members);
    checkDataFitsModel(spec, data.nonMembers);
    this.model = buildModel(spec);
  }

  audit(weights: Float32Array): Promise<MembershipAuditResult> {
    const run = this.queue.then(async () => {
      writeWeights(this.model, weights);
      const members = await this.exampleLosses(this.data.members);
      const nonMembers = await this.exampleLosses(this.data.nonMembers);
      return lossThresholdAudit(members, nonMembers);
    });
    this.queue = run.catch(() => {});
    return run;
  }

  /** The model's loss on each example, uploaded and evaluated a batch at a time so memory stays bounded. */
  private async exampleLosses(data: Dataset): Promise<Float32Array> {
    const out = new Float32Array(data.count);
    for (let start = 0; start < data.count; start += this.batchSize) {
      const size = Math.min(this.batchSize, data.count - start);
      const batch = sliceDataset(data, start, size);
      const losses = tf.tidy(() => {
        const { xs, ys } = toDataTensors(batch, this.spec.numClasses);
        const logits = this.model.predict(xs) as tf.Tensor;
        return tf.losses.softmaxCrossEntropy(ys, logits, undefined, undefined, tf.Reduction.NONE);
      });
      try {
        out.set(await losses.data(), start);
      } finally {
        losses.dispose();
      }
    }
    return out;
  }

  dispose(): void {
    this.model.dispose();
  }
}

/** A view of `n` consecutive examples from `first` (no copy of the values). */
function sliceDataset(data: Dataset, first: number, n: number): Dataset {
  return {
    count: n,
    features: data.features,
    numClasses: data.numClasses,
    values: data.values.subarray(first * data.features, (first + n) * data.features),
    labels: data.labels.subarray(first, first + n),
  };
}
