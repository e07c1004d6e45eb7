import * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../data/dataset.ts';
import { buildModel } from '../model/architectures.ts';
import { trainableVariables } from '../model/trainable-variables.ts';
import { readWeights, writeWeights } from '../model/weights.ts';
import type { FitConfig, ModelSpec, TrainMetrics } from '../protocol/messages.ts';
import { nextMacrotask } from '../runtime/yield.ts';
import { checkDataFitsModel, toDataTensors } from './data-tensors.ts';

export interface TrainProgress {
  /** Epochs completed. */
  readonly epoch: number;
  readonly epochs: number;
  /** Batches (DP-SGD: steps) done in the current epoch, of `batches` per epoch. */
  readonly batch: number;
  readonly batches: number;
  /** Fraction of the whole round's training done, in [0, 1]. */
  readonly fraction: number;
}

export interface TrainHooks {
  onProgress?(progress: TrainProgress): void;
  /** Polled between batches; returning true stops training with a TrainingAborted error. */
  shouldAbort?(): boolean;
}

export interface TrainResult {
  /** New local weights minus the starting weights. */
  readonly update: Float32Array;
  /** Mean loss and accuracy over the last local epoch. */
  readonly metrics: TrainMetrics;
  readonly numExamples: number;
  readonly trainMs: number;
}

export class TrainingAborted extends Error {
  constructor() {
    super('training aborted');
    this.name = 'TrainingAborted';
  }
}

/** How often training hands the thread back so sockets, timers and UI messages run. */
const YIELD_INTERVAL_MS = 100;

/**
 * The pace of a training loop, shared by every trainer: after each step it
 * hands the thread back when ~100 ms have passed (reading a running scalar
 * first, so an asynchronous GPU queue cannot run far ahead), and that is
 * where abort and progress are checked.
 */
export class TrainingPacer {
  private lastYield = performance.now();

  constructor(private readonly hooks: TrainHooks) {}

  async afterStep(sync: tf.Tensor, progress: () => TrainProgress): Promise<void> {
    if (performance.now() - this.lastYield < YIELD_INTERVAL_MS) return;
    await sync.data();
    await nextMacrotask();
    this.lastYield = performance.now();
    this.checkAbort();
    this.hooks.onProgress?.(progress());
  }

  /**
   * Ends epoch `epoch` (0-based) of `epochs`: reads its summed loss and
   * correct count, checks abort, reports the epoch done, and returns the
   * means over the `examples` it trained on (NaN when none). The caller
   * still disposes the sums.
   */
  async endEpoch(
    lossSum: tf.Tensor,
    correctSum: tf.Tensor,
    examples: number,
    epoch: number,
    epochs: number,
    batches: number,
  ): Promise<TrainMetrics> {
    const [loss, correct] = await Promise.all([lossSum.data(), correctSum.data()]);
    this.checkAbort();
    this.hooks.onProgress?.({ epoch: epoch + 1, epochs, batch: batches, batches, fraction: (epoch + 1) / epochs });
    return examples > 0 ? { loss: loss[0]! / examples, accuracy: correct[0]! / examples } : { loss: NaN, accuracy: NaN };
  }

  /** Throws TrainingAborted when the caller asked to stop; called after every await. */
  private checkAbort(): void {
    if (this.hooks.shouldAbort?.()) throw new TrainingAborted();
  }
}

/** FedProx's proximal term for a round: μ and the global weights it pulls towards, in `model.weights` order. */
interface ProximalTerm {
  readonly mu: number;
  readonly anchors: readonly tf.Tensor[];
}

/**
 * Local training for one participant: the data lives on the backend as
 * tensors for the trainer's lifetime, the model is built once, and each round
 * overwrites its weights, trains with plain SGD and returns the weight delta.
 * Everything a round allocates is disposed before it returns, so the tensor
 * count is the same after every round.
 */
export class LocalTrainer {
  readonly numExamples: number;
  private readonly model: tf.LayersModel;
  private readonly variables: tf.Variable[];
  private readonly xs: tf.Tensor2D;
  private readonly ys: tf.Tensor2D;

  constructor(spec: ModelSpec, data: Dataset) {
    checkDataFitsModel(spec, data);
    this.numExamples = data.count;
    this.model = buildModel(spec);
    this.variables = trainableVariables(this.model);
    ({ xs: this.xs, ys: this.ys } = toDataTensors(data, spec.numClasses));
  }

