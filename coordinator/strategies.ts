import { DpFedAvg, type DpFedAvgOptions } from '../core/aggregation/dp-fedavg.ts';
import { FedAvg } from '../core/aggregation/fedavg.ts';
import { FedProx } from '../core/aggregation/fedprox.ts';
import { NormBoundedStrategy } from '../core/aggregation/norm-bound.ts';
import { CoordinateMedian, Krum, TrimmedMean } from '../core/aggregation/robust.ts';
import { ServerOptimizer, SERVER_OPTIMIZER_DEFAULTS } from '../core/aggregation/server-optimizers.ts';
import type { Strategy } from '../core/aggregation/strategy.ts';
import type { CoordinatorConfig } from './coordinator-config.ts';
import { BYZANTINE, PROXIMAL_MU, ROBUST_STRATEGIES, TRIM_FRACTION, type StrategyConfig } from './options/strategy.ts';
import { withPoisoningDefences } from './poisoning.ts';

/**
 * From the coordinator's configuration to the aggregation strategy: the rule
 * that `--strategy` names (read and checked in options/strategy.ts) with its
 * parameters, and the update-norm bound around it. `buildStrategy` is all
 * server.ts calls.
 */

export type { StrategyConfig } from './options/strategy.ts';

/** The strategy the coordinator runs for `config`. */
export function buildStrategy(config: Pick<CoordinatorConfig, 'strategy' | 'clientDp' | 'poisoning' | 'settings'>): Strategy {
  const choice: StrategyConfig = config.strategy ?? { name: 'fedavg' };
  const clientDp = config.clientDp;
  const rate = choice.serverLearningRate;
  const robust = { serverLearningRate: rate };
  /** FedAvg, or DP-FedAvg when client-level DP is on, applying the update with learning rate `lr`. */
  const weightedMean = (lr: number | undefined): Strategy =>
    clientDp ? new DpFedAvg(withRate(clientDp, lr)) : new FedAvg({ serverLearningRate: lr });
  if (clientDp && ROBUST_STRATEGIES.includes(choice.name)) throw new RangeError(`${choice.name} cannot run with client-level DP`);
  let strategy: Strategy;
  switch (choice.name) {
    case 'fedavg':
      strategy = clientDp
        ? weightedMean(rate)
        : new FedAvg({ serverLearningRate: rate, serverLearningRateDecay: choice.serverLearningRateDecay });
      break;
    case 'median':
      strategy = new CoordinateMedian(robust);
      break;
    case 'trimmed-mean':
      strategy = new TrimmedMean({ ...robust, trimFraction: choice.trimFraction ?? TRIM_FRACTION.default });
      break;
    case 'krum':
      strategy = new Krum({ ...robust, byzantine: choice.byzantine ?? BYZANTINE.default });
      break;
    case 'multi-krum':
      strategy = new Krum({ ...robust, byzantine: choice.byzantine ?? BYZANTINE.default, multi: choice.multiKrum, multiKrum: true });
      break;
    case 'fedprox':
      strategy = new FedProx({ proximalMu: choice.proximalMu ?? PROXIMAL_MU.default, base: weightedMean(rate) });
      break;
    case 'fedadam':
    case 'fedyogi':
      // The base applies the plain mean (rate 1): its result minus the global weights is the pseudo-gradient.
      strategy = new ServerOptimizer(choice.name === 'fedadam' ? 'adam' : 'yogi', {
        learningRate: rate ?? SERVER_OPTIMIZER_DEFAULTS.learningRate,
        base: clientDp ? weightedMean(undefined) : undefined,
      });
      break;
    default:
      throw new RangeError(`unknown strategy "${String((choice as { name: unknown }).name)}"`);
  }
  strategy = withPoisoningDefences(strategy, config);
  return choice.maxUpdateNorm === undefined ? strategy : new NormBoundedStrategy(strategy, choice.maxUpdateNorm);
}

function withRate(options: DpFedAvgOptions, serverLearningRate: number | undefined): DpFedAvgOptions {
  return serverLearningRate === undefined ? options : { ...options, serverLearningRate };
}
