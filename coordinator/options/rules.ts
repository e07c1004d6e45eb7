import type { RoundSettings, SettingsChange } from '../../core/protocol/status.ts';
import { maxParticipants } from '../../core/secagg/quantize.ts';
import { selectedPerRound } from './selection.ts';
import { trimCount } from './strategy.ts';

/**
 * The rules that settings must keep together, written once. They run at start
 * (coordinator/config.ts, on the parsed flags) and when the dashboard changes a
 * setting (settingsChangeProblem, for the round engine). A rule that only
 * makes sense for a change (a value participants joined for must not move)
 * runs only then. Each rule words its problem for both places: at start in
 * flags (task files rename them to their keys), on a change in the dashboard's
 * setting names.
 */

/** The strategy's own check of a dashboard change (on main: Strategy.settingsChangeProblem, one of its traits). */
export type StrategyChangeCheck = (change: SettingsChange, current: RoundSettings) => string | undefined;

/** What the rules need to know about the strategy (not which class it is). */
export interface StrategyFacts {
  /** trimmed-mean's β, when the strategy is trimmed-mean (checked at start; on a change the strategy checks itself). */
  readonly trimFraction?: number;
  /** The strategy's own rules for a change (client-level DP's fixed sampling, a trimmed mean's cohort size). */
  readonly changeProblem?: StrategyChangeCheck;
}

/** A broken rule, worded for where it can arise. */
export interface RuleProblem {
  /** In the dashboard's setting names; present for a rule that runs on a change. */
  readonly onChange?: string;
  /** In flag names; present for a rule that runs at start. */
  readonly atStart?: string;
}

type SettingName = keyof SettingsChange;

/**
 * When the start (config.ts) checks a rule: as soon as it has read what the
 * rule needs, so a command line with two faults reports the first in the
 * order of the flags' topics: the round settings, then the strategy, then
 * secure aggregation.
 */
export type StartStage = 'settings' | 'strategy' | 'secure-aggregation';

interface SettingsRule {
  /** When the start checks it; absent: only on a change. */
  readonly atStart?: StartStage;
  /** On a change the rule runs only when one of these settings changed. */
  readonly watches: readonly SettingName[];
  /** `change` is the dashboard's change; absent at start. */
  check(next: RoundSettings, previous: RoundSettings, strategy: StrategyFacts, change?: SettingsChange): RuleProblem | undefined;
}

/** Limits on the values the dashboard may send (the flags have their own checks, options/*.ts). */
const CHANGE_LIMITS: Readonly<Record<Exclude<SettingName, 'learningRate' | 'roundTimeoutMs'>, number>> = {
  clientsPerRound: 100_000,
  epochs: 1000,
  batchSize: 100_000,
};

/** The rules in the order they are checked; the first problem is the one reported. */
export const SETTINGS_RULES: readonly SettingsRule[] = [
  {
    atStart: 'settings',
    watches: ['clientsPerRound'],
    check: ({ clientsPerRound: cpr, minUpdates }) =>
      cpr < minUpdates
        ? {
            atStart: `--clients-per-round (${cpr}) must be at least --min-updates (${minUpdates})`,
            onChange: `clientsPerRound (${cpr}) must be at least minUpdates (${minUpdates}), as --clients-per-round must be at least --min-updates`,
          }
        : undefined,
  },
  {
    // The strategy's own rules, in its own words: DP-FedAvg samples with a fixed rate, a trimmed mean needs a cohort to trim.
    watches: ['clientsPerRound', 'epochs', 'batchSize', 'learningRate', 'roundTimeoutMs'],
    check: (_next, previous, strategy, change) => {
      const problem = change && strategy.changeProblem?.(change, previous);
      return problem === undefined ? undefined : { onChange: problem };
    },
  },
  {
    // At start only: on a change TrimmedMean's own check (changeProblem above) says the same in the dashboard's words.
    atStart: 'strategy',
    watches: [],
    check: ({ clientsPerRound: cpr }, _previous, { trimFraction: beta }) => {
      if (beta === undefined || trimCount(beta, cpr) > 0) return undefined;
      return {
        atStart:
          `--trim-fraction ${beta} trims ⌊${beta} × ${cpr}⌋ = 0 updates at each end with --clients-per-round ${cpr}: ` +
          `it would be a plain mean; use --trim-fraction of at least ${(1 / cpr).toFixed(3)}, or more participants per round`,
      };
    },
  },
  {
    atStart: 'secure-aggregation',
    watches: ['clientsPerRound'],
    check: (next) => {
      const secure = next.secureAggregation;
      if (!secure) return undefined;
      const selected = selectedPerRound(next);
      if (secure.maxParticipants !== undefined) {
        // Compressed encodings: b-bit words sized at start for this many (core/secagg/modulus.ts).
        const held = secure.maxParticipants;
        if (selected <= held) return undefined;
        return {
          atStart: `${selected} participants per round could overflow the ${secure.wordBits}-bit masked words of --update-encoding: at most ${held}; lower the participants per round`,
          onChange: `clientsPerRound ${next.clientsPerRound} (${selected} selected with over-selection) could overflow the ${secure.wordBits}-bit masked words sized at start: at most ${held} (restart with the new count to size the words for it)`,
        };
      }
      const max = maxParticipants({ clipRange: secure.clipRange, quantizationRange: secure.quantizationRange });
      if (selected <= max) return undefined;
      return {
        atStart: `${selected} participants per round could overflow the mod-2^32 sum with --secagg-quantization-range ${secure.quantizationRange}: at most ${max}; lower the range or the participants per round`,
        onChange: `clientsPerRound ${next.clientsPerRound} (${selected} selected with over-selection) could overflow the mod-2^32 secure sum with quantization range ${secure.quantizationRange}: at most ${max}`,
      };
    },
  },
  {
    // At start --min-clients of at least 3 is required instead (options/secure-aggregation.ts); fewer selected are then padded to three share holders.
    watches: ['clientsPerRound'],
    check: (next) => {
      const selected = selectedPerRound(next);
      return next.secureAggregation && selected < 3
        ? {
            onChange: `clientsPerRound ${next.clientsPerRound} would select ${selected} participant(s): a secure sum of fewer than three updates reveals them to each other`,
          }
        : undefined;
    },
  },
  {
    // DP-SGD's ε per round grows with the steps (epochs × n / B): what participants joined for must not change under them.
    watches: ['epochs'],
    check: (_next, previous) =>
      previous.fit.sampleDp
        ? {
            onChange: `epochs cannot change under DP-SGD: each round costs every participant epochs × n/B noisy steps of its privacy budget, and participants joined for ${previous.fit.epochs}`,
          }
        : undefined,
  },
  {
    watches: ['batchSize'],
    check: (_next, previous) =>
      previous.fit.sampleDp
        ? {
            onChange: `batchSize cannot change under DP-SGD: batches are Poisson-sampled at the task's expected batch size ${previous.fit.sampleDp.expectedBatchSize}, which sets the sampling rate the accounting uses`,
          }
        : undefined,
  },
];

