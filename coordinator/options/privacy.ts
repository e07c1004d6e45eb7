import type { DpFedAvgOptions } from '../../core/aggregation/dp-fedavg.ts';
import type { SampleDpConfig } from '../../core/protocol/messages.ts';
import { isPositiveInt } from '../flags.ts';
import { booleanOption, choiceOption, ConfigError, numberOption, type FlagValues, type OptionGroup } from './option.ts';

/** Client-level DP (DP-FedAvg, central or distributed) and sample-level DP (DP-SGD in every participant). */

export const CLIENT_DP = choiceOption({
  name: 'client-dp',
  placeholder: 'MODE',
  choices: ['central', 'distributed'],
  task: ['privacy', 'clientDp'],
  help: 'central (the coordinator clips and adds the noise) | distributed\n(each participant adds its share of the noise)',
});
export const CLIENT_NOISE_MULTIPLIER = numberOption({
  name: 'client-noise-multiplier',
  placeholder: 'Z',
  task: ['privacy', 'clientNoiseMultiplier'],
  check: (n) => n > 0,
  expected: 'a positive number',
  help: 'noise std on the sum of updates, in units of the clip norm',
});
/** The default clip norm is 1, or 0.1 as the start of an adaptive clip. */
export const CLIENT_CLIP = numberOption({
  name: 'client-clip',
  placeholder: 'S',
  task: ['privacy', 'clientClip'],
  check: (n) => n > 0,
  expected: 'a positive number',
  help: 'clip every update to L2 norm S (default 1)',
});
export const ADAPTIVE_CLIP = booleanOption({
  name: 'adaptive-clip',
  task: ['privacy', 'adaptiveClip'],
  help: 'adapt S to the median update norm (Andrew et al. 2021; central only;\nstarts at --client-clip, default 0.1)',
});
export const CLIENT_SAMPLE_RATE = numberOption({
  name: 'client-sample-rate',
  placeholder: 'Q',
  task: ['privacy', 'clientSampleRate'],
  check: (n) => n > 0 && n <= 1,
  expected: 'a number in (0, 1]',
  help: 'each participant is selected per round with probability Q',
});
/** Default: --clients-per-round. */
export const EXPECTED_CLIENTS = numberOption({
  name: 'expected-clients',
  placeholder: 'M',
  task: ['privacy', 'expectedClients'],
  check: (n) => n > 0,
  expected: 'a positive number',
  help: 'the fixed denominator of the average: Q x the number of participants\nyou expect (default --clients-per-round; --buffer-size in async mode)',
});
export const DELTA = numberOption({
  name: 'delta',
  placeholder: 'D',
  task: ['privacy', 'delta'],
  default: 1e-5,
  check: (n) => n > 0 && n < 1,
  expected: 'a number in (0, 1)',
  help: 'target delta (default {default}), for both kinds of DP',
});
export const EPSILON_BUDGET = numberOption({
  name: 'epsilon-budget',
  placeholder: 'X',
  task: ['privacy', 'epsilonBudget'],
  check: (n) => n > 0,
  expected: 'a positive number',
  help: 'stop before a round would take epsilon above X',
});
/** Skellam noise in the secure sum, checked by coordinator/distributed-noise-config.ts, which completes its plan once the model is known. */
export interface DistributedNoiseRequest {
  readonly kind: 'skellam';
  readonly toleratedDropouts: number;
}

/** Read by coordinator/distributed-noise-config.ts; absent: skellam under --secure-aggregation. */
export const DISTRIBUTED_NOISE = choiceOption({
  name: 'distributed-noise',
  placeholder: 'K',
  choices: ['gaussian', 'skellam'],
  task: ['privacy', 'distributedNoise'],
  help: "skellam (default with --secure-aggregation: integer noise in the secure sum,\naccounted as the sum's noise, add/remove one participant) | gaussian\n(each participant's float share accounted alone: zero-out, a far larger\nepsilon; the default without --secure-aggregation)",
});
/** Default: M − --min-updates, or ⌊M/10⌋ without it (distributed-noise-config.ts). */
export const TOLERATED_DROPOUTS = numberOption({
  name: 'tolerated-dropouts',
  placeholder: 'D',
  task: ['privacy', 'toleratedDropouts'],
  check: (n) => Number.isInteger(n) && n >= 0,
  expected: 'a non-negative integer',
  help: 'skellam: the sum keeps the target noise with up to D of --expected-clients M\nmissing (default M - --min-updates, or floor(M/10) with --min-updates\nraised to M - D; noise std x sqrt((M-1)/(M-D-1)))',
});
export const FRESH_PRIVACY_BUDGET = booleanOption({
  name: 'fresh-privacy-budget',
  help: 'start client-level DP although --data-dir holds no earlier spend for the\ntask (refused without it: a new folder must not silently reset epsilon)',
});
export const ACCOUNTANT = choiceOption({
  name: 'accountant',
  placeholder: 'A',
  task: ['privacy', 'accountant'],
  choices: ['auto', 'pld', 'rdp'],
  help: "auto (default: the smaller of the PLD and RDP bounds) | pld | rdp: turns\nthe charged steps into epsilon, for client-level DP, its budget and the\nparticipants' DP-SGD ledgers (see docs/privacy-accounting.md)",
});

