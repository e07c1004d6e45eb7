import type { FitConfig } from '../../core/protocol/messages.ts';
import type { RoundTrainer, RoundTrainResult } from '../../core/participant/trainers.ts';
import type { TrainHooks } from '../../core/training/local-trainer.ts';

/**
 * A simulated slower device: it trains for real, then waits (factor − 1) times
 * as long as the training took, so its round takes `factor` times as long as
 * the same training on this machine. Tests and benchmarks of asynchronous
 * aggregation (docs/async.md) use it for heterogeneous device speeds.
 */
export class SlowedTrainer implements RoundTrainer {
  constructor(
    private readonly inner: RoundTrainer,
    private readonly factor: number,
  ) {
    if (!(factor >= 1)) throw new RangeError(`a slowdown factor is at least 1, got ${factor}`);
  }

  get numExamples(): number {
    return this.inner.numExamples;
  }

  get differentiallyPrivate(): boolean {
    return this.inner.differentiallyPrivate;
  }

  async train(globalWeights: Float32Array, config: FitConfig, hooks?: TrainHooks): Promise<RoundTrainResult> {
    const started = performance.now();
    const result = await this.inner.train(globalWeights, config, hooks);
    const waitMs = (this.factor - 1) * (performance.now() - started);
    await new Promise((resolve) => setTimeout(resolve, waitMs));
    return result;
  }
}
