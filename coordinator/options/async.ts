import { DEFAULT_STALENESS_EXPONENT } from '../../core/aggregation/staleness.ts';
import type { AsyncSettings, RoundSettings } from '../../core/protocol/status.ts';
import { isNonNegativeInt, isPositiveInt } from '../flags.ts';
import { choiceOption, ConfigError, numberOption, type FlagValues, type OptionGroup } from './option.ts';
import { trimCount } from './strategy.ts';

/** `--mode async`: buffered asynchronous aggregation (FedBuff; docs/async.md). */

export const MODE = choiceOption({
  name: 'mode',
  placeholder: 'M',
  choices: ['sync', 'async'],
  task: ['federation', 'mode'],
  default: 'sync',
  help: 'sync: rounds (default) | async: participants train continuously and\nevery --buffer-size accepted updates make one model version (FedBuff);\n--rounds and --target-accuracy then count versions',
});
export const BUFFER_SIZE = numberOption({
  name: 'buffer-size',
  placeholder: 'K',
  task: ['federation', 'bufferSize'],
  default: 5,
  check: isPositiveInt,
  expected: 'a positive integer',
  help: 'async: accepted updates per model version (default {default})',
});
export const MAX_STALENESS = numberOption({
  name: 'max-staleness',
  placeholder: 'S',
  task: ['federation', 'maxStaleness'],
  default: 10,
  check: isNonNegativeInt,
  expected: 'a non-negative integer',
  help: 'async: refuse updates trained from a model more than S versions older\nthan the one they would go into, with UPDATE_TOO_STALE (default {default})',
});
export const CONCURRENCY = numberOption({
  name: 'concurrency',
  placeholder: 'C',
  task: ['federation', 'concurrency'],
  check: isPositiveInt,
  expected: 'a positive integer',
  help: 'async: participants training at once (default --clients-per-round)',
});
export const STALENESS_EXPONENT = numberOption({
  name: 'staleness-exponent',
  placeholder: 'A',
  task: ['federation', 'stalenessExponent'],
  default: DEFAULT_STALENESS_EXPONENT,
  check: (n) => n >= 0 && n <= 10,
  expected: 'a number in [0, 10]',
  help: 'async: scale an update of staleness s by (1 + s)^-A (default {default}:\n1/sqrt(1 + s); 0 weighs all the same)',
});

export const ASYNC_GROUP: OptionGroup = {
  heading: 'Asynchronous aggregation (docs/async.md)',
  options: [MODE, BUFFER_SIZE, MAX_STALENESS, CONCURRENCY, STALENESS_EXPONENT],
};

/** What the async parse needs from the rest of the start. */
export interface AsyncContext {
  readonly settings: RoundSettings;
  readonly secureAggregation: boolean;
  /** Client-level DP's sampling rate q, when it is on. */
  readonly clientSampleRate: number | undefined;
  /** trimmed-mean's β, when that is the rule: it trims over a version's buffer of K. */
  readonly trimFraction?: number;
}

/**
 * The mode and, in async mode, its settings. Refuses what async mode cannot
 * do honestly: secure aggregation (each SecAgg instance needs a fixed cohort
 * that agrees keys before training, and async participants start and finish
 * at different versions), and async-only flags in sync mode.
 */
export function parseAsync(v: FlagValues, context: AsyncContext): Pick<RoundSettings, 'mode' | 'async'> {
  const mode = MODE.read(v);
  const asyncOnly = [BUFFER_SIZE, MAX_STALENESS, CONCURRENCY, STALENESS_EXPONENT].filter((o) => v[o.name] !== undefined);
  if (mode === 'sync') {
    if (asyncOnly.length > 0) throw new ConfigError(`--${asyncOnly[0]!.name} applies to --mode async only`);
    return { mode };
  }
  if (context.secureAggregation) {
    throw new ConfigError(
      '--mode async cannot be combined with --secure-aggregation: a secure aggregation instance masks the updates of one cohort that agrees ' +
        'keys before it trains and unmasks them together, while async participants start and finish at different model versions, so no ' +
        'such cohort exists; updates are never sent in the clear instead. Use --mode sync for secure aggregation',
    );
  }
  if (context.settings.updateEncoding === 'int4') {
    throw new ConfigError(
      "--mode async cannot be combined with --update-encoding int4: int4 updates are rotated with their round's seed and an async version " +
        'mixes updates trained from several versions, which a round-wide rotation back cannot undo; use int8 or float16 in async mode',
    );
  }
  const settings: AsyncSettings = {
    bufferSize: BUFFER_SIZE.read(v),
    maxStaleness: MAX_STALENESS.read(v),
    concurrency: CONCURRENCY.readOr(v, context.settings.clientsPerRound),
    stalenessExponent: STALENESS_EXPONENT.read(v),
  };
  const q = context.clientSampleRate;
  if (q !== undefined && q !== 1) {
    throw new ConfigError(
      `--mode async needs --client-sample-rate 1 with --client-dp (got ${q}): async participants train when they get a training slot, ` +
        'not by hidden Poisson sampling, so no sampling amplification may be claimed; each version is accounted as one Gaussian release (docs/async.md)',
    );
  }
  if (q !== undefined && settings.bufferSize > context.settings.minClients) {
    throw new ConfigError(
      `--mode async with --client-dp needs --min-clients of at least --buffer-size (${settings.bufferSize}): each participant adds at most ` +
        'one update to a version, so a version needs that many participants',
    );
  }
  if (context.settings.minUpdates > settings.bufferSize) {
    throw new ConfigError(
      `--min-updates ${context.settings.minUpdates} is more than --buffer-size ${settings.bufferSize}: in async mode a version is made from one full buffer`,
    );
  }
  const beta = context.trimFraction;
  if (beta !== undefined && trimCount(beta, settings.bufferSize) === 0) {
    throw new ConfigError(
      `--trim-fraction ${beta} trims ⌊${beta} × ${settings.bufferSize}⌋ = 0 updates at each end of a version's buffer (--buffer-size ${settings.bufferSize}): ` +
        `in async mode trimmed-mean aggregates one buffer, and it would be a plain mean; use --trim-fraction of at least ${(1 / settings.bufferSize).toFixed(3)}, or a larger --buffer-size`,
    );
  }
  return { mode, async: settings };
}