/**
 * The first rule of `stage` that settings parsed at start break, in flag
 * names; undefined when they keep all. The rules of the 'settings' stage
 * read no strategy facts: the strategy is not parsed yet then.
 */
export function startSettingsProblem(
  stage: StartStage,
  settings: RoundSettings,
  strategy: StrategyFacts = NO_STRATEGY_YET,
): string | undefined {
  for (const rule of SETTINGS_RULES) {
    if (rule.atStart === stage) {
      const problem = rule.check(settings, settings, strategy);
      if (problem) return problem.atStart ?? problem.onChange;
    }
  }
  return undefined;
}

const NO_STRATEGY_YET: StrategyFacts = {};

/** The settings after a dashboard change (absent keys keep their value). */
export function applySettingsChange(current: RoundSettings, change: SettingsChange): RoundSettings {
  return {
    ...current,
    clientsPerRound: change.clientsPerRound ?? current.clientsPerRound,
    roundTimeoutMs: change.roundTimeoutMs ?? current.roundTimeoutMs,
    fit: {
      ...current.fit,
      epochs: change.epochs ?? current.fit.epochs,
      batchSize: change.batchSize ?? current.fit.batchSize,
      learningRate: change.learningRate ?? current.fit.learningRate,
    },
  };
}

/**
 * Why the dashboard's `change` to the running `current` settings is refused
 * (for INVALID_SETTING), or undefined: first each value's range, then the
 * rules whose watched settings the change alters.
 */
export function settingsChangeProblem(current: RoundSettings, change: SettingsChange, strategy: StrategyFacts = {}): string | undefined {
  const range = rangeProblem(change);
  if (range !== undefined) return range;
  const next = applySettingsChange(current, change);
  const changed = (name: SettingName): boolean => change[name] !== undefined && settingValue(next, name) !== settingValue(current, name);
  for (const rule of SETTINGS_RULES) {
    if (!rule.watches.some(changed)) continue;
    const problem = rule.check(next, current, strategy, change);
    if (problem) return problem.onChange ?? problem.atStart;
  }
  return undefined;
}

function settingValue(settings: RoundSettings, name: SettingName): number {
  switch (name) {
    case 'clientsPerRound':
      return settings.clientsPerRound;
    case 'roundTimeoutMs':
      return settings.roundTimeoutMs;
    case 'epochs':
    case 'batchSize':
    case 'learningRate':
      return settings.fit[name];
    default: {
      const unknown: never = name;
      throw new RangeError(`unknown setting ${String(unknown)}`);
    }
  }
}

function rangeProblem(change: SettingsChange): string | undefined {
  for (const [key, max] of Object.entries(CHANGE_LIMITS) as [keyof typeof CHANGE_LIMITS, number][]) {
    const v = change[key];
    if (v !== undefined && !(Number.isInteger(v) && v >= 1 && v <= max)) return `${key} must be an integer in [1, ${max}], got ${v}`;
  }
  if (change.learningRate !== undefined && !(change.learningRate > 0 && change.learningRate <= 100))
    return `learningRate must be in (0, 100], got ${change.learningRate}`;
  // At least a second; at most a day (a timer longer than 2^31 ms would fire at once).
  if (change.roundTimeoutMs !== undefined && !(change.roundTimeoutMs >= 1000 && change.roundTimeoutMs <= 86_400_000)) {
    return `roundTimeoutMs must be between 1000 (1 s) and 86400000 (24 h), got ${change.roundTimeoutMs}`;
  }
  return undefined;
}
