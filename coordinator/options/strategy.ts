import { DEFAULT_CLAIM_CAP_MULTIPLE } from '../../core/aggregation/claim-cap.ts';
import { DEFAULT_OUTLIER_BOUND } from '../../core/aggregation/outlier-bound.ts';
import { TrimmedMean } from '../../core/aggregation/robust.ts';
import { isNonNegativeInt, isPositiveInt } from '../flags.ts';
import { ConfigError, numberOption, textOption, type FlagValues, type OptionGroup } from './option.ts';

/**
 * The aggregation rule (`--strategy`), its parameters and the update-norm
 * bound around it. coordinator/strategies.ts builds the strategy from the
 * StrategyConfig read here.
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
  /** fedavg: β of server momentum (FedAvgM); absent or 0: none. */
  readonly serverMomentum?: number;
  /** Updates with a larger L2 norm are rejected with UPDATE_TOO_LARGE (never clipped). */
  readonly maxUpdateNorm?: number;
}

export const STRATEGY = textOption({
  name: 'strategy',
  placeholder: 'NAME',
  task: ['aggregation', 'strategy'],
  default: 'fedavg',
  help: 'fedavg (default, weighted by example count) | median (coordinate-wise) |\ntrimmed-mean (coordinate-wise) | krum | multi-krum | fedprox |\nfedadam | fedyogi (adaptive server optimizers, Reddi et al. 2021)',
});
export const TRIM_FRACTION = numberOption({
  name: 'trim-fraction',
  placeholder: 'B',
  task: ['aggregation', 'trimFraction'],
  default: 0.1,
  check: (n) => n >= 0 && n < 0.5,
  expected: 'a number in [0, 0.5)',
  help: 'trimmed-mean: fraction of values dropped at each end of every\ncoordinate, floor(B x updates) (default {default})',
});
export const BYZANTINE = numberOption({
  name: 'byzantine',
  placeholder: 'F',
  task: ['aggregation', 'byzantine'],
  default: 1,
  check: isNonNegativeInt,
  expected: 'a non-negative integer',
  help: 'krum, multi-krum: Byzantine updates tolerated per round (default {default};\nneeds --min-updates of at least 2F+3)',
});
export const MULTI_KRUM = numberOption({
  name: 'multi-krum',
  placeholder: 'M',
  task: ['aggregation', 'multiKrum'],
  check: isPositiveInt,
  expected: 'a positive integer',
  help: 'multi-krum: apply the mean of the M best-scored updates (default n - F)',
});
export const PROXIMAL_MU = numberOption({
  name: 'proximal-mu',
  placeholder: 'MU',
  task: ['aggregation', 'proximalMu'],
  default: 0.01,
  check: (n) => n > 0,
  expected: 'a positive number',
  help: 'fedprox: participants add (MU/2)|w - w_global|^2 to their loss (default {default})',
});
export const SERVER_LEARNING_RATE = numberOption({
  name: 'server-learning-rate',
  placeholder: 'X',
  task: ['aggregation', 'serverLearningRate'],
  check: (n) => n > 0,
  expected: 'a positive number',
  help: 'scales the aggregated update (default 1); fedadam/fedyogi: their\nlearning rate eta (default 0.01)',
});
export const SERVER_LR_DECAY = numberOption({
  name: 'server-lr-decay',
  placeholder: 'D',
  task: ['aggregation', 'serverLrDecay'],
  check: (n) => n > 0 && n <= 1,
  expected: 'a number in (0, 1]',
  help: 'fedavg: multiply the server learning rate by D (0 < D <= 1) every round',
});
export const SERVER_MOMENTUM = numberOption({
  name: 'server-momentum',
  placeholder: 'B',
  task: ['aggregation', 'serverMomentum'],
  check: (n) => n >= 0 && n < 1,
  expected: 'a number in [0, 1)',
  help: 'fedavg: server momentum (FedAvgM): m = B m + (mean update), weights\n+= (server learning rate) x m (default 0: none)',
});
export const MAX_UPDATE_NORM = numberOption({
  name: 'max-update-norm',
  placeholder: 'X',
  task: ['aggregation', 'maxUpdateNorm'],
  check: (n) => n > 0,
  expected: 'a positive number',
  help: 'reject (never clip) updates whose L2 norm is above X, with the code\nUPDATE_TOO_LARGE; the sender is out of that round',
});

