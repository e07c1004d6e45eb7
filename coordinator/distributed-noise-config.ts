import { maxParticipants } from '../core/secagg/quantize.ts';
import { checkSkellamRange, planDistributedNoise } from '../core/privacy/distributed-noise.ts';
import { skellamSecureLength } from '../core/privacy/skellam-rotation.ts';
import type { CoordinatorConfig } from './coordinator-config.ts';
import { DISTRIBUTED_NOISE, TOLERATED_DROPOUTS, type DistributedNoiseRequest } from './options/privacy.ts';

/**
 * `--distributed-noise skellam [--tolerated-dropouts D]`: distributed DP whose
 * noise is Skellam integers inside the secure sum, accounted as the sum's
 * noise (core/privacy/distributed-noise.ts). The plan needs the model's size,
 * known only once the task is loaded: `withSkellam` completes it then.
 */
type Flags = Readonly<Record<string, unknown>>;

/** Checks the flags against the rest of the configuration; `fail` builds the config error. */
export function parseDistributedNoise(
  v: Flags,
  config: Pick<CoordinatorConfig, 'clientDp' | 'settings'>,
  fail: (message: string) => Error,
): DistributedNoiseRequest | undefined {
  const kind = DISTRIBUTED_NOISE.read(v, fail);
  if (kind === 'gaussian') {
    if (v[TOLERATED_DROPOUTS.name] !== undefined) throw fail('--tolerated-dropouts needs --distributed-noise skellam');
    return undefined;
  }
  const { clientDp, settings } = config;
  if (clientDp?.placement !== 'distributed' || !settings.secureAggregation)
    throw fail(
      '--distributed-noise skellam needs --client-dp distributed and --secure-aggregation: the integer noise lives in the secure sum',
    );
  if (clientDp.clip.kind !== 'fixed') throw fail('--distributed-noise skellam needs a fixed --client-clip');
  const toleratedDropouts = TOLERATED_DROPOUTS.read(v, fail);
  const m = clientDp.expectedClients;
  if (!Number.isInteger(m) || m - toleratedDropouts - 1 < 1)
    throw fail(`--distributed-noise skellam needs an integer --expected-clients M with M − D − 1 ≥ 1 (M = ${m}, D = ${toleratedDropouts})`);
  // Every released sum must hold at least M − D shares of the noise.
  if (settings.minUpdates < m - toleratedDropouts)
    throw fail(
      `--distributed-noise skellam with --tolerated-dropouts ${toleratedDropouts} needs --min-updates of at least ${m - toleratedDropouts}: a sum of fewer updates would carry less than the accounted noise`,
    );
  return { kind: 'skellam', toleratedDropouts };
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
    dimension: skellamSecureLength(dimension),
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
  checkSkellamRange(plan, secure.maxParticipants ?? maxParticipants(secure, wordBits), wordBits);
  return { ...config, clientDp: { ...clientDp, skellam } };
}
