import { ClaimCappedStrategy, DEFAULT_CLAIM_CAP_MULTIPLE } from '../core/aggregation/claim-cap.ts';
import { DpFedAvg, type DpFedAvgOptions } from '../core/aggregation/dp-fedavg.ts';
import { FedAvg } from '../core/aggregation/fedavg.ts';
import { FedProx } from '../core/aggregation/fedprox.ts';
import { NormBoundedStrategy } from '../core/aggregation/norm-bound.ts';
import { DEFAULT_OUTLIER_BOUND, OutlierBoundedStrategy } from '../core/aggregation/outlier-bound.ts';
import { CoordinateMedian, Krum, TrimmedMean } from '../core/aggregation/robust.ts';
import { ServerOptimizer, SERVER_OPTIMIZER_DEFAULTS } from '../core/aggregation/server-optimizers.ts';
import type { Strategy, StrategyTraits } from '../core/aggregation/strategy.ts';
import type { RoundSettings } from '../core/protocol/status.ts';
import { BYZANTINE, PROXIMAL_MU, TRIM_FRACTION, type PoisoningConfig, type StrategyConfig } from './options/strategy.ts';

/**
 * From the coordinator's configuration to the aggregation strategy: the rule
 * that `--strategy` names (read and checked in options/strategy.ts) with its
 * parameters, and the update-norm bound around it. `buildStrategy` is all
 * server.ts calls.
 */

export type { StrategyConfig } from './options/strategy.ts';

/** What the strategy is built from: the parts of the coordinator's configuration (coordinator-config.ts) it reads. */
export interface StrategyChoice {
  readonly strategy?: StrategyConfig;
  readonly clientDp?: DpFedAvgOptions;
  readonly poisoning?: PoisoningConfig;
  readonly settings: RoundSettings;
}

/** The strategy the coordinator runs for `config`: the rule, the poisoning defences around it, then a fixed norm bound. */
export function buildStrategy(config: StrategyChoice): Strategy {
  const choice: StrategyConfig = config.strategy ?? { name: 'fedavg' };
  if (config.clientDp && ruleTraits(choice).input === 'individual') throw new RangeError(`${choice.name} cannot run with client-level DP`);
  const strategy = withPoisoningDefences(buildRule(choice, config.clientDp), config);
  return choice.maxUpdateNorm === undefined ? strategy : new NormBoundedStrategy(strategy, choice.maxUpdateNorm);
}

/**
 * The traits of the rule `choice` names, read from the rule itself: the
 * options' compatibility rules (secure aggregation, client-level DP) derive
 * from these, never from a list of names.
 */
export function ruleTraits(choice: StrategyConfig): StrategyTraits {
  return buildRule(choice, undefined).traits;
}

/** The aggregation rule `--strategy` names, with its parameters (DP-FedAvg as the weighted mean under client-level DP). */
function buildRule(choice: StrategyConfig, clientDp: DpFedAvgOptions | undefined): Strategy {
  const rate = choice.serverLearningRate;
  const robust = { serverLearningRate: rate };
  /** FedAvg, or DP-FedAvg when client-level DP is on, applying the update with learning rate `lr`. */
  const weightedMean = (lr: number | undefined): Strategy =>
    clientDp ? new DpFedAvg(withRate(clientDp, lr)) : new FedAvg({ serverLearningRate: lr });
  switch (choice.name) {
    case 'fedavg':
      // Server momentum steps on the plain mean (rate 1), as FedAdam/FedYogi do.
      if (choice.serverMomentum !== undefined) {
        return new ServerOptimizer('momentum', {
          learningRate: rate ?? 1,
          beta1: choice.serverMomentum,
          base: clientDp ? weightedMean(undefined) : undefined,
        });
      }
      return clientDp
        ? weightedMean(rate)
        : new FedAvg({ serverLearningRate: rate, serverLearningRateDecay: choice.serverLearningRateDecay });
    case 'median':
      return new CoordinateMedian(robust);
    case 'trimmed-mean':
      return new TrimmedMean({ ...robust, trimFraction: choice.trimFraction ?? TRIM_FRACTION.default });
    case 'krum':
      return new Krum({ ...robust, byzantine: choice.byzantine ?? BYZANTINE.default });
    case 'multi-krum':
      return new Krum({ ...robust, byzantine: choice.byzantine ?? BYZANTINE.default, multi: choice.multiKrum, multiKrum: true });
    case 'fedprox':
      return new FedProx({ proximalMu: choice.proximalMu ?? PROXIMAL_MU.default, base: weightedMean(rate) });
    case 'fedadam':
    case 'fedyogi':
      // The base applies the plain mean (rate 1): its result minus the global weights is the pseudo-gradient.
      return new ServerOptimizer(choice.name === 'fedadam' ? 'adam' : 'yogi', {
        learningRate: rate ?? SERVER_OPTIMIZER_DEFAULTS.learningRate,
        base: clientDp ? weightedMean(undefined) : undefined,
      });
    default:
      throw new RangeError(`unknown strategy "${String((choice as { name: unknown }).name)}"`);
  }
}

/** What a configuration without the poisoning flags gets (docs/poisoning.md says why). */
export const DEFAULT_POISONING: PoisoningConfig = {
  outlierNormMultiple: DEFAULT_OUTLIER_BOUND.multiple,
  claimCapMultiple: DEFAULT_CLAIM_CAP_MULTIPLE,
};

/**
 * The poisoning defences around a strategy (docs/poisoning.md): the claimed
 * example count capped, and outlier updates refused. Only where the
 * coordinator sees each update: under client-level DP and secure aggregation
 * the clipping bounds every update, and the secure sum is range-checked.
 */
export function withPoisoningDefences(strategy: Strategy, config: Pick<StrategyChoice, 'poisoning' | 'settings'>): Strategy {
  // Individual norms are hidden under client-level DP (private participation) and secure aggregation.
  if (strategy.traits.participation === 'private' || config.settings.secureAggregation) return strategy;
  const { outlierNormMultiple, claimCapMultiple, maxClaimedExamples } = config.poisoning ?? DEFAULT_POISONING;
  let guarded = strategy;
  if (claimCapMultiple > 0 || maxClaimedExamples !== undefined) {
    guarded = new ClaimCappedStrategy(guarded, {
      multiple: claimCapMultiple > 0 ? claimCapMultiple : undefined,
      maxPerParticipant: maxClaimedExamples,
    });
  }
  if (outlierNormMultiple > 0) guarded = new OutlierBoundedStrategy(guarded, { ...DEFAULT_OUTLIER_BOUND, multiple: outlierNormMultiple });
  return guarded;
}

function withRate(options: DpFedAvgOptions, serverLearningRate: number | undefined): DpFedAvgOptions {
  return serverLearningRate === undefined ? options : { ...options, serverLearningRate };
}
