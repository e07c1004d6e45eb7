import * as tf from '@tensorflow/tfjs';
import { buildModel } from '../../core/model/architectures.ts';
import { dpSgdStep } from '../../core/privacy/dp-sgd.ts';
import { GaussianSampler } from '../../core/privacy/update-privacy.ts';
import type { ModelSpec } from '../../core/protocol/messages.ts';

/**
 * Times real training steps of the task's own model on synthetic data of the
 * task's shape, on the backend that is active now. Plain tasks take SGD steps
 * (`optimizer.minimize` of the softmax cross-entropy, as LocalTrainer does);
 * DP-SGD tasks take `dpSgdStep`s, whose per-example gradients and noise cost
 * differently per backend.
 *
 * GPU backends queue work asynchronously, so steps are timed in doubling
 * groups (1, 2, 4, … steps) each ended by reading the last trained weight,
 * which waits for everything queued; the rate is that of the last group.
 * Groups stop as soon as one lasts ENOUGH_GROUP_MS, another would overrun
 * the deadline, or the rate is clearly below the one to beat.
 */

export interface MeasureJob {
  readonly model: ModelSpec;
  readonly batchSize: number;
  /** Time DP-SGD steps instead of plain SGD steps. */
  readonly dp: boolean;
}

export interface MeasureLimits {
  /** Stop by this time (performance.now() clock, ms), the warm-up step included where possible. */
  readonly deadline: number;
  /** Stop as soon as the rate is clearly below this (examples/s): another backend is far ahead. */
  readonly beatRate?: number;
}

export interface Measured {
  readonly examplesPerSecond: number;
  readonly steps: number;
  /** The first step and its read-back: kernel compilation, shader compilation, first uploads. */
  readonly warmupMs: number;
  readonly ms: number;
  /** Stopped early because another backend was clearly ahead. */
  readonly behind: boolean;
  /** Not even the warm-up step finished within the budget: `examplesPerSecond` is then an upper bound. */
  readonly unfinished: boolean;
}

/** "Clearly ahead": a backend whose measured rate is below this fraction of the best one stops being measured. */
export const CLEARLY_BEHIND = 0.5;
/** A group of steps this long times the rate well enough to rank backends; longer groups only spend the budget. */
export const ENOUGH_GROUP_MS = 80;
/** At most this many timed steps, however short they are. */
const MAX_STEPS = 32;

const now = () => performance.now();

export async function measureActiveBackend(job: MeasureJob, limits: MeasureLimits): Promise<Measured> {
  const started = now();
  const { deadline } = limits;
  const { model: spec, batchSize } = job;
  const model = buildModel(spec, 1);
  const x = tf.randomUniform([batchSize, ...spec.inputShape], 0, 1, 'float32');
  const y = tf.tidy(() => tf.oneHot(tf.randomUniform([batchSize], 0, spec.numClasses, 'int32'), spec.numClasses).toFloat());
  const optimizer = tf.train.sgd(0.01);
  const sampler = new GaussianSampler();
  const dpParams = { clipNorm: 1, noiseMultiplier: 1, expectedBatchSize: batchSize, learningRate: 0.01 };
  const weights = model.trainableWeights;
  const last = weights[weights.length - 1]!;
  const step = () => {
    if (job.dp) {
      const stats = dpSgdStep(model, { x, y }, dpParams, sampler);
      if (stats) tf.dispose([stats.lossSum, stats.correct]);
    } else {
      tf.tidy(() => {
        optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar);
      });
    }
  };
  const sync = async () => {
    await last.read().data();
  };
  const dispose = () => {
    model.dispose();
    optimizer.dispose();
    tf.dispose([x, y]);
  };
  let deferred = false;
  try {
    step();
    const pending = sync();
    if (limits.beatRate !== undefined) {
      // A software GPU can take many seconds to compile its first step; with a rate to beat, do not wait for it.
      const timeLeft = Math.max(0, deadline - now());
      const timedOut = await Promise.race([
        pending.then(() => false),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(true), timeLeft)),
      ]);
      if (timedOut) {
        const ms = now() - started;
        // The queued work still runs; its tensors are freed once it has.
        deferred = true;
        pending.then(dispose, dispose);
        return { examplesPerSecond: (batchSize * 1000) / ms, steps: 0, warmupMs: ms, ms, behind: true, unfinished: true };
      }
    } else {
      await pending;
    }
    const warmupMs = now() - started;
    let steps = 0;
    let rate = 0;
    let behind = false;
    for (let group = 1; ; group *= 2) {
      const groupStart = now();
      for (let i = 0; i < group; i++) step();
      await sync();
      const ms = now() - groupStart;
      steps += group;
      rate = (group * batchSize * 1000) / ms;
      if (limits.beatRate !== undefined && rate < CLEARLY_BEHIND * limits.beatRate) {
        behind = true;
        break;
      }
      // Another group twice as long must fit before the deadline; one long enough group is enough to rank.
      if (ms >= ENOUGH_GROUP_MS || now() + 2 * ms > deadline || steps + 2 * group > MAX_STEPS) break;
    }
    return { examplesPerSecond: rate, steps, warmupMs, ms: now() - started, behind, unfinished: false };
  } finally {
    if (!deferred) dispose();
  }
}