export const DP_SGD_CLIP = numberOption({
  name: 'dp-sgd-clip',
  placeholder: 'C',
  task: ['privacy', 'dpSgdClip'],
  check: (n) => n > 0,
  expected: 'a positive number',
  help: "clip each example's gradient to L2 norm C (turns DP-SGD on)",
});
export const DP_SGD_NOISE_MULTIPLIER = numberOption({
  name: 'dp-sgd-noise-multiplier',
  placeholder: 'S',
  task: ['privacy', 'dpSgdNoiseMultiplier'],
  check: (n) => n > 0,
  expected: 'a positive number',
  help: "noise std S x C on each step's gradient sum (required)",
});
/** Default: --batch-size. */
export const DP_SGD_BATCH_SIZE = numberOption({
  name: 'dp-sgd-batch-size',
  placeholder: 'B',
  task: ['privacy', 'dpSgdBatchSize'],
  check: isPositiveInt,
  expected: 'a positive integer',
  help: 'expected Poisson batch size (default --batch-size)',
});
export const DP_SGD_EPSILON_BUDGET = numberOption({
  name: 'dp-sgd-epsilon-budget',
  placeholder: 'X',
  task: ['privacy', 'dpSgdEpsilonBudget'],
  check: (n) => n > 0,
  expected: 'a positive number',
  help: 'each participant stops contributing before its data would\npass epsilon X (a participant may set a lower one: ?epsilon-budget=)',
});

export const CLIENT_DP_GROUP: OptionGroup = {
  heading: 'Client-level differential privacy (DP-FedAvg; see docs/privacy.md)',
  options: [
    CLIENT_DP,
    CLIENT_NOISE_MULTIPLIER,
    CLIENT_CLIP,
    ADAPTIVE_CLIP,
    CLIENT_SAMPLE_RATE,
    EXPECTED_CLIENTS,
    DELTA,
    EPSILON_BUDGET,
    DISTRIBUTED_NOISE,
    TOLERATED_DROPOUTS,
    FRESH_PRIVACY_BUDGET,
    ACCOUNTANT,
  ],
};
export const SAMPLE_DP_GROUP: OptionGroup = {
  heading: 'Sample-level differential privacy (DP-SGD in every participant)',
  options: [DP_SGD_CLIP, DP_SGD_NOISE_MULTIPLIER, DP_SGD_BATCH_SIZE, DP_SGD_EPSILON_BUDGET],
};

/** Client-level DP (DP-FedAvg) as the flags ask for it; undefined without --client-dp. */
export function parseClientDp(v: FlagValues, clientsPerRound: number, delta: number): DpFedAvgOptions | undefined {
  const mode = CLIENT_DP.read(v);
  if (mode === undefined) {
    for (const option of [CLIENT_NOISE_MULTIPLIER, CLIENT_CLIP, CLIENT_SAMPLE_RATE, EXPECTED_CLIENTS, EPSILON_BUDGET, ADAPTIVE_CLIP]) {
      if (v[option.name] !== undefined) throw new ConfigError(`--${option.name} needs --client-dp central|distributed`);
    }
    return undefined;
  }
  if (v[CLIENT_NOISE_MULTIPLIER.name] === undefined) throw new ConfigError('--client-dp needs --client-noise-multiplier Z');
  if (v[CLIENT_SAMPLE_RATE.name] === undefined)
    throw new ConfigError('--client-dp needs --client-sample-rate Q (the probability that a participant is selected in a round)');
  const z = CLIENT_NOISE_MULTIPLIER.readOr(v, 0);
  const q = CLIENT_SAMPLE_RATE.readOr(v, 0);
  const m = EXPECTED_CLIENTS.readOr(v, clientsPerRound);
  const adaptive = ADAPTIVE_CLIP.read(v) === true;
  const clipNorm = CLIENT_CLIP.readOr(v, adaptive ? 0.1 : 1);
  return {
    placement: mode,
    noiseMultiplier: z,
    sampleRate: q,
    expectedClients: m,
    delta,
    epsilonBudget: EPSILON_BUDGET.read(v),
    // Andrew et al. 2021 defaults: target quantile 0.5, clip learning rate 0.2, count noise m/20.
    clip: adaptive
      ? { kind: 'adaptive', initialNorm: clipNorm, targetQuantile: 0.5, learningRate: 0.2, countNoiseStd: m / 20 }
      : { kind: 'fixed', norm: clipNorm },
  };
}

/** DP-SGD in every participant as the flags ask for it; undefined without --dp-sgd-clip. */
export function parseSampleDp(v: FlagValues, batchSize: number, delta: number): SampleDpConfig | undefined {
  if (v[DP_SGD_CLIP.name] === undefined) {
    for (const option of [DP_SGD_NOISE_MULTIPLIER, DP_SGD_BATCH_SIZE, DP_SGD_EPSILON_BUDGET]) {
      if (v[option.name] !== undefined) throw new ConfigError(`--${option.name} needs --dp-sgd-clip C`);
    }
    return undefined;
  }
  if (v[DP_SGD_NOISE_MULTIPLIER.name] === undefined) throw new ConfigError('--dp-sgd-clip needs --dp-sgd-noise-multiplier S');
  return {
    clipNorm: DP_SGD_CLIP.readOr(v, 0),
    noiseMultiplier: DP_SGD_NOISE_MULTIPLIER.readOr(v, 0),
    expectedBatchSize: DP_SGD_BATCH_SIZE.readOr(v, batchSize),
    delta,
    epsilonBudget: DP_SGD_EPSILON_BUDGET.read(v),
  };
}
