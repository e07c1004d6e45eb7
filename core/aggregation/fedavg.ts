import {
  contributionWeight,
  type ClientResult,
  type RoundAggregator,
  type RoundContext,
  type Strategy,
  type StrategyTraits,
} from './strategy.ts';
import type { FitConfig } from '../protocol/messages.ts';
import { checkPartial, type PartialAggregate } from './partial.ts';
import { floatKernels, type Float64Sum } from '../math/float-kernels.ts';

export interface FedAvgOptions {
  /** Scales the averaged update before it is applied (1 = plain FedAvg). */
  readonly serverLearningRate?: number;
  /**
   * Multiplies the server learning rate by this factor every round after the
   * first (round t applies serverLearningRate × decay^(t−1)); 1 = constant.
   * A function of the round number only: nothing to checkpoint.
   */
  readonly serverLearningRateDecay?: number;
}

/**
 * FedAvg (McMahan et al. 2017): the new global model is the old one plus the
 * average of the updates weighted by each participant's example count.
 * Computed as a running weighted sum in float64, so memory is O(model size)
 * however many participants report, and the sum does not lose precision.
 */
export class FedAvg implements Strategy {
  readonly name = 'fedavg';
  readonly traits: StrategyTraits = { input: 'sum', participation: 'shown', selection: 'engine', basis: 'any' };
  private readonly serverLearningRate: number;
  private readonly decay: number;

  constructor(options: FedAvgOptions = {}) {
    this.serverLearningRate = options.serverLearningRate ?? 1;
    if (!(this.serverLearningRate > 0)) throw new RangeError('serverLearningRate must be positive');
    this.decay = options.serverLearningRateDecay ?? 1;
    if (!(this.decay > 0 && this.decay <= 1)) throw new RangeError(`serverLearningRateDecay must be in (0, 1], got ${this.decay}`);
  }

  /** The server learning rate round `round` applies. */
  learningRateFor(round: number): number {
    return this.serverLearningRate * this.decay ** Math.max(0, round - 1);
  }

  configureFit(_round: number, base: FitConfig): FitConfig {
    return base;
  }

  beginRound(context: RoundContext): RoundAggregator {
    return new WeightedSum(context.globalWeights, this.learningRateFor(context.round));
  }
}

/** Streaming weighted mean of updates, applied to the global weights on finish. */
export class WeightedSum implements RoundAggregator {
  private readonly accumulator: Float64Sum;
  private totalWeight = 0;
  private added = 0;

  constructor(
    private readonly globalWeights: Float32Array,
    private readonly serverLearningRate = 1,
  ) {
    this.accumulator = floatKernels().float64Sum(globalWeights.length);
  }

  private get sum(): Float64Array {
    return this.accumulator.values;
  }

  get count(): number {
    return this.added;
  }

  add(result: ClientResult): void {
    const { update, numExamples } = result;
    if (update.length !== this.sum.length) {
      throw new RangeError(`update has ${update.length} values, the model has ${this.sum.length}`);
    }
    if (!(numExamples > 0)) throw new RangeError('numExamples must be positive');
    // A staleness weight scales the update, not its share of the example total: stale buffers move the model less.
    // The coordinator's hottest loop (one model-sized multiply-add per update): float-kernels.ts.
    this.accumulator.addScaled(update, numExamples * contributionWeight(result));
    this.totalWeight += numExamples;
    this.added++;
  }

  /** A sum of `count` updates, each with weight 1 (secure aggregation hides example counts). */
  addSum(sum: Float64Array, count: number): void {
    if (sum.length !== this.sum.length) throw new RangeError(`sum has ${sum.length} values, the model has ${this.sum.length}`);
    if (!(count > 0)) throw new RangeError('count must be positive');
    for (let i = 0; i < this.sum.length; i++) this.sum[i]! += sum[i]!;
    this.totalWeight += count;
    this.added += count;
  }

  partial(): PartialAggregate {
    return { sum: this.sum.slice(), weight: this.totalWeight, count: this.added, withinClip: 0 };
  }

  addPartial(partial: PartialAggregate): void {
    checkPartial(partial, this.sum.length);
    for (let i = 0; i < this.sum.length; i++) this.sum[i]! += partial.sum[i]!;
    this.totalWeight += partial.weight;
    this.added += partial.count;
  }

  finish(): Float32Array | null {
    if (this.added === 0) return null;
    const scale = this.serverLearningRate / this.totalWeight;
    const out = new Float32Array(this.sum.length);
    for (let i = 0; i < out.length; i++) out[i] = this.globalWeights[i]! + scale * this.sum[i]!;
    return out;
  }
}
