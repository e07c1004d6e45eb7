import type { FitConfig } from '../../core/protocol/messages.ts';
import type { RoundTrainer, RoundTrainResult } from '../../core/participant/trainers.ts';
import type { TrainHooks } from '../../core/training/local-trainer.ts';

/**
 * A simulated device speed: it trains for real, then waits until the round
 * has taken `durationMs(trainedMs)` in all (no wait when the real training
 * took longer). `slowdown(f)` makes a device f times slower than this
 * machine; `fixedDuration(ms)` makes every local run take ms, whatever the
 * other in-process participants cost, so benchmarks of asynchronous
 * aggregation (docs/async.md) control their device speeds.
 */
export class SlowedTrainer implements RoundTrainer {
  constructor(
    private readonly inner: RoundTrainer,
    private readonly durationMs: (trainedMs: number) => number,
  ) {}

  /** The longest real training seen, ms: a benchmark checks it stayed below its simulated durations. */
  longestTrainingMs = 0;

  get numExamples(): number {
    return this.inner.numExamples;
  }

  get differentiallyPrivate(): boolean {
    return this.inner.differentiallyPrivate;
  }

  async train(globalWeights: Float32Array, config: FitConfig, hooks?: TrainHooks): Promise<RoundTrainResult> {
    const started = performance.now();
    const result = await this.inner.train(globalWeights, config, hooks);
    const trainedMs = performance.now() - started;
    this.longestTrainingMs = Math.max(this.longestTrainingMs, trainedMs);
    const waitMs = this.durationMs(trainedMs) - trainedMs;
    if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
    return result;
  }
}

/** A device `factor` times slower than this machine. */
export function slowdown(factor: number): (trainedMs: number) => number {
  if (!(factor >= 1)) throw new RangeError(`a slowdown factor is at least 1, got ${factor}`);
  return (trainedMs) => factor * trainedMs;
}

/** A device whose every local run takes `ms`. */
export function fixedDuration(ms: number): () => number {
  return () => ms;
}
