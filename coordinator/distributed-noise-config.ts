import { maxParticipants } from '../core/secagg/quantize.ts';
import { checkSkellamRange, planDistributedNoise } from '../core/privacy/distributed-noise.ts';
import { rotatedLengthFor } from '../core/compression/update-codec.ts';
import type { CoordinatorConfig } from './coordinator-config.ts';
import { MIN_UPDATES } from './options/federation.ts';
import { ConfigError } from './options/option.ts';
import { DISTRIBUTED_NOISE, TOLERATED_DROPOUTS, type DistributedNoiseRequest } from './options/privacy.ts';

/**
 * Distributed DP noise under secure aggregation is Skellam integers inside
 * the secure sum, accounted as the sum's noise (core/privacy/distributed-noise.ts),
 * unless `--distributed-noise gaussian` asks by name for Gaussian shares, each
 * accounted alone (docs/privacy-mechanisms.md). The plan needs the model's
 * size, known only once the task is loaded: `withSkellam` completes it then.
 */
type Flags = Readonly<Record<string, unknown>>;

/** Ends every refusal of Skellam noise: the weaker accounting is never a silent fallback, only a choice made by name. */
export const GAUSSIAN_ALTERNATIVE =
  "or pass --distributed-noise gaussian to accept the weaker accounting explicitly (each participant's Gaussian share accounted alone)";

/** What the flags decide about distributed noise. */
export interface DistributedNoiseChoice {
  /** Skellam noise with its tolerated dropouts; undefined: Gaussian shares, or no distributed noise. */
  readonly request: DistributedNoiseRequest | undefined;
  /** --min-updates; under Skellam without the flag, M − D: a sum of fewer updates would lack the accounted noise. */
  readonly minUpdates: number;
}

/**
 * D when --tolerated-dropouts is not given: what --min-updates N already lets
 * go missing, M − N (a sum of fewer updates is never released anyway), or
 * without --min-updates a tenth of the cohort, ⌊M/10⌋ (the sum's noise std is
 * then at most √((M − 1)/(M − D − 1)) ≈ 1.06 times that of D = 0 for M ≥ 10).
 */
export function defaultToleratedDropouts(expectedClients: number, minUpdates: number | undefined): number {
  return minUpdates === undefined ? Math.floor(expectedClients / 10) : Math.max(0, expectedClients - minUpdates);
}

/** Checks the flags against the rest of the configuration; `fail` builds the config error. */
export function parseDistributedNoise(
  v: Flags,
  config: Pick<CoordinatorConfig, 'clientDp' | 'settings'>,
  fail: (message: string) => Error,
): DistributedNoiseChoice {
  const kind = DISTRIBUTED_NOISE.read(v, fail);
  const { clientDp, settings } = config;
  const inSecureSum = clientDp?.placement === 'distributed' && settings.secureAggregation !== undefined;
  if (kind === 'gaussian' || (kind === undefined && !inSecureSum)) {
    if (v[TOLERATED_DROPOUTS.name] !== undefined)
      throw fail(
        '--tolerated-dropouts needs --distributed-noise skellam (the default of --client-dp distributed with --secure-aggregation): Gaussian shares are each accounted alone',
      );
    if (kind === 'gaussian' && clientDp?.placement !== 'distributed')
      throw fail('--distributed-noise gaussian needs --client-dp distributed');
    return { request: undefined, minUpdates: settings.minUpdates };
  }
  if (clientDp?.placement !== 'distributed' || !settings.secureAggregation)
    throw fail(
      '--distributed-noise skellam needs --client-dp distributed and --secure-aggregation: the integer noise lives in the secure sum',
    );
  const asked =
    kind === 'skellam' ? '--distributed-noise skellam' : 'Skellam noise (the default of --client-dp distributed with --secure-aggregation)';
  if (clientDp.clip.kind !== 'fixed') throw fail(`${asked} needs a fixed --client-clip; ${GAUSSIAN_ALTERNATIVE}`);
  const m = clientDp.expectedClients;
  const minUpdatesGiven = v[MIN_UPDATES.name] !== undefined;
  const toleratedDropouts = TOLERATED_DROPOUTS.readOr(
    v,
    defaultToleratedDropouts(m, minUpdatesGiven ? settings.minUpdates : undefined),
    fail,
  );
  // Without the protected participant's own share, the other M − D − 1 of a smallest released sum carry the target noise.
  if (!Number.isInteger(m) || m - toleratedDropouts - 1 < 1)
    throw fail(
      `${asked} needs an integer --expected-clients M with M − D − 1 ≥ 1 (M = ${m}, D = ${toleratedDropouts}` +
        `${v[TOLERATED_DROPOUTS.name] === undefined && minUpdatesGiven ? ', from M − --min-updates' : ''}); ${GAUSSIAN_ALTERNATIVE}`,
    );
  // Every released sum must hold at least M − D shares of the noise.
  const minUpdates = minUpdatesGiven ? settings.minUpdates : m - toleratedDropouts;
  if (minUpdates < m - toleratedDropouts)
    throw fail(
      `${asked} with --tolerated-dropouts ${toleratedDropouts} needs --min-updates of at least ${m - toleratedDropouts}: a sum of fewer updates would carry less than the accounted noise`,
    );
  if (settings.clientsPerRound < minUpdates)
    throw fail(
      `${asked} releases only sums of at least M − D = ${minUpdates} updates (the default --min-updates with --expected-clients ${m} and --tolerated-dropouts ${toleratedDropouts}), ` +
        `more than --clients-per-round ${settings.clientsPerRound} selects: raise --clients-per-round or --tolerated-dropouts; ${GAUSSIAN_ALTERNATIVE}`,
    );
  return { request: { kind: 'skellam', toleratedDropouts }, minUpdates };
}

