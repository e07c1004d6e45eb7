import type { DpFedAvgOptions } from '../../core/aggregation/dp-fedavg.ts';
import type { RoundSettings, SecureAggregationSettings } from '../../core/protocol/status.ts';
import { effectiveDegree } from '../../core/secagg/graph.ts';
import { recommendedThreshold } from '../../core/secagg/protocol.ts';
import { maxParticipantsForWords, quantizationRangeForValueBits, VALUE_BITS, wordBitsFor } from '../../core/secagg/modulus.ts';
import { DEFAULT_QUANTIZATION } from '../../core/secagg/quantize.ts';
import { UPDATE_ENCODING } from './communication.ts';
import { givenNumberFlag } from '../flags.ts';
import { REDIS } from './server.ts';
import { booleanOption, ConfigError, configError, numberOption, textOption, type FlagValues, type OptionGroup } from './option.ts';
import { selectedPerRound } from './selection.ts';
import { ruleTraits } from '../strategies.ts';
import type { StrategyConfig } from './strategy.ts';

/** Secure aggregation (SecAgg/SecAgg+): whether it runs and its parameters. */

/** k when --secagg-min-cohort is not given: the fewest a secure sum may hold (a sum of two reveals each to the other). */
const DEFAULT_MIN_COHORT = 3;

export const SECURE_AGGREGATION = booleanOption({
  name: 'secure-aggregation',
  task: ['secureAggregation', 'enabled'],
  help: "mask every update; the coordinator decodes only the sum of each round's\nupdates (an unweighted mean: example counts would reveal too much)",
});
export const SECAGG_NEIGHBOURS = textOption({
  name: 'secagg-neighbours',
  placeholder: 'K',
  task: ['secureAggregation', 'neighbours'],
  kind: 'number-or-all',
  default: 'all',
  help: 'SecAgg+ neighbours per participant, or all (default {default})',
});
export const SECAGG_THRESHOLD = numberOption({
  name: 'secagg-threshold',
  placeholder: 'T',
  task: ['secureAggregation', 'threshold'],
  check: (n) => Number.isInteger(n) && n >= 2,
  expected: 'an integer >= 2',
  help: 'shares needed to unmask (default: a strict majority of k + 1)',
});
/** Default: DEFAULT_QUANTIZATION's, or the clip norm when that is larger. */
export const SECAGG_CLIP_RANGE = numberOption({
  name: 'secagg-clip-range',
  placeholder: 'C',
  task: ['secureAggregation', 'clipRange'],
  check: (n) => n > 0,
  expected: 'a positive number',
  help: `clip every coordinate of an update to [-C, C] (default ${DEFAULT_QUANTIZATION.clipRange}, at least the\nclip norm)`,
});
export const SECAGG_QUANTIZATION_RANGE = numberOption({
  name: 'secagg-quantization-range',
  placeholder: 'R',
  task: ['secureAggregation', 'quantizationRange'],
  default: DEFAULT_QUANTIZATION.quantizationRange,
  check: (n) => Number.isInteger(n) && n >= 2 && n % 2 === 0 && n <= 2 ** 31,
  expected: 'an even integer in [2, 2^31]',
  help: 'even integer; step 2C/R (default {default})',
});
/** Seconds. */
export const SECAGG_STEP_TIMEOUT = numberOption({
  name: 'secagg-step-timeout',
  placeholder: 'S',
  task: ['secureAggregation', 'stepTimeout'],
  default: 30,
  check: (n) => n > 0,
  expected: 'a positive number of seconds',
  help: 'seconds for each key-exchange and unmasking step (default {default})',
});

/** k on a cluster: each node's cohort is a SecAgg round of its own, and the coordinator sees each cohort's sum (docs/cluster.md). */
export const SECAGG_MIN_COHORT = numberOption({
  name: 'secagg-min-cohort',
  placeholder: 'K',
  check: (n) => Number.isInteger(n) && n >= 3,
  expected: 'an integer >= 3',
  help: `with --redis: the fewest participants of one node's cohort; a node with fewer\nis not selected, and a cohort with fewer masked inputs is never unmasked (default ${DEFAULT_MIN_COHORT})`,
});

