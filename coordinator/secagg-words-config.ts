import type { RoundSettings, SecureAggregationSettings } from '../core/protocol/status.ts';
import { planDistributedNoise } from '../core/privacy/distributed-noise.ts';
import { rotatedLengthFor } from '../core/compression/update-codec.ts';
import { maxParticipantsForWords, wordBitsFor } from '../core/secagg/modulus.ts';
import { clipRangeFloor } from '../core/secagg/rotated-clip-range.ts';
import { quantizationStep } from '../core/secagg/quantize.ts';
import type { CoordinatorConfig } from './coordinator-config.ts';
import { GAUSSIAN_ALTERNATIVE } from './distributed-noise-config.ts';
import { ConfigError } from './options/option.ts';
import { secAggClipNorm } from './options/secure-aggregation.ts';
import { selectedPerRound } from './options/selection.ts';

/**
 * The compressed secure sum's words, finished once the model's size d is
 * known (docs/secagg-compression.md). At start (options/secure-aggregation.ts)
 * b holds the participants per round without noise; here:
 *
 * - Skellam noise (added to the integers after quantisation, never clipped)
 *   needs room in the ring: b grows to hold n·R/2 plus 12 standard
 *   deviations of the sum's noise (the bound checkSkellamRange uses), and
 *   the documented n becomes the most that b holds with that noise.
 * - A Gaussian noise share (added before quantisation) is clipped with the
 *   value at ±c: the sum would then not carry the noise the run reports, and
 *   clipping a noised value biases it. c must hold the clipped update plus
 *   the share's tail over all n·d draws, or the start is refused (never
 *   clipped silently).
 * - Rotated rounds (int4) with an L2 clip and no --secagg-clip-range get
 *   c = that floor, computed with the rotated coordinate bound
 *   (core/secagg/rotated-clip-range.ts): far below C, so a far finer step.
 *
 * 32-bit words (float32) are returned unchanged.
 */
export function secAggSettingsForModel(config: CoordinatorConfig, dimension: number): RoundSettings {
  const configured = config.settings.secureAggregation;
  if (!configured || configured.wordBits === undefined) return config.settings;
  const selected = Math.max(3, selectedPerRound(config.settings));
  const share = gaussianShare(config);
  const clipNorm = share?.clipNorm ?? secAggClipNorm(config.clientDp, config.settings);
  // The floor holds for up to the documented n: the most the noise-free words hold.
  const participants = configured.maxParticipants ?? selected;
  // c must hold every honest coordinate: C (or, rotated, the far smaller rotated bound) plus the noise share's tail.
  const needed =
    clipNorm === undefined
      ? undefined
      : clipRangeFloor({
          clipNorm,
          noiseStd: share?.noiseStd ?? 0,
          participants,
          dimension,
          rotated: configured.rotated === true,
        });
  const secure = configured.derivedClipRange && needed !== undefined ? { ...configured, clipRange: needed } : configured;
  const settings = secure === configured ? config.settings : { ...config.settings, secureAggregation: secure };
  if (share !== undefined && needed !== undefined && secure.clipRange < needed) {
    throw new ConfigError(
      `--secagg-clip-range ${secure.clipRange} cannot hold the noise share of std ${share.noiseStd.toPrecision(3)} ` +
        `on top of updates clipped to ${share.clipNorm} with ${Math.log2(secure.quantizationRange + 2)} value bits (--update-encoding): ` +
        `the noised values would be clipped, so the sum would not carry the noise the run reports (and clipping biases it). ` +
        `Set --secagg-clip-range to at least ${needed.toPrecision(4)} (step Δ = ${((2 * needed) / secure.quantizationRange).toPrecision(3)}), or use --update-encoding float32`,
    );
  }
  const noiseStdPerContributor = skellamStd(config, secure, dimension);
  if (noiseStdPerContributor === 0) return settings;
  const tail = (n: number) => 12 * noiseStdPerContributor * Math.sqrt(n);
  let wordBits: number;
  try {
    wordBits = Math.max(configured.wordBits, wordBitsFor(secure.quantizationRange, selected, tail(selected)));
  } catch (error) {
    throw new ConfigError(`--distributed-noise skellam with --update-encoding: ${(error as Error).message}; ${GAUSSIAN_ALTERNATIVE}`);
  }
  let held = maxParticipantsForWords(secure.quantizationRange, wordBits);
  while (held > selected && held * (secure.quantizationRange / 2) + tail(held) > 2 ** (wordBits - 2) - 1) held--;
  // A derived c holds for the n it was derived for: the documented n does not grow past it with the wider words.
  const maxParticipants = secure.derivedClipRange ? Math.min(held, participants) : held;
  return { ...settings, secureAggregation: { ...secure, wordBits, maxParticipants } };
}

/** The Gaussian noise each participant adds to its update before quantisation, when there is any. */
function gaussianShare(config: CoordinatorConfig): { readonly clipNorm: number; readonly noiseStd: number } | undefined {
  const { clientDp, distributedNoise, settings } = config;
  if (clientDp?.placement === 'distributed' && distributedNoise === undefined && clientDp.clip.kind === 'fixed')
    return {
      clipNorm: clientDp.clip.norm,
      noiseStd: (clientDp.noiseMultiplier * clientDp.clip.norm) / Math.sqrt(clientDp.expectedClients),
    };
  const privacy = settings.fit.privacy;
  return privacy !== undefined && privacy.noiseStd > 0 ? privacy : undefined;
}

/** √μ_i: one contributor's Skellam noise std in integer units; 0 without Skellam. */
function skellamStd(config: CoordinatorConfig, secure: SecureAggregationSettings, dimension: number): number {
  const { clientDp, distributedNoise } = config;
  if (distributedNoise === undefined || clientDp === undefined || clientDp.clip.kind !== 'fixed') return 0;
  const plan = planDistributedNoise({
    clipNorm: clientDp.clip.norm,
    noiseMultiplier: clientDp.noiseMultiplier,
    expectedContributors: clientDp.expectedClients,
    step: quantizationStep(secure),
    dimension: rotatedLengthFor(dimension),
    toleratedDropouts: distributedNoise.toleratedDropouts,
  });
  return Math.sqrt(plan.participantVariance);
}
