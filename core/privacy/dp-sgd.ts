import * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../data/dataset.ts';
import { buildModel } from '../model/architectures.ts';
import { readWeights, writeWeights } from '../model/weights.ts';
import type { FitConfig, ModelSpec, TrainMetrics } from '../protocol/messages.ts';
import { SecureRandom, type UniformSource } from '../random/prng.ts';
import { TrainingPacer, type TrainHooks, type TrainResult } from '../training/local-trainer.ts';
import { clippedGradientSum, disposeClippedSum, resolvePath, type GradientPath, type PathChoice } from './per-example-gradients.ts';
import { GaussianSampler } from './update-privacy.ts';
import { dpSgdGrid, roundedGaussianNoise, type GridNoisePlan } from './grid-noise.ts';
import { checkDataFitsModel, toDataTensors } from '../training/data-tensors.ts';

/**
 * Sample-level DP-SGD for local training (Abadi et al. 2016): each step
 * Poisson-samples a batch (every example independently with probability
 * q = B / n), clips each example's gradient to L2 norm C, sums, adds
 * N(0, σ²C²) to every coordinate, divides by the expected batch size B and
 * takes a plain SGD step. The accountant (./accountant.ts) is charged with
 * `steps` steps of the Poisson-subsampled Gaussian mechanism at rate
 * `samplingRate` and noise multiplier σ, only once a round's update is
 * actually released.
 */

export interface DpSgdSettings {
  /** C: the L2 bound on each example's gradient. */
  readonly clipNorm: number;
  /** σ: the noise std on the clipped sum is σ·C (a standard deviation, not a variance). */
  readonly noiseMultiplier: number;
  /** B: the expected batch size; q = B / n. Defaults to the round's FitConfig.batchSize. */
  readonly expectedBatchSize?: number;
}

export interface DpSgdOptions extends DpSgdSettings {
  /** Uniforms for Poisson sampling (default: the platform CSPRNG). Inject a SeededRandom only in tests. */
  readonly samplingSource?: UniformSource;
  /** Uniforms behind the Gaussian noise (default: the platform CSPRNG). Inject a SeededRandom only in tests. */
  readonly noiseSource?: UniformSource;
  /** Per-example gradient path; 'auto' (default) takes the vectorised one when the model allows it. */
  readonly path?: PathChoice;
}

export interface DpSgdResult extends TrainResult {
  /** DP-SGD steps actually executed: what the accountant must be charged. */
  readonly steps: number;
  /** q, the Poisson sampling rate used (B / n after capping B at n). */
  readonly samplingRate: number;
  readonly expectedBatchSize: number;
  readonly noiseMultiplier: number;
  readonly clipNorm: number;
  readonly path: GradientPath;
}

/**
 * Poisson sampling: each of the n examples independently with probability q,
 * drawn in index order from `random` (one uniform per example, u < q selects).
 */
export function poissonSample(n: number, q: number, random: UniformSource): Int32Array {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`sampling rate must lie in [0, 1], got ${q}`);
  const picked = new Int32Array(n);
  let count = 0;
  for (let i = 0; i < n; i++) if (random.next() < q) picked[count++] = i;
  return picked.slice(0, count);
}

/**
 * Steps per epoch: round(n / B) = round(1 / q), at least 1. An "epoch" then
 * visits n examples in expectation (round(1/q) · q · n ≈ n); rounding rather
 * than ceil keeps that expectation closest to n. This count, times the
 * epochs, is what the accountant is charged (via DpSgdResult.steps).
 */
export function dpStepsPerEpoch(n: number, expectedBatchSize: number): number {
  return Math.max(1, Math.round(n / expectedBatchSize));
}

/** A DP-SGD round's Poisson-sampling schedule: what it trains with and what the accountant is charged. */
export interface DpSgdSchedule {
  /** B, capped at n. */
  readonly expectedBatchSize: number;
  /** q = B / n. */
  readonly samplingRate: number;
  readonly stepsPerEpoch: number;
  /** Steps in the round: epochs × stepsPerEpoch. */
  readonly steps: number;
}

/**
 * The schedule of `epochs` epochs over n examples at expected batch size B.
 * The one place it is computed, so the budget check before a round
 * (participant/trainers.ts) plans exactly the steps the round runs.
 */
export function dpSgdSchedule(n: number, requestedBatchSize: number, epochs: number): DpSgdSchedule {
  if (!(requestedBatchSize > 0)) throw new RangeError(`expected batch size must be positive, got ${requestedBatchSize}`);
  // q cannot exceed 1: a shard smaller than B is trained on full batches (q = 1, no amplification).
  const expectedBatchSize = Math.min(requestedBatchSize, n);
  const stepsPerEpoch = dpStepsPerEpoch(n, expectedBatchSize);
  return { expectedBatchSize, samplingRate: expectedBatchSize / n, stepsPerEpoch, steps: stepsPerEpoch * epochs };
}