export const SECURE_AGGREGATION_GROUP: OptionGroup = {
  heading:
    'Secure aggregation (SecAgg/SecAgg+: a coordinator following the protocol learns only the sum;\nkeys are not signed, see docs/secure-aggregation.md and docs/protocol.md)',
  options: [
    SECURE_AGGREGATION,
    SECAGG_NEIGHBOURS,
    SECAGG_THRESHOLD,
    SECAGG_CLIP_RANGE,
    SECAGG_QUANTIZATION_RANGE,
    SECAGG_STEP_TIMEOUT,
    SECAGG_MIN_COHORT,
  ],
};

/**
 * Secure aggregation as the flags ask for it; undefined without --secure-aggregation.
 * Whether the secure sum can hold the participants per round is a settings
 * rule (options/rules.ts); the threshold is checked after it (checkSecAggThreshold).
 */
export function parseSecureAggregation(
  v: FlagValues,
  settings: RoundSettings,
  clientDp: DpFedAvgOptions | undefined,
  strategy: StrategyConfig,
): SecureAggregationSettings | undefined {
  if (SECURE_AGGREGATION.read(v) !== true) {
    for (const option of [
      SECAGG_NEIGHBOURS,
      SECAGG_THRESHOLD,
      SECAGG_CLIP_RANGE,
      SECAGG_QUANTIZATION_RANGE,
      SECAGG_STEP_TIMEOUT,
      SECAGG_MIN_COHORT,
    ]) {
      if (v[option.name] !== undefined) throw new ConfigError(`--${option.name} needs --secure-aggregation`);
    }
    return undefined;
  }
  // A secure sum feeds only rules that aggregate a sum (a plain or fixed-denominator mean): their traits say so.
  if (ruleTraits(strategy).input === 'individual') {
    throw new ConfigError(
      `--strategy ${strategy.name} needs every update on its own, which secure aggregation hides: use fedavg, fedprox, fedadam or fedyogi`,
    );
  }
  if (strategy.maxUpdateNorm !== undefined)
    throw new ConfigError('--max-update-norm checks individual updates, which secure aggregation hides: drop one of them');
  if (clientDp?.placement === 'central')
    throw new ConfigError(
      '--client-dp central clips and noises on the coordinator, which would need the individual updates: use --client-dp distributed',
    );
  if (clientDp?.clip.kind === 'adaptive')
    throw new ConfigError('--adaptive-clip needs each update norm on the coordinator: it cannot run with --secure-aggregation');
  if (settings.minClients < 3)
    throw new ConfigError('--secure-aggregation needs --min-clients of at least 3 (a sum of two updates reveals each to the other)');
  const neighboursText = SECAGG_NEIGHBOURS.read(v);
  const neighbours =
    neighboursText === 'all'
      ? 'all'
      : givenNumberFlag(
          neighboursText,
          SECAGG_NEIGHBOURS.name,
          (n) => Number.isInteger(n) && n >= 2,
          'an integer >= 2 or all',
          configError,
        );
  const threshold = SECAGG_THRESHOLD.read(v);
  // After clipping to L2 norm S no coordinate exceeds S: a clip range of at least S never clips further.
  const clipNorm = secAggClipNorm(clientDp, settings);
  const clipRange = SECAGG_CLIP_RANGE.readOr(v, Math.max(DEFAULT_QUANTIZATION.clipRange, clipNorm ?? 0));
  const words = secAggWords(v, settings);
  const minCohort = secAggMinCohort(v, settings);
  // Rotated with an L2 clip and no --secagg-clip-range: c is derived from C once the model's size is known (secagg-words-config.ts).
  const derivedClipRange = words.rotated === true && clipNorm !== undefined && v[SECAGG_CLIP_RANGE.name] === undefined;
  return {
    neighbours,
    threshold,
    clipRange,
    ...words,
    ...(derivedClipRange ? { derivedClipRange } : {}),
    stepTimeoutMs: 1000 * SECAGG_STEP_TIMEOUT.read(v),
    ...(minCohort === undefined ? {} : { minCohort }),
  };
}