/** The configuration with the Skellam plan's settings filled in for a model of `dimension` values (rotated and padded); unchanged without Skellam. */
export function withSkellam(config: CoordinatorConfig, dimension: number): CoordinatorConfig {
  const request = config.distributedNoise;
  const { clientDp } = config;
  const secure = config.settings.secureAggregation;
  if (!request || !clientDp || !secure || clientDp.clip.kind !== 'fixed') return config;
  // Participants round the rotated update: its padded length is the d of the sensitivity (core/privacy/skellam-rotation.ts).
  const skellam = {
    step: (2 * secure.clipRange) / secure.quantizationRange,
    dimension: rotatedLengthFor(dimension),
    toleratedDropouts: request.toleratedDropouts,
  };
  const plan = planDistributedNoise({
    clipNorm: clientDp.clip.norm,
    noiseMultiplier: clientDp.noiseMultiplier,
    expectedContributors: clientDp.expectedClients,
    ...skellam,
  });
  // Compressed encodings: b-bit words that hold secure.maxParticipants with this noise (secagg-words-config.ts).
  const wordBits = secure.wordBits ?? 32;
  try {
    checkSkellamRange(plan, secure.maxParticipants ?? maxParticipants(secure, wordBits), wordBits);
  } catch (error) {
    throw new ConfigError(`Skellam noise in the secure sum: ${(error as Error).message}; ${GAUSSIAN_ALTERNATIVE}`);
  }
  return { ...config, clientDp: { ...clientDp, skellam } };
}

/** The start's line on distributed noise: which noise ε charges, its neighbour relation and, for Skellam, D and its cost; undefined without it. */
export function describeDistributedNoise(
  config: Pick<CoordinatorConfig, 'clientDp' | 'distributedNoise' | 'settings'>,
): string | undefined {
  const { clientDp, distributedNoise, settings } = config;
  if (clientDp?.placement !== 'distributed') return undefined;
  if (!distributedNoise)
    return "client-level DP: distributed Gaussian shares, each participant's accounted alone (zero-out: its clipped update replaced by zero)";
  const m = clientDp.expectedClients;
  const d = distributedNoise.toleratedDropouts;
  return (
    "client-level DP: Skellam noise in the secure sum, accounted as the sum's noise (add/remove one participant); " +
    `tolerates ${d} of ${m} expected updates missing (sums of fewer than ${settings.minUpdates} are not released); ` +
    `a full sum carries ${Math.sqrt(m / (m - d - 1)).toFixed(3)}× the target noise std`
  );
}
