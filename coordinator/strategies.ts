import { DpFedAvg, type DpFedAvgOptions } from '../core/aggregation/dp-fedavg.ts';
import { FedAvg } from '../core/aggregation/fedavg.ts';
import { FedProx } from '../core/aggregation/fedprox.ts';
import { NormBoundedStrategy } from '../core/aggregation/norm-bound.ts';
import { CoordinateMedian, Krum, TrimmedMean } from '../core/aggregation/robust.ts';
import { ServerOptimizer, SERVER_OPTIMIZER_DEFAULTS } from '../core/aggregation/server-optimizers.ts';
import type { Strategy } from '../core/aggregation/strategy.ts';
import type { CoordinatorConfig } from './config.ts';
import { withPoisoningDefences } from './poisoning.ts';
import { isNonNegativeInt, isPositiveInt, numberFlag } from './flags.ts';

/**
 * From the coordinator's configuration to the aggregation strategy: which
 * rule (`--strategy`), its parameters, and the update-norm bound around it.
 * `parseStrategyFlags` checks the flags (config.ts turns its errors into
 * ConfigErrors); `buildStrategy` is all server.ts calls.
 */

export const STRATEGY_NAMES = ['fedavg', 'median', 'trimmed-mean', 'krum', 'multi-krum', 'fedprox', 'fedadam', 'fedyogi'] as const;
export type StrategyName = (typeof STRATEGY_NAMES)[number];

/** The aggregation a federation runs, as flags or a task's configuration give it. */
export interface StrategyConfig {
  readonly name: StrategyName;
  /** trimmed-mean: β, the fraction dropped at each end of every coordinate. */
  readonly trimFraction?: number;
  /** krum, multi-krum: f, the Byzantine updates tolerated per round. */
  readonly byzantine?: number;
  /** multi-krum: m, how many best-scored updates are averaged; absent: n − f. */
  readonly multiKrum?: number;
  /** fedprox: μ of the proximal term sent to participants. */
  readonly proximalMu?: number;
  /** Scales the aggregated update (default 1); fedadam/fedyogi: their η (default 0.01). */
  readonly serverLearningRate?: number;
  /** fedavg: the server learning rate is multiplied by this every round (1 = constant). */
  readonly serverLearningRateDecay?: number;
  /** Updates with a larger L2 norm are rejected with UPDATE_TOO_LARGE (never clipped). */
  readonly maxUpdateNorm?: number;
}

export const DEFAULT_TRIM_FRACTION = 0.1;
export const DEFAULT_BYZANTINE = 1;
export const DEFAULT_PROXIMAL_MU = 0.01;

const ROBUST: readonly StrategyName[] = ['median', 'trimmed-mean', 'krum', 'multi-krum'];

/** A bad flag or combination; config.ts reports it as a ConfigError. */
export class StrategyFlagError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StrategyFlagError';
  }
}

/** What the rest of the configuration says that the strategy flags must agree with. */
export interface StrategyFlagContext {
  readonly clientsPerRound: number;
  readonly minUpdates: number;
  /** --client-dp central|distributed, when set. */
  readonly clientDp?: 'central' | 'distributed';
  /** The norm participants clip their updates to (--clip-norm, or --client-clip), when they do. */
  readonly clientClipNorm?: number;
  /** DP-SGD in every participant (--dp-sgd-clip). */
  readonly sampleDp: boolean;
}

type FlagValues = Record<string, string | boolean | undefined>;

function num(v: FlagValues, flag: string, check: (n: number) => boolean, expected: string): number | undefined {
  return numberFlag(v[flag], flag, check, expected, (message) => new StrategyFlagError(message));
}