export const OUTLIER_NORM_MULTIPLE = numberOption({
  name: 'outlier-norm-multiple',
  placeholder: 'X',
  task: ['aggregation', 'outlierNormMultiple'],
  default: DEFAULT_OUTLIER_BOUND.multiple,
  check: (n) => n === 0 || n > 1,
  expected: '0 (off) or a number above 1',
  help: 'reject updates whose L2 norm is above X times the median of recently\naccepted norms, with UPDATE_OUTLIER (default {default}; 0 = off; not under\nclient-level DP or secure aggregation, whose clipping bounds each update)',
});
export const CLAIM_CAP_MULTIPLE = numberOption({
  name: 'claim-cap-multiple',
  placeholder: 'X',
  task: ['aggregation', 'claimCapMultiple'],
  default: DEFAULT_CLAIM_CAP_MULTIPLE,
  check: (n) => n === 0 || n >= 1,
  expected: '0 (off) or a number of at least 1',
  help: "weigh no update with more than X times the median example count the\nround's participants claimed at join (default {default}; 0 = off)",
});
export const MAX_CLAIMED_EXAMPLES = numberOption({
  name: 'max-claimed-examples',
  placeholder: 'N',
  task: ['aggregation', 'maxClaimedExamples'],
  check: isPositiveInt,
  expected: 'a positive integer',
  help: 'weigh no update with more than N examples (default: no fixed maximum)',
});

export const STRATEGY_GROUP: OptionGroup = {
  heading: 'Aggregation (every update counts once in the robust rules: example counts are self-reported)',
  options: [
    STRATEGY,
    TRIM_FRACTION,
    BYZANTINE,
    MULTI_KRUM,
    PROXIMAL_MU,
    SERVER_LEARNING_RATE,
    SERVER_LR_DECAY,
    SERVER_MOMENTUM,
    MAX_UPDATE_NORM,
    OUTLIER_NORM_MULTIPLE,
    CLAIM_CAP_MULTIPLE,
    MAX_CLAIMED_EXAMPLES,
  ],
};

/** `--outlier-norm-multiple`, `--claim-cap-multiple`, `--max-claimed-examples` (docs/poisoning.md); a multiple of 0 turns that check off. */
export interface PoisoningConfig {
  readonly outlierNormMultiple: number;
  readonly claimCapMultiple: number;
  readonly maxClaimedExamples?: number;
}

/** The poisoning defences (docs/poisoning.md). `normsHidden`: client-level DP or secure aggregation, where the outlier bound cannot run. */
export function parsePoisoning(v: FlagValues, normsHidden: boolean): PoisoningConfig {
  const outlierNormMultiple = OUTLIER_NORM_MULTIPLE.read(v);
  if (normsHidden && v[OUTLIER_NORM_MULTIPLE.name] !== undefined && outlierNormMultiple !== 0) {
    throw new ConfigError(
      '--outlier-norm-multiple needs each update norm on the coordinator, which client-level DP and secure aggregation hide (their clipping bounds each update): drop it',
    );
  }
  return { outlierNormMultiple, claimCapMultiple: CLAIM_CAP_MULTIPLE.read(v), maxClaimedExamples: MAX_CLAIMED_EXAMPLES.read(v) };
}

/** What the rest of the configuration says that the strategy flags must agree with. */
export interface StrategyFlagContext {
  readonly minUpdates: number;
  /** --client-dp central|distributed, when set. */
  readonly clientDp?: 'central' | 'distributed';
  /** The norm participants clip their updates to (--clip-norm, or --client-clip), when they do. */
  readonly clientClipNorm?: number;
  /** DP-SGD in every participant (--dp-sgd-clip). */
  readonly sampleDp: boolean;
}