/**
 * The clipped sums plus float-safe Gaussian noise of std ≥ σC per coordinate,
 * as new tensors (./grid-noise.ts): the sums are snapped to the grid
 * γ = C/G and clamped, integer noise round(σ(G + √d)·N(0,1)) is added exactly
 * in float32 (all magnitudes below 2^24), and only the integer result is
 * scaled back by γ. The accountant is charged σ unchanged: the noise covers the
 * grid's extra sensitivity. The noise comes from `sampler` (CSPRNG-backed by
 * default), generated in JS and uploaded: tf.randomNormal's seedable
 * generator is not cryptographic. σ = 0 returns the sums untouched.
 */
export function noisyGradientSum(
  sums: readonly tf.Tensor[],
  clipNorm: number,
  noiseMultiplier: number,
  expectedBatchSize: number,
  sampler: GaussianSampler,
): tf.Tensor[] {
  if (!(noiseMultiplier >= 0) || !Number.isFinite(noiseMultiplier))
    throw new RangeError(`noise multiplier must be finite and >= 0, got ${noiseMultiplier}`);
  if (noiseMultiplier === 0) return sums.map((sum) => tf.clone(sum));
  const dimension = sums.reduce((total, sum) => total + sum.size, 0);
  const plan = dpSgdGrid(clipNorm, noiseMultiplier, dimension, expectedBatchSize);
  return sums.map((sum) => addGridNoise(sum, plan, roundedGaussianNoise(sum.size, plan, sampler)));
}

/**
 * (clamp(round(sum/γ), ±centreBound) + noise)·γ on the backend. `noise` holds
 * integers with |noise| ≤ plan.noiseBound; the integer addition is exact in
 * float32 because centreBound + noiseBound < 2^24. Exported for the exact
 * reachability test, which feeds it chosen noise values.
 */
export function addGridNoise(sum: tf.Tensor, plan: GridNoisePlan, noise: Float32Array): tf.Tensor {
  if (noise.length !== sum.size) throw new RangeError(`noise has ${noise.length} values, the sum ${sum.size}`);
  return tf.tidy(() => {
    const centre = tf.clipByValue(tf.round(tf.mul(sum, 1 / plan.step)), -plan.centreBound, plan.centreBound);
    return tf.mul(tf.add(centre, tf.tensor(noise, sum.shape, 'float32')), plan.step);
  });
}

export interface DpStepParams {
  readonly clipNorm: number;
  readonly noiseMultiplier: number;
  readonly expectedBatchSize: number;
  readonly learningRate: number;
  readonly path?: PathChoice;
}

/** The batch's summed loss and correct count (for metrics), or null for an empty batch. */
export interface DpStepStats {
  readonly lossSum: tf.Scalar;
  readonly correct: tf.Scalar;
}

/**
 * One DP-SGD step on `model`'s trainable weights, in place:
 *   w ← w − lr · (Σ_i clip_C(∇L_i) + N(0, σ²C² I)) / B,
 * the noise float-safe on a grid (see noisyGradientSum).
 * `batch` null (an empty Poisson batch) still adds the noise: the accountant
 * assumes every step releases a noised sum. The caller disposes the returned stats.
 */
export function dpSgdStep(
  model: tf.LayersModel,
  batch: { readonly x: tf.Tensor; readonly y: tf.Tensor } | null,
  params: DpStepParams,
  sampler: GaussianSampler,
): DpStepStats | null {
  if (!(params.expectedBatchSize > 0)) throw new RangeError(`expected batch size must be positive, got ${params.expectedBatchSize}`);
  if (!(params.noiseMultiplier >= 0) || !Number.isFinite(params.noiseMultiplier))
    throw new RangeError(`noise multiplier must be finite and >= 0, got ${params.noiseMultiplier}`);
  const weights = model.trainableWeights;
  const clipped = batch === null ? null : clippedGradientSum(model, batch.x, batch.y, params.clipNorm, { path: params.path });
  let noisy: tf.Tensor[] = [];
  try {
    const sums = clipped?.sums ?? weights.map((w) => tf.zeros(w.shape as number[]));
    try {
      noisy = noisyGradientSum(sums, params.clipNorm, params.noiseMultiplier, params.expectedBatchSize, sampler);
    } finally {
      if (clipped === null) tf.dispose(sums);
    }
    const scale = params.learningRate / params.expectedBatchSize;
    tf.tidy(() => {
      weights.forEach((w, k) => {
        w.write(tf.sub(w.read(), tf.mul(noisy[k]!, scale)));
      });
    });
    if (clipped === null) return null;
    return { lossSum: tf.sum(clipped.losses) as tf.Scalar, correct: tf.clone(clipped.correct) };
  } finally {
    tf.dispose(noisy);
    if (clipped !== null) disposeClippedSum(clipped);
  }
}

/**
 * LocalTrainer's contract with DP-SGD instead of plain SGD. The data lives on
 * the backend for the trainer's lifetime; every round overwrites the model's
 * weights, trains, and returns the weight delta; everything a round allocates
 * is disposed, so the tensor count is flat across rounds.
 *
 * The returned metrics (loss and accuracy over the examples sampled in the
 * last epoch) are computed from the raw data and are NOT covered by the DP
 * guarantee; only `update` is.
 */