/** Reads and checks --strategy and its parameters. */
export function parseStrategyFlags(v: FlagValues, context: StrategyFlagContext): StrategyConfig {
  const name = (v.strategy ?? 'fedavg') as string;
  if (!(STRATEGY_NAMES as readonly string[]).includes(name)) {
    throw new StrategyFlagError(`--strategy must be one of ${STRATEGY_NAMES.join(', ')}; got "${name}"`);
  }
  const strategy = name as StrategyName;
  const onlyWith = (flag: string, allowed: readonly StrategyName[]) => {
    if (v[flag] !== undefined && !allowed.includes(strategy)) {
      throw new StrategyFlagError(`--${flag} applies to --strategy ${allowed.join(' or ')}, not ${strategy}`);
    }
  };
  onlyWith('trim-fraction', ['trimmed-mean']);
  onlyWith('byzantine', ['krum', 'multi-krum']);
  onlyWith('multi-krum', ['multi-krum']);
  onlyWith('proximal-mu', ['fedprox']);

  if (ROBUST.includes(strategy) && context.clientDp) {
    throw new StrategyFlagError(
      `--strategy ${strategy} cannot be combined with --client-dp: DP-FedAvg's noise is calibrated to a sum of clipped updates, ` +
        `and a ${strategy} of the updates has another sensitivity that nothing here accounts for (nor would it sum the distributed noise shares); ` +
        'use --strategy fedavg, fedprox, fedadam or fedyogi with --client-dp',
    );
  }
  if (strategy === 'fedprox' && context.sampleDp) {
    throw new StrategyFlagError('--strategy fedprox cannot be combined with DP-SGD (--dp-sgd-clip): the DP-SGD trainer does not add the proximal term');
  }

  const config: {
    name: StrategyName;
    trimFraction?: number;
    byzantine?: number;
    multiKrum?: number;
    proximalMu?: number;
    serverLearningRate?: number;
    serverLearningRateDecay?: number;
    maxUpdateNorm?: number;
  } = { name: strategy };

  config.serverLearningRate = num(v, 'server-learning-rate', (n) => n > 0, 'a positive number');
  config.serverLearningRateDecay = num(v, 'server-lr-decay', (n) => n > 0 && n <= 1, 'a number in (0, 1]');
  if (config.serverLearningRateDecay !== undefined && (strategy !== 'fedavg' || context.clientDp !== undefined)) {
    throw new StrategyFlagError('--server-lr-decay applies to plain FedAvg only (--strategy fedavg without client-level DP)');
  }
  config.maxUpdateNorm = num(v, 'max-update-norm', (n) => n > 0, 'a positive number');
  const clip = context.clientClipNorm;
  if (config.maxUpdateNorm !== undefined && clip !== undefined && config.maxUpdateNorm < clip) {
    throw new StrategyFlagError(
      `--max-update-norm ${config.maxUpdateNorm} is below the norm participants clip to (${clip}): honest updates between the two would be rejected; ` +
        `raise --max-update-norm to at least ${clip}`,
    );
  }

  switch (strategy) {
    case 'trimmed-mean': {
      const beta = num(v, 'trim-fraction', (n) => n >= 0 && n < 0.5, 'a number in [0, 0.5)') ?? DEFAULT_TRIM_FRACTION;
      const trimmed = new TrimmedMean({ trimFraction: beta }).trimCount(context.clientsPerRound);
      if (trimmed === 0) {
        throw new StrategyFlagError(
          `--trim-fraction ${beta} trims ⌊${beta} × ${context.clientsPerRound}⌋ = 0 updates at each end with --clients-per-round ${context.clientsPerRound}: ` +
            `it would be a plain mean; use --trim-fraction of at least ${(1 / context.clientsPerRound).toFixed(3)}, or more participants per round`,
        );
      }
      config.trimFraction = beta;
      break;
    }
    case 'krum':
    case 'multi-krum': {
      const f = num(v, 'byzantine', isNonNegativeInt, 'a non-negative integer') ?? DEFAULT_BYZANTINE;
      const need = 2 * f + 3;
      if (context.minUpdates < need) {
        throw new StrategyFlagError(`Krum with --byzantine ${f} needs at least 2f + 3 = ${need} updates per round: raise --min-updates (now ${context.minUpdates}) to ${need} or more, or lower --byzantine`);
      }
      config.byzantine = f;
      if (strategy === 'multi-krum') {
        const m = num(v, 'multi-krum', isPositiveInt, 'a positive integer');
        if (m !== undefined && m > context.minUpdates - f) {
          throw new StrategyFlagError(`--multi-krum ${m} is more than n − f = ${context.minUpdates - f} (with --min-updates ${context.minUpdates} and --byzantine ${f}): it could average Byzantine updates in`);
        }
        config.multiKrum = m;
      }
      break;
    }
    case 'fedprox':
      config.proximalMu = num(v, 'proximal-mu', (n) => n > 0, 'a positive number') ?? DEFAULT_PROXIMAL_MU;
      break;
    default:
      break;
  }
  return config;
}

/** The strategy the coordinator runs for `config`. */
export function buildStrategy(config: Pick<CoordinatorConfig, 'strategy' | 'clientDp' | 'poisoning' | 'settings'>): Strategy {
  const choice: StrategyConfig = config.strategy ?? { name: 'fedavg' };
  const clientDp = config.clientDp;
  const rate = choice.serverLearningRate;
  const robust = { serverLearningRate: rate };
  /** FedAvg, or DP-FedAvg when client-level DP is on, applying the update with learning rate `lr`. */
  const weightedMean = (lr: number | undefined): Strategy => (clientDp ? new DpFedAvg(withRate(clientDp, lr)) : new FedAvg({ serverLearningRate: lr }));
  if (clientDp && ROBUST.includes(choice.name)) throw new RangeError(`${choice.name} cannot run with client-level DP`);
  let strategy: Strategy;
  switch (choice.name) {
    case 'fedavg':
      strategy = clientDp ? weightedMean(rate) : new FedAvg({ serverLearningRate: rate, serverLearningRateDecay: choice.serverLearningRateDecay });
      break;
    case 'median':
      strategy = new CoordinateMedian(robust);
      break;
    case 'trimmed-mean':
      strategy = new TrimmedMean({ ...robust, trimFraction: choice.trimFraction ?? DEFAULT_TRIM_FRACTION });
      break;
    case 'krum':
      strategy = new Krum({ ...robust, byzantine: choice.byzantine ?? DEFAULT_BYZANTINE });
      break;
    case 'multi-krum':
      strategy = new Krum({ ...robust, byzantine: choice.byzantine ?? DEFAULT_BYZANTINE, multi: choice.multiKrum, multiKrum: true });
      break;
    case 'fedprox':
      strategy = new FedProx({ proximalMu: choice.proximalMu ?? DEFAULT_PROXIMAL_MU, base: weightedMean(rate) });
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