/** Reads and checks --strategy and its parameters; the rules shared with settings changes (options/rules.ts) run after. */
export function parseStrategyFlags(v: FlagValues, context: StrategyFlagContext): StrategyConfig {
  const name = STRATEGY.read(v);
  if (!(STRATEGY_NAMES as readonly string[]).includes(name)) {
    throw new ConfigError(`--strategy must be one of ${STRATEGY_NAMES.join(', ')}; got "${name}"`);
  }
  const strategy = name as StrategyName;
  const onlyWith = (flag: string, allowed: readonly StrategyName[]) => {
    if (v[flag] !== undefined && !allowed.includes(strategy)) {
      throw new ConfigError(`--${flag} applies to --strategy ${allowed.join(' or ')}, not ${strategy}`);
    }
  };
  onlyWith(TRIM_FRACTION.name, ['trimmed-mean']);
  onlyWith(BYZANTINE.name, ['krum', 'multi-krum']);
  onlyWith(MULTI_KRUM.name, ['multi-krum']);
  onlyWith(PROXIMAL_MU.name, ['fedprox']);

  if (strategy === 'fedprox' && context.sampleDp) {
    throw new ConfigError(
      '--strategy fedprox cannot be combined with DP-SGD (--dp-sgd-clip): the DP-SGD trainer does not add the proximal term',
    );
  }

  const config: {
    name: StrategyName;
    trimFraction?: number;
    byzantine?: number;
    multiKrum?: number;
    proximalMu?: number;
    serverLearningRate?: number;
    serverLearningRateDecay?: number;
    serverMomentum?: number;
    maxUpdateNorm?: number;
  } = { name: strategy };

  config.serverLearningRate = SERVER_LEARNING_RATE.read(v);
  config.serverLearningRateDecay = SERVER_LR_DECAY.read(v);
  if (config.serverLearningRateDecay !== undefined && (strategy !== 'fedavg' || context.clientDp !== undefined)) {
    throw new ConfigError('--server-lr-decay applies to plain FedAvg only (--strategy fedavg without client-level DP)');
  }
  onlyWith(SERVER_MOMENTUM.name, ['fedavg']);
  const momentum = SERVER_MOMENTUM.read(v);
  if (momentum !== undefined && momentum > 0) {
    if (config.serverLearningRateDecay !== undefined) {
      throw new ConfigError('--server-momentum and --server-lr-decay cannot be combined: choose one way to shape the server step');
    }
    config.serverMomentum = momentum;
  }
  config.maxUpdateNorm = MAX_UPDATE_NORM.read(v);
  const clip = context.clientClipNorm;
  if (config.maxUpdateNorm !== undefined && clip !== undefined && config.maxUpdateNorm < clip) {
    throw new ConfigError(
      `--max-update-norm ${config.maxUpdateNorm} is below the norm participants clip to (${clip}): honest updates between the two would be rejected; ` +
        `raise --max-update-norm to at least ${clip}`,
    );
  }

  switch (strategy) {
    case 'trimmed-mean':
      // Whether β trims anything with --clients-per-round is a settings rule (options/rules.ts).
      config.trimFraction = TRIM_FRACTION.read(v);
      break;
    case 'krum':
    case 'multi-krum': {
      const f = BYZANTINE.read(v);
      const need = 2 * f + 3;
      if (context.minUpdates < need) {
        throw new ConfigError(
          `Krum with --byzantine ${f} needs at least 2f + 3 = ${need} updates per round: raise --min-updates (now ${context.minUpdates}) to ${need} or more, or lower --byzantine`,
        );
      }
      config.byzantine = f;
      if (strategy === 'multi-krum') {
        const m = MULTI_KRUM.read(v);
        if (m !== undefined && m > context.minUpdates - f) {
          throw new ConfigError(
            `--multi-krum ${m} is more than n − f = ${context.minUpdates - f} (with --min-updates ${context.minUpdates} and --byzantine ${f}): it could average Byzantine updates in`,
          );
        }
        config.multiKrum = m;
      }
      break;
    }
    case 'fedprox':
      config.proximalMu = PROXIMAL_MU.read(v);
      break;
    default:
      break;
  }
  return config;
}

/** Values trimmed-mean drops at each end of a coordinate when n updates arrive: the strategy's own count. */
export function trimCount(trimFraction: number, n: number): number {
  return new TrimmedMean({ trimFraction }).trimCount(n);
}
