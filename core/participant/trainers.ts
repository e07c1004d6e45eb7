import type { SampledGaussianSteps } from '../privacy/accountant.ts';
import { dpSgdSchedule, type DpSgdTrainer } from '../privacy/dp-sgd.ts';
import type { FitConfig } from '../protocol/messages.ts';
import type { LocalTrainer, TrainHooks, TrainResult } from '../training/local-trainer.ts';

/** What a round's training returns, with what it spent of the participant's privacy when it ran DP-SGD. */
export interface RoundTrainResult extends TrainResult {
  readonly privacySpent?: SampledGaussianSteps;
}

/** Whatever trains locally for a round. */
export interface RoundTrainer {
  readonly numExamples: number;
  /** True when the trainer runs DP-SGD (a round with `sampleDp` needs one). */
  readonly differentiallyPrivate: boolean;
  train(globalWeights: Float32Array, config: FitConfig, hooks?: TrainHooks): Promise<RoundTrainResult>;
  /** The DP-SGD steps a round with this config will run, to check the budget before training. */
  plannedPrivacySteps?(config: FitConfig): SampledGaussianSteps | undefined;
}

export class PlainRoundTrainer implements RoundTrainer {
  readonly differentiallyPrivate = false;
  constructor(private readonly trainer: LocalTrainer) {}
  get numExamples(): number {
    return this.trainer.numExamples;
  }
  train(globalWeights: Float32Array, config: FitConfig, hooks?: TrainHooks): Promise<RoundTrainResult> {
    return this.trainer.train(globalWeights, config, hooks);
  }
}

export class DpSgdRoundTrainer implements RoundTrainer {
  readonly differentiallyPrivate = true;
  constructor(private readonly trainer: DpSgdTrainer) {}

  get numExamples(): number {
    return this.trainer.numExamples;
  }

  plannedPrivacySteps(config: FitConfig): SampledGaussianSteps | undefined {
    const dp = config.sampleDp;
    if (!dp) return undefined;
    const { samplingRate, steps } = dpSgdSchedule(this.trainer.numExamples, dp.expectedBatchSize, config.epochs);
    return { sampleRate: samplingRate, noiseMultiplier: dp.noiseMultiplier, steps };
  }

  async train(globalWeights: Float32Array, config: FitConfig, hooks?: TrainHooks): Promise<RoundTrainResult> {
    const dp = config.sampleDp;
    if (!dp) throw new Error('this participant trains with DP-SGD, but the round carries no DP-SGD settings');
    const result = await this.trainer.train(globalWeights, config, hooks, {
      clipNorm: dp.clipNorm,
      noiseMultiplier: dp.noiseMultiplier,
      expectedBatchSize: dp.expectedBatchSize,
    });
    return { ...result, privacySpent: { sampleRate: result.samplingRate, noiseMultiplier: result.noiseMultiplier, steps: result.steps } };
  }
}