  /** Trains from `globalWeights` as `config` says and returns the update. */
  async train(globalWeights: Float32Array, config: FitConfig, hooks: TrainHooks = {}): Promise<TrainResult> {
    const started = performance.now();
    writeWeights(this.model, globalWeights);
    const proximal = this.proximalAnchor(globalWeights, config.proximalMu);
    const optimizer = tf.train.sgd(config.learningRate);
    const n = this.numExamples;
    const batchSize = Math.max(1, Math.min(config.batchSize, n));
    const batchesPerEpoch = Math.ceil(n / batchSize);
    const totalBatches = batchesPerEpoch * config.epochs;
    let metrics: TrainMetrics = { loss: NaN, accuracy: NaN };
    const pacer = new TrainingPacer(hooks);
    try {
      for (let epoch = 0; epoch < config.epochs; epoch++) {
        const order = tf.util.createShuffledIndices(n);
        let lossSum = tf.scalar(0);
        let correctSum = tf.scalar(0);
        try {
          for (let b = 0; b < batchesPerEpoch; b++) {
            const indices = order.subarray(b * batchSize, Math.min(n, (b + 1) * batchSize));
            const [nextLoss, nextCorrect] = this.step(optimizer, indices, lossSum, correctSum, proximal);
            lossSum.dispose();
            correctSum.dispose();
            lossSum = nextLoss;
            correctSum = nextCorrect;
            await pacer.afterStep(lossSum, () => ({
              epoch,
              epochs: config.epochs,
              batch: b + 1,
              batches: batchesPerEpoch,
              fraction: (epoch * batchesPerEpoch + b + 1) / totalBatches,
            }));
          }
          metrics = await pacer.endEpoch(lossSum, correctSum, n, epoch, config.epochs, batchesPerEpoch);
        } finally {
          lossSum.dispose();
          correctSum.dispose();
        }
      }
      const trained = await readWeights(this.model);
      for (let i = 0; i < trained.length; i++) trained[i]! -= globalWeights[i]!;
      return { update: trained, metrics, numExamples: n, trainMs: performance.now() - started };
    } finally {
      optimizer.dispose();
      if (proximal) for (const anchor of proximal.anchors) anchor.dispose();
    }
  }

  /**
   * FedProx: with μ > 0, the round's global weights as constant tensors (one
   * per model weight, created once per round; the caller disposes them).
   * Undefined otherwise, and training is then exactly the plain one.
   */
  private proximalAnchor(globalWeights: Float32Array, mu: number | undefined): ProximalTerm | undefined {
    if (mu === undefined || mu === 0) return undefined;
    if (!(mu > 0) || !Number.isFinite(mu)) throw new RangeError(`proximalMu must be a finite number >= 0, got ${mu}`);
    const anchors: tf.Tensor[] = [];
    let offset = 0;
    for (const w of this.model.weights) {
      const size = w.shape.reduce((a: number, b) => a * (b ?? 1), 1);
      anchors.push(tf.tensor(globalWeights.subarray(offset, offset + size), w.shape as number[], 'float32'));
      offset += size;
    }
    return { mu, anchors };
  }

  /** One SGD step on a batch; returns the running loss and correct-count sums (summed over examples). */
  private step(
    optimizer: tf.Optimizer,
    indices: Int32Array | Uint32Array,
    lossSum: tf.Scalar,
    correctSum: tf.Scalar,
    proximal?: ProximalTerm,
  ): [tf.Scalar, tf.Scalar] {
    let correct: tf.Scalar | undefined;
    // With a proximal term: the data loss alone, which the metrics report.
    let dataLoss: tf.Scalar | undefined;
    try {
      return tf.tidy(() => {
        const idx = tf.tensor1d(Int32Array.from(indices), 'int32');
        const x = tf.gather(this.xs, idx);
        const y = tf.gather(this.ys, idx);
        // Only the trainable variables: without a list, tfjs also steps layers marked `trainable: false`.
        const meanLoss = optimizer.minimize(
          () => {
            const logits = this.model.apply(x, { training: true }) as tf.Tensor;
            // Kept: the gradient scope disposes everything but the loss when it closes.
            correct = tf.keep(tf.equal(tf.argMax(logits, 1), tf.argMax(y, 1)).sum());
            if (!proximal) return tf.losses.softmaxCrossEntropy(y, logits) as tf.Scalar;
            dataLoss = tf.keep(tf.losses.softmaxCrossEntropy(y, logits) as tf.Scalar);
            // (μ/2)·‖w − w_global‖² over every weight of the model.
            const weights = this.model.weights;
            const squares = weights.map((w, i) => tf.sum(tf.squaredDifference(w.read(), proximal.anchors[i]!)));
            return tf.add(dataLoss, tf.mul(tf.addN(squares), proximal.mu / 2)) as tf.Scalar;
          },
          true,
          this.variables,
        ) as tf.Scalar;
        return [lossSum.add((dataLoss ?? meanLoss).mul(indices.length)), correctSum.add(correct!)] as [tf.Scalar, tf.Scalar];
      });
    } finally {
      correct?.dispose();
      dataLoss?.dispose();
    }
  }

  dispose(): void {
    this.model.dispose();
    this.xs.dispose();
    this.ys.dispose();
  }
}