/** k: only on a cluster (--redis), where the coordinator sees one sum per node's cohort; one coordinator sees the round's one sum. */
function secAggMinCohort(v: FlagValues, settings: RoundSettings): number | undefined {
  if (REDIS.read(v) === undefined) {
    if (v[SECAGG_MIN_COHORT.name] !== undefined)
      throw new ConfigError(
        '--secagg-min-cohort needs --redis: one coordinator runs one secure sum over the whole round, at least --min-clients (>= 3) strong',
      );
    return undefined;
  }
  const k = SECAGG_MIN_COHORT.readOr(v, DEFAULT_MIN_COHORT);
  const selected = selectedPerRound(settings);
  if (k > selected)
    throw new ConfigError(
      `--secagg-min-cohort ${k} is above the ${selected} participants selected per round: no node's cohort could ever reach it`,
    );
  return k;
}

/** C: the L2 norm every update of a secure round is clipped to (a fixed --client-clip, or --clip-norm), when there is one. */
export function secAggClipNorm(clientDp: DpFedAvgOptions | undefined, settings: RoundSettings): number | undefined {
  return clientDp?.clip.kind === 'fixed' ? clientDp.clip.norm : settings.fit.privacy?.clipNorm;
}

/**
 * The quantisation range and word width that --update-encoding asks of the
 * secure sum: float32 keeps --secagg-quantization-range and 32-bit words;
 * int8/int4 set R = 2^v − 2 and the smallest word bits b that hold the
 * participants per round (core/secagg/modulus.ts); int4's inputs are
 * rotated. Model-dependent noise may widen b, and a rotated round's clip
 * range is derived, once the task is loaded (coordinator/secagg-words-config.ts).
 */
function secAggWords(
  v: FlagValues,
  settings: RoundSettings,
): Pick<SecureAggregationSettings, 'quantizationRange' | 'wordBits' | 'maxParticipants' | 'rotated'> {
  const encoding = UPDATE_ENCODING.read(v);
  switch (encoding) {
    case 'float32':
      return { quantizationRange: SECAGG_QUANTIZATION_RANGE.read(v) };
    case 'float16':
      throw new ConfigError(
        '--update-encoding float16 cannot run with --secure-aggregation: masked words are fixed-point integers summed mod 2^b, where a float16 means nothing; use int8 or int4 (fewer bits per masked word) or float32',
      );
    case 'int8':
    case 'int4': {
      const quantizationRange = quantizationRangeForValueBits(VALUE_BITS[encoding]);
      if (v[SECAGG_QUANTIZATION_RANGE.name] !== undefined)
        throw new ConfigError(
          `--secagg-quantization-range cannot be set with --update-encoding ${encoding}: its ${VALUE_BITS[encoding]} value bits set R = ${quantizationRange}`,
        );
      // At least three share holders are selected (a round pads to them).
      const selected = Math.max(3, selectedPerRound(settings));
      let wordBits: number;
      try {
        wordBits = wordBitsFor(quantizationRange, selected);
      } catch (error) {
        throw new ConfigError(`--update-encoding ${encoding} with ${selected} participants per round: ${(error as Error).message}`);
      }
      const words = { quantizationRange, wordBits, maxParticipants: maxParticipantsForWords(quantizationRange, wordBits) };
      // int4 is rotated before quantising, as on the plain path: 4 bits leave no room for outliers (docs/secagg-compression.md).
      return encoding === 'int4' ? { ...words, rotated: true } : words;
    }
    default: {
      const unknown: never = encoding;
      throw new ConfigError(`unknown update encoding ${String(unknown)}`);
    }
  }
}

/**
 * Checks --secagg-threshold against the share holders of a round. Called
 * after the settings rules, which first make sure the secure sum can hold
 * the participants selected per round.
 */
export function checkSecAggThreshold(settings: RoundSettings & { readonly secureAggregation: SecureAggregationSettings }): void {
  const { threshold, neighbours } = settings.secureAggregation;
  if (threshold === undefined) return;
  const selected = selectedPerRound(settings);
  const k = effectiveDegree(Math.max(3, selected), neighbours);
  if (threshold > k + 1)
    throw new ConfigError(`--secagg-threshold ${threshold} is above k + 1 = ${k + 1} share holders: no secret could ever be rebuilt`);
  if (2 * threshold <= k + 1)
    throw new ConfigError(
      `--secagg-threshold ${threshold} must be a strict majority of the k + 1 = ${k + 1} share holders (at least ${recommendedThreshold(Math.max(3, selected), neighbours)})`,
    );
}