export class DpSgdTrainer {
  readonly numExamples: number;
  private readonly model: tf.LayersModel;
  private readonly xs: tf.Tensor2D;
  private readonly ys: tf.Tensor2D;
  private readonly inputShape: readonly number[];
  private readonly sampling: UniformSource;
  private readonly sampler: GaussianSampler;

  constructor(
    spec: ModelSpec,
    data: Dataset,
    private readonly options: DpSgdOptions,
  ) {
    checkDataFitsModel(spec, data);
    checkSettings(options);
    this.numExamples = data.count;
    this.inputShape = [...spec.inputShape];
    this.sampling = options.samplingSource ?? new SecureRandom();
    this.sampler = new GaussianSampler(options.noiseSource ?? new SecureRandom());
    this.model = buildModel(spec);
    // Fails early (before any data is uploaded) when 'fast' is forced on an unsupported model.
    resolvePath(this.model, options.path);
    ({ xs: this.xs, ys: this.ys } = toDataTensors(data, spec.numClasses));
  }

  /** Which per-example gradient path training takes. */
  get gradientPath(): GradientPath {
    return resolvePath(this.model, this.options.path);
  }

  /**
   * Trains from `globalWeights` with DP-SGD for `config.epochs` epochs at
   * `config.learningRate`. `settings` overrides the constructor's DP settings
   * for this round.
   */
  async train(
    globalWeights: Float32Array,
    config: FitConfig,
    hooks: TrainHooks = {},
    settings: Partial<DpSgdSettings> = {},
  ): Promise<DpSgdResult> {
    const started = performance.now();
    const dp = { ...this.options, ...settings };
    checkSettings(dp);
    const n = this.numExamples;
    const {
      expectedBatchSize,
      samplingRate: q,
      stepsPerEpoch,
      steps: totalSteps,
    } = dpSgdSchedule(n, dp.expectedBatchSize ?? config.batchSize, config.epochs);
    const path = resolvePath(this.model, dp.path);
    const params: DpStepParams = {
      clipNorm: dp.clipNorm,
      noiseMultiplier: dp.noiseMultiplier,
      expectedBatchSize,
      learningRate: config.learningRate,
      path,
    };
    writeWeights(this.model, globalWeights);
    let metrics: TrainMetrics = { loss: NaN, accuracy: NaN };
    let steps = 0;
    const pacer = new TrainingPacer(hooks);
    for (let epoch = 0; epoch < config.epochs; epoch++) {
      let lossSum = tf.scalar(0);
      let correctSum = tf.scalar(0);
      let sampled = 0;
      try {
        for (let s = 0; s < stepsPerEpoch; s++) {
          const indices = poissonSample(n, q, this.sampling);
          const stats = this.step(indices, params);
          steps++;
          sampled += indices.length;
          if (stats !== null) {
            const nextLoss = tf.add(lossSum, stats.lossSum) as tf.Scalar;
            const nextCorrect = tf.add(correctSum, stats.correct) as tf.Scalar;
            tf.dispose([lossSum, correctSum, stats.lossSum, stats.correct]);
            lossSum = nextLoss;
            correctSum = nextCorrect;
          }
          await pacer.afterStep(lossSum, () => ({
            epoch,
            epochs: config.epochs,
            batch: s + 1,
            batches: stepsPerEpoch,
            fraction: steps / totalSteps,
          }));
        }
        metrics = await pacer.endEpoch(lossSum, correctSum, sampled, epoch, config.epochs, stepsPerEpoch);
      } finally {
        lossSum.dispose();
        correctSum.dispose();
      }
    }
    const trained = await readWeights(this.model);
    for (let i = 0; i < trained.length; i++) trained[i]! -= globalWeights[i]!;
    return {
      update: trained,
      metrics,
      numExamples: n,
      trainMs: performance.now() - started,
      steps,
      samplingRate: q,
      expectedBatchSize,
      noiseMultiplier: dp.noiseMultiplier,
      clipNorm: dp.clipNorm,
      path,
    };
  }

  private step(indices: Int32Array, params: DpStepParams): DpStepStats | null {
    if (indices.length === 0) return dpSgdStep(this.model, null, params, this.sampler);
    const batch = tf.tidy(() => {
      const idx = tf.tensor1d(indices, 'int32');
      return { x: tf.reshape(tf.gather(this.xs, idx), [indices.length, ...this.inputShape]), y: tf.gather(this.ys, idx) };
    });
    try {
      return dpSgdStep(this.model, batch, params, this.sampler);
    } finally {
      tf.dispose([batch.x, batch.y]);
    }
  }

  dispose(): void {
    this.model.dispose();
    this.xs.dispose();
    this.ys.dispose();
  }
}

function checkSettings(s: Partial<DpSgdSettings>): void {
  if (s.clipNorm === undefined || !(s.clipNorm > 0) || !Number.isFinite(s.clipNorm))
    throw new RangeError(`clip norm must be positive and finite, got ${s.clipNorm}`);
  if (s.noiseMultiplier === undefined || !(s.noiseMultiplier >= 0) || !Number.isFinite(s.noiseMultiplier)) {
    throw new RangeError(`noise multiplier must be finite and >= 0, got ${s.noiseMultiplier}`);
  }
}
