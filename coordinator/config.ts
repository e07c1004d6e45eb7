import { parseArgs } from 'node:util';
import { DEFAULT_CLAIM_CAP_MULTIPLE } from '../core/aggregation/claim-cap.ts';
import type { DpFedAvgOptions } from '../core/aggregation/dp-fedavg.ts';
import { isAccountantKind, type AccountantKind } from '../core/privacy/epsilon.ts';
import { DEFAULT_OUTLIER_BOUND } from '../core/aggregation/outlier-bound.ts';
import { isArchitecture } from '../core/model/architectures.ts';
import type { ArchitectureName, SampleDpConfig } from '../core/protocol/messages.ts';
import type { RoundSettings, SecureAggregationSettings } from '../core/protocol/status.ts';
import { effectiveDegree } from '../core/secagg/graph.ts';
import { recommendedThreshold } from '../core/secagg/protocol.ts';
import { DEFAULT_QUANTIZATION, maxParticipants } from '../core/secagg/quantize.ts';
import { parseDistributedNoise, type DistributedNoiseRequest } from './distributed-noise-config.ts';
import { isNonNegativeInt, isPositiveInt, numberFlag } from './flags.ts';
import { parseStrategyFlags, StrategyFlagError, type StrategyConfig } from './strategies.ts';
import { parseSecurityConfig, SECURITY_OPTIONS, SECURITY_USAGE, type SecurityConfig } from './security/config.ts';
import { explainConfigError, readTaskFile, TaskFileError, type TaskFile } from './task/task-file.ts';

export interface CoordinatorConfig {
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly architecture: ArchitectureName;
  readonly settings: RoundSettings;
  readonly seed: number;
  readonly demoParticipants: number;
  /** Folder of the built web app (vite build output). */
  readonly staticDir: string;
  readonly quiet: boolean;
  /** `--manual-start`: no round runs until the operator starts the federation from the dashboard. */
  readonly manualStart?: boolean;
  /** Encrypts checkpoints with AES-256-GCM under the key in this file. */
  readonly checkpointKeyFile?: string;
  /** Client-level differential privacy (DP-FedAvg), when asked for. */
  readonly clientDp?: DpFedAvgOptions;
  /** `--distributed-noise skellam`: distributed DP noise as Skellam integers in the secure sum (coordinator/distributed-noise-config.ts). */
  readonly distributedNoise?: DistributedNoiseRequest;
  /** `--fresh-privacy-budget`: the operator acknowledges that client-level DP starts at ε = 0 where no earlier spend is on disk. */
  readonly freshPrivacyBudget?: boolean;
  /** The aggregation rule and its parameters (coordinator/strategies.ts); absent: FedAvg (DP-FedAvg with clientDp). */
  readonly strategy?: StrategyConfig;
  /** Tokens, TLS, origins and limits (coordinator/security/config.ts); absent: open, plain HTTP, default limits. */
  readonly security?: SecurityConfig;
  /** The task file (--task), checked; absent: the embedded MNIST demo. Its settings are already in the fields above. */
  readonly task?: TaskFile;
  /** Defences against poisoning that need each update on the coordinator (docs/poisoning.md); absent: the defaults. */
  readonly poisoning?: PoisoningConfig;
}

/** `--outlier-norm-multiple`, `--claim-cap-multiple`, `--max-claimed-examples` (docs/poisoning.md); a multiple of 0 turns that check off. */
export interface PoisoningConfig {
  readonly outlierNormMultiple: number;
  readonly claimCapMultiple: number;
  readonly maxClaimedExamples?: number;
}

export const USAGE = `Usage: npm start -- [options]

Runs the federation coordinator with the embedded demo task (MNIST digits), or a task file.

Task
  --task FILE              a task configuration file (see docs/tasks.md), e.g. tasks/penguins/task.json;
                           flags given here override its settings

Server
  --port N                 HTTP port (default 8080, or $PORT; 0 picks a free one)
  --host H                 interface to listen on (default 0.0.0.0)
  --data-dir DIR           where runs are saved (default ./runs)
  --demo-participants N    also open N headless Chromium participants (default 0)

${SECURITY_USAGE}

Model and rounds
  --model NAME             mlp (784-128-10, default) | 2nn (784-200-200-10) | cnn
  --rounds N               stop after N rounds (default 20)
  --target-accuracy X      stop once the test accuracy reaches X (0..1)
  --early-stopping-patience N   stop after N evaluated rounds without a better test accuracy
                           (the best model is kept in <data-dir>/<task>/best/ either way)
  --min-clients N          participants needed to start a round (default 1, or N demo participants)
  --clients-per-round N    participants selected per round (default 10)
  --min-updates N          updates needed to aggregate a round (default 1)
  --round-timeout S        seconds a round collects updates (default 120)
  --epochs N               local epochs per round (default 1)
  --batch-size N           local batch size (default 32)
  --learning-rate X        local SGD learning rate (default 0.1)
  --clip-norm S            clip each update to L2 norm S
  --noise-std X            add N(0, X^2) noise to each clipped update (needs --clip-norm)
  --seed N                 seed for the initial model and participant selection (default 1)
  --over-select F          select F more participants than --clients-per-round (e.g. 0.3), so
                           dropouts still leave enough updates
  --adaptive-deadline      close rounds after 3x the recent 90th-percentile participant latency
                           (at least 5 s, at most --round-timeout)
  --manual-start           wait until the operator presses Start on the dashboard (needs
                           --admin-token: without one the dashboard is read-only)
  --checkpoint-key-file F  encrypt checkpoints with AES-256-GCM (64 hex characters in F,
                           e.g. from \`openssl rand -hex 32\`)

Client-level differential privacy (DP-FedAvg; see docs/privacy.md)
  --client-dp MODE         central (the coordinator clips and adds the noise) | distributed
                           (each participant adds its share of the noise)
  --client-noise-multiplier Z   noise std on the sum of updates, in units of the clip norm
  --client-clip S          clip every update to L2 norm S (default 1)
  --adaptive-clip          adapt S to the median update norm (Andrew et al. 2021; central only;
                           starts at --client-clip, default 0.1)
  --client-sample-rate Q   each participant is selected per round with probability Q
  --expected-clients M     the fixed denominator of the average: Q x the number of participants
                           you expect (default --clients-per-round)
  --delta D                target delta (default 1e-5), for both kinds of DP
  --epsilon-budget X       stop before a round would take epsilon above X
  --distributed-noise K    gaussian (default: each participant's float share, accounted alone) |
                           skellam (integer noise in the secure sum, accounted as the sum's noise;
                           needs --client-dp distributed and --secure-aggregation)
  --tolerated-dropouts D   skellam: the sum keeps the target noise with up to D of --expected-clients
                           missing (needs --min-updates >= M - D; default 0)
  --fresh-privacy-budget   start client-level DP although --data-dir holds no earlier spend for the
                           task (refused without it: a new folder must not silently reset epsilon)
  --accountant A           auto (default: the smaller of the PLD and RDP bounds) | pld | rdp: turns
                           the charged steps into epsilon, for client-level DP, its budget and the
                           participants' DP-SGD ledgers (see docs/privacy-accounting.md)

Aggregation (every update counts once in the robust rules: example counts are self-reported)
  --strategy NAME          fedavg (default, weighted by example count) | median (coordinate-wise) |
                           trimmed-mean (coordinate-wise) | krum | multi-krum | fedprox |
                           fedadam | fedyogi (adaptive server optimizers, Reddi et al. 2021)
  --trim-fraction B        trimmed-mean: fraction of values dropped at each end of every
                           coordinate, floor(B x updates) (default 0.1)
  --byzantine F            krum, multi-krum: Byzantine updates tolerated per round (default 1;
                           needs --min-updates of at least 2F+3)
  --multi-krum M           multi-krum: apply the mean of the M best-scored updates (default n - F)
  --proximal-mu MU         fedprox: participants add (MU/2)|w - w_global|^2 to their loss (default 0.01)
  --server-learning-rate X scales the aggregated update (default 1); fedadam/fedyogi: their
                           learning rate eta (default 0.01)
  --server-lr-decay D      fedavg: multiply the server learning rate by D (0 < D <= 1) every round
  --max-update-norm X      reject (never clip) updates whose L2 norm is above X, with the code
                           UPDATE_TOO_LARGE; the sender is out of that round
  --outlier-norm-multiple X   reject updates whose L2 norm is above X times the median of recently
                           accepted norms, with UPDATE_OUTLIER (default 5; 0 = off; not under
                           client-level DP or secure aggregation, whose clipping bounds each update)
  --claim-cap-multiple X   weigh no update with more than X times the median example count the
                           round's participants claimed at join (default 3; 0 = off)
  --max-claimed-examples N weigh no update with more than N examples (default: no fixed maximum)

Sample-level differential privacy (DP-SGD in every participant)
  --dp-sgd-clip C          clip each example's gradient to L2 norm C (turns DP-SGD on)
  --dp-sgd-noise-multiplier S   noise std S x C on each step's gradient sum (required)
  --dp-sgd-batch-size B    expected Poisson batch size (default --batch-size)
  --dp-sgd-epsilon-budget X     each participant stops contributing before its data would
                           pass epsilon X (a participant may set a lower one: ?epsilon-budget=)
Secure aggregation (SecAgg/SecAgg+: a coordinator following the protocol learns only the sum;
keys are not signed, see docs/secure-aggregation.md and docs/protocol.md)
  --secure-aggregation     mask every update; the coordinator decodes only the sum of each round's
                           updates (an unweighted mean: example counts would reveal too much)
  --secagg-neighbours K    SecAgg+ neighbours per participant, or all (default all)
  --secagg-threshold T     shares needed to unmask (default: a strict majority of k + 1)
  --secagg-clip-range C    clip every coordinate of an update to [-C, C] (default 8, at least the
                           clip norm)
  --secagg-quantization-range R   even integer; step 2C/R (default 2^22)
  --secagg-step-timeout S  seconds for each key-exchange and unmasking step (default 30)
  --quiet                  log less
  --help                   show this text
`;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

function number(text: string | undefined, flag: string, fallback: number, check: (n: number) => boolean, expected: string): number {
  return numberFlag(text, flag, check, expected, (message) => new ConfigError(message)) ?? fallback;
}

/** Parses command-line flags (and PORT from the environment) into a checked config. */
export function parseConfig(argv: readonly string[], env: Record<string, string | undefined> = {}): CoordinatorConfig | 'help' {
  return parseFlags(argv, env, undefined);
}

/** With `task`, argv is the task file's flags followed by the command line's, so the command line wins. */
function parseFlags(argv: readonly string[], env: Record<string, string | undefined>, task: { file: TaskFile; commandLine: ReadonlySet<string> } | undefined): CoordinatorConfig | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        'data-dir': { type: 'string' },
        'demo-participants': { type: 'string' },
        model: { type: 'string' },
        rounds: { type: 'string' },
        'target-accuracy': { type: 'string' },
        'early-stopping-patience': { type: 'string' },
        'min-clients': { type: 'string' },
        'clients-per-round': { type: 'string' },
        'min-updates': { type: 'string' },
        'round-timeout': { type: 'string' },
        epochs: { type: 'string' },
        'batch-size': { type: 'string' },
        'learning-rate': { type: 'string' },
        'clip-norm': { type: 'string' },
        'noise-std': { type: 'string' },
        seed: { type: 'string' },
        'static-dir': { type: 'string' },
        task: { type: 'string' },
        quiet: { type: 'boolean' },
        'over-select': { type: 'string' },
        'adaptive-deadline': { type: 'boolean' },
        'manual-start': { type: 'boolean' },
        'checkpoint-key-file': { type: 'string' },
        'client-dp': { type: 'string' },
        'fresh-privacy-budget': { type: 'boolean' },
        'distributed-noise': { type: 'string' },
        'tolerated-dropouts': { type: 'string' },
        'client-noise-multiplier': { type: 'string' },
        'client-clip': { type: 'string' },
        'adaptive-clip': { type: 'boolean' },
        'client-sample-rate': { type: 'string' },
        'expected-clients': { type: 'string' },
        delta: { type: 'string' },
        'epsilon-budget': { type: 'string' },
        accountant: { type: 'string' },
        'dp-sgd-clip': { type: 'string' },
        'dp-sgd-noise-multiplier': { type: 'string' },
        'dp-sgd-batch-size': { type: 'string' },
        'dp-sgd-epsilon-budget': { type: 'string' },
        strategy: { type: 'string' },
        'trim-fraction': { type: 'string' },
        byzantine: { type: 'string' },
        'multi-krum': { type: 'string' },
        'proximal-mu': { type: 'string' },
        'server-learning-rate': { type: 'string' },
        'server-lr-decay': { type: 'string' },
        'max-update-norm': { type: 'string' },
        'outlier-norm-multiple': { type: 'string' },
        'claim-cap-multiple': { type: 'string' },
        'max-claimed-examples': { type: 'string' },
        'secure-aggregation': { type: 'boolean' },
        'secagg-neighbours': { type: 'string' },
        'secagg-threshold': { type: 'string' },
        'secagg-clip-range': { type: 'string' },
        'secagg-quantization-range': { type: 'string' },
        'secagg-step-timeout': { type: 'string' },
        ...SECURITY_OPTIONS,
        help: { type: 'boolean' },
      },
    });
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
  const v = parsed.values;
  if (v.help) return 'help';
  if (v.task !== undefined && task === undefined) {
    let file: TaskFile;
    try {
      file = readTaskFile(v.task);
    } catch (error) {
      throw error instanceof TaskFileError ? new ConfigError(error.message) : error;
    }
    const commandLine = new Set(Object.keys(v));
    if (file.model.kind === 'modelJson' && v.model !== undefined) throw new ConfigError(`--model picks a built-in architecture, but ${file.file} brings its own model (model.modelJson)`);
    try {
      return parseFlags([...file.flags, ...argv], env, { file, commandLine });
    } catch (error) {
      // Errors about settings from the file name the file and its keys, not flags the user never typed.
      throw error instanceof ConfigError ? new ConfigError(explainConfigError(error.message, file, commandLine)) : error;
    }
  }
  const architecture = v.model ?? 'mlp';
  if (!isArchitecture(architecture)) throw new ConfigError(`--model must be mlp, 2nn or cnn, got "${architecture}"`);
  const port = number(v.port ?? env.PORT, 'port', 8080, (n) => isNonNegativeInt(n) && n <= 65535, 'a port number (0-65535)');
  const demoParticipants = number(v['demo-participants'], 'demo-participants', 0, isNonNegativeInt, 'a non-negative integer');
  // With demo participants, wait for all of them so the first round is not trained by the first tab alone.
  const minClients = number(v['min-clients'], 'min-clients', Math.max(1, demoParticipants), isPositiveInt, 'a positive integer');
  const clientsPerRound = number(v['clients-per-round'], 'clients-per-round', 10, isPositiveInt, 'a positive integer');
  const minUpdates = number(v['min-updates'], 'min-updates', 1, isPositiveInt, 'a positive integer');
  if (clientsPerRound < minUpdates) throw new ConfigError(`--clients-per-round (${clientsPerRound}) must be at least --min-updates (${minUpdates})`);
  const target = v['target-accuracy'];
  const clipNorm = v['clip-norm'];
  const noiseStd = v['noise-std'];
  if (noiseStd !== undefined && clipNorm === undefined) throw new ConfigError('--noise-std needs --clip-norm: noise without a clipping bound protects nothing');
  const delta = number(v.delta, 'delta', 1e-5, (n) => n > 0 && n < 1, 'a number in (0, 1)');
  const batchSize = number(v['batch-size'], 'batch-size', 32, isPositiveInt, 'a positive integer');
  const accountant = parseAccountant(v);
  const sampleDp = withAccountant(parseSampleDp(v, batchSize, delta), accountant);
  const settings: RoundSettings = {
    rounds: number(v.rounds, 'rounds', 20, isPositiveInt, 'a positive integer'),
    minClients,
    clientsPerRound,
    minUpdates,
    roundTimeoutMs: 1000 * number(v['round-timeout'], 'round-timeout', 120, (n) => n > 0, 'a positive number of seconds'),
    overSelect: v['over-select'] === undefined ? undefined : number(v['over-select'], 'over-select', 0, (n) => n >= 0 && n <= 10, 'a fraction in [0, 10]'),
    adaptiveDeadline: v['adaptive-deadline'] ?? undefined,
    targetAccuracy: target === undefined ? undefined : number(target, 'target-accuracy', 0, (n) => n > 0 && n <= 1, 'a number in (0, 1]'),
    earlyStoppingPatience:
      v['early-stopping-patience'] === undefined ? undefined : number(v['early-stopping-patience'], 'early-stopping-patience', 0, isPositiveInt, 'a positive integer'),
    fit: {
      epochs: number(v.epochs, 'epochs', 1, isPositiveInt, 'a positive integer'),
      batchSize,
      sampleDp,
      learningRate: number(v['learning-rate'], 'learning-rate', 0.1, (n) => n > 0, 'a positive number'),
      privacy:
        clipNorm === undefined
          ? undefined
          : {
              clipNorm: number(clipNorm, 'clip-norm', 0, (n) => n > 0, 'a positive number'),
              noiseStd: number(noiseStd, 'noise-std', 0, (n) => n >= 0, 'a number >= 0'),
            },
    },
  };
  const clientDp = withAccountant(parseClientDp(v, settings.clientsPerRound, delta), accountant);
  if (accountant !== undefined && !clientDp && !sampleDp) throw new ConfigError('--accountant needs --client-dp or --dp-sgd-clip: without differential privacy nothing is accounted');
  if (clientDp && settings.fit.privacy) throw new ConfigError('--clip-norm/--noise-std and --client-dp both set the update clipping: use one');
  const strategy = parseStrategy(v, settings, clientDp);
  const secureAggregation = parseSecureAggregation(v, settings, clientDp, strategy);
  const security = parseSecurityConfig(v, (message) => new ConfigError(message));
  if (clientDp && !security?.adminTokens) {
    // The status page names who took part in each round; sampling amplifies privacy only if that stays private.
    throw new ConfigError('--client-dp needs --admin-token or --admin-token-file: the dashboard and /api/status show who took part in each round, which must stay with the operator');
  }
  // Only an admin's dashboard may send controls: without a token nobody could ever start the federation.
  if (v['manual-start'] && !security?.adminTokens) throw new ConfigError('--manual-start needs --admin-token or --admin-token-file: only an admin dashboard can start the federation');
  const distributedNoise = parseDistributedNoise(v, { clientDp, settings: secureAggregation ? { ...settings, secureAggregation } : settings }, (message) => new ConfigError(message));
  if (distributedNoise && accountant === 'pld') throw new ConfigError('--accountant pld cannot account --distributed-noise skellam: its noise is known only by an RDP bound; use --accountant auto or rdp');
  return {
    checkpointKeyFile: v['checkpoint-key-file'],
    clientDp,
    freshPrivacyBudget: v['fresh-privacy-budget'] ?? undefined,
    distributedNoise,
    strategy,
    port,
    host: v.host ?? '0.0.0.0',
    dataDir: v['data-dir'] ?? './runs',
    architecture,
    settings: secureAggregation ? { ...settings, secureAggregation } : settings,
    seed: number(v.seed, 'seed', 1, isNonNegativeInt, 'a non-negative integer'),
    demoParticipants,
    staticDir: v['static-dir'] ?? 'dist',
    quiet: v.quiet ?? false,
    manualStart: v['manual-start'] ?? undefined,
    security,
    task: task?.file,
    poisoning: parsePoisoning(v, clientDp !== undefined || secureAggregation !== undefined),
  };
}

/** Poisoning defences (docs/poisoning.md). `normsHidden`: client-level DP or secure aggregation, where the outlier bound cannot run. */
function parsePoisoning(v: Record<string, string | boolean | undefined>, normsHidden: boolean): PoisoningConfig {
  const str = (name: string) => v[name] as string | undefined;
  if (normsHidden && str('outlier-norm-multiple') !== undefined && Number(str('outlier-norm-multiple')) !== 0) {
    throw new ConfigError('--outlier-norm-multiple needs each update norm on the coordinator, which client-level DP and secure aggregation hide (their clipping bounds each update): drop it');
  }
  const max = str('max-claimed-examples');
  return {
    outlierNormMultiple: number(str('outlier-norm-multiple'), 'outlier-norm-multiple', DEFAULT_OUTLIER_BOUND.multiple, (n) => n === 0 || n > 1, '0 (off) or a number above 1'),
    claimCapMultiple: number(str('claim-cap-multiple'), 'claim-cap-multiple', DEFAULT_CLAIM_CAP_MULTIPLE, (n) => n === 0 || n >= 1, '0 (off) or a number of at least 1'),
    maxClaimedExamples: max === undefined ? undefined : number(max, 'max-claimed-examples', 0, isPositiveInt, 'a positive integer'),
  };
}

// --accountant (issue 19): which accountant turns the charged steps into ε; absent: 'auto' where each is used.
function parseAccountant(v: Record<string, string | boolean | undefined>): AccountantKind | undefined {
  const text = v.accountant as string | undefined;
  if (text === undefined) return undefined;
  if (!isAccountantKind(text)) throw new ConfigError(`--accountant must be auto, pld or rdp, got "${text}"`);
  return text;
}

function withAccountant<T extends object>(options: T | undefined, accountant: AccountantKind | undefined): T | undefined {
  return options === undefined || accountant === undefined ? options : { ...options, accountant };
}

function parseClientDp(v: Record<string, string | boolean | undefined>, clientsPerRound: number, delta: number): DpFedAvgOptions | undefined {
  const mode = v['client-dp'] as string | undefined;
  const str = (name: string) => v[name] as string | undefined;
  if (mode === undefined) {
    for (const flag of ['client-noise-multiplier', 'client-clip', 'client-sample-rate', 'expected-clients', 'epsilon-budget', 'adaptive-clip']) {
      if (v[flag] !== undefined) throw new ConfigError(`--${flag} needs --client-dp central|distributed`);
    }
    return undefined;
  }
  if (mode !== 'central' && mode !== 'distributed') throw new ConfigError(`--client-dp must be central or distributed, got "${mode}"`);
  if (str('client-noise-multiplier') === undefined) throw new ConfigError('--client-dp needs --client-noise-multiplier Z');
  if (str('client-sample-rate') === undefined) throw new ConfigError('--client-dp needs --client-sample-rate Q (the probability that a participant is selected in a round)');
  const z = number(str('client-noise-multiplier'), 'client-noise-multiplier', 0, (n) => n > 0, 'a positive number');
  const q = number(str('client-sample-rate'), 'client-sample-rate', 0, (n) => n > 0 && n <= 1, 'a number in (0, 1]');
  const m = number(str('expected-clients'), 'expected-clients', clientsPerRound, (n) => n > 0, 'a positive number');
  const adaptive = v['adaptive-clip'] === true;
  const clipNorm = number(str('client-clip'), 'client-clip', adaptive ? 0.1 : 1, (n) => n > 0, 'a positive number');
  const budget = str('epsilon-budget');
  return {
    placement: mode,
    noiseMultiplier: z,
    sampleRate: q,
    expectedClients: m,
    delta,
    epsilonBudget: budget === undefined ? undefined : number(budget, 'epsilon-budget', 0, (n) => n > 0, 'a positive number'),
    // Andrew et al. 2021 defaults: target quantile 0.5, clip learning rate 0.2, count noise m/20.
    clip: adaptive
      ? { kind: 'adaptive', initialNorm: clipNorm, targetQuantile: 0.5, learningRate: 0.2, countNoiseStd: m / 20 }
      : { kind: 'fixed', norm: clipNorm },
  };
}

function parseSampleDp(v: Record<string, string | boolean | undefined>, batchSize: number, delta: number): SampleDpConfig | undefined {
  const str = (name: string) => v[name] as string | undefined;
  if (str('dp-sgd-clip') === undefined) {
    for (const flag of ['dp-sgd-noise-multiplier', 'dp-sgd-batch-size', 'dp-sgd-epsilon-budget']) {
      if (v[flag] !== undefined) throw new ConfigError(`--${flag} needs --dp-sgd-clip C`);
    }
    return undefined;
  }
  if (str('dp-sgd-noise-multiplier') === undefined) throw new ConfigError('--dp-sgd-clip needs --dp-sgd-noise-multiplier S');
  const budget = str('dp-sgd-epsilon-budget');
  return {
    clipNorm: number(str('dp-sgd-clip'), 'dp-sgd-clip', 0, (n) => n > 0, 'a positive number'),
    noiseMultiplier: number(str('dp-sgd-noise-multiplier'), 'dp-sgd-noise-multiplier', 0, (n) => n > 0, 'a positive number'),
    expectedBatchSize: number(str('dp-sgd-batch-size'), 'dp-sgd-batch-size', batchSize, isPositiveInt, 'a positive integer'),
    delta,
    epsilonBudget: budget === undefined ? undefined : number(budget, 'dp-sgd-epsilon-budget', 0, (n) => n > 0, 'a positive number'),
  };
}

function parseStrategy(v: Record<string, string | boolean | undefined>, settings: RoundSettings, clientDp: DpFedAvgOptions | undefined): StrategyConfig {
  const clip = clientDp ? (clientDp.clip.kind === 'fixed' ? clientDp.clip.norm : clientDp.clip.initialNorm) : settings.fit.privacy?.clipNorm;
  try {
    return parseStrategyFlags(v, {
      clientsPerRound: settings.clientsPerRound,
      minUpdates: settings.minUpdates,
      clientDp: clientDp?.placement,
      clientClipNorm: clip,
      sampleDp: settings.fit.sampleDp !== undefined,
    });
  } catch (error) {
    if (error instanceof StrategyFlagError) throw new ConfigError(error.message);
    throw error;
  }
}

function parseSecureAggregation(
  v: Record<string, string | boolean | undefined>,
  settings: RoundSettings,
  clientDp: DpFedAvgOptions | undefined,
  strategy: StrategyConfig,
): SecureAggregationSettings | undefined {
  const str = (name: string) => v[name] as string | undefined;
  if (v['secure-aggregation'] !== true) {
    for (const flag of ['secagg-neighbours', 'secagg-threshold', 'secagg-clip-range', 'secagg-quantization-range', 'secagg-step-timeout']) {
      if (v[flag] !== undefined) throw new ConfigError(`--${flag} needs --secure-aggregation`);
    }
    return undefined;
  }
  if (!SECURE_STRATEGIES.includes(strategy.name)) {
    throw new ConfigError(`--strategy ${strategy.name} needs every update on its own, which secure aggregation hides: use fedavg, fedprox, fedadam or fedyogi`);
  }
  if (strategy.maxUpdateNorm !== undefined) throw new ConfigError('--max-update-norm checks individual updates, which secure aggregation hides: drop one of them');
  if (clientDp?.placement === 'central') throw new ConfigError('--client-dp central clips and noises on the coordinator, which would need the individual updates: use --client-dp distributed');
  if (clientDp?.clip.kind === 'adaptive') throw new ConfigError('--adaptive-clip needs each update norm on the coordinator: it cannot run with --secure-aggregation');
  if (settings.minClients < 3) throw new ConfigError('--secure-aggregation needs --min-clients of at least 3 (a sum of two updates reveals each to the other)');
  const neighboursText = str('secagg-neighbours') ?? 'all';
  const neighbours = neighboursText === 'all' ? 'all' : number(neighboursText, 'secagg-neighbours', 0, (n) => Number.isInteger(n) && n >= 2, 'an integer >= 2 or all');
  const threshold = str('secagg-threshold') === undefined ? undefined : number(str('secagg-threshold'), 'secagg-threshold', 0, (n) => Number.isInteger(n) && n >= 2, 'an integer >= 2');
  // After clipping to L2 norm S no coordinate exceeds S: a clip range of at least S never clips further.
  const clipNorm = clientDp?.clip.kind === 'fixed' ? clientDp.clip.norm : settings.fit.privacy?.clipNorm;
  const clipRange = number(str('secagg-clip-range'), 'secagg-clip-range', Math.max(DEFAULT_QUANTIZATION.clipRange, clipNorm ?? 0), (n) => n > 0, 'a positive number');
  const quantizationRange = number(str('secagg-quantization-range'), 'secagg-quantization-range', DEFAULT_QUANTIZATION.quantizationRange, (n) => Number.isInteger(n) && n >= 2 && n % 2 === 0 && n <= 2 ** 31, 'an even integer in [2, 2^31]');
  const quantization = { clipRange, quantizationRange };
  const max = maxParticipants(quantization);
  const selected = Math.ceil(settings.clientsPerRound * (1 + (settings.overSelect ?? 0)));
  if (selected > max) throw new ConfigError(`${selected} participants per round could overflow the mod-2^32 sum with --secagg-quantization-range ${quantizationRange}: at most ${max}; lower the range or the participants per round`);
  if (threshold !== undefined) {
    const k = effectiveDegree(Math.max(3, selected), neighbours);
    if (threshold > k + 1) throw new ConfigError(`--secagg-threshold ${threshold} is above k + 1 = ${k + 1} share holders: no secret could ever be rebuilt`);
    if (2 * threshold <= k + 1) throw new ConfigError(`--secagg-threshold ${threshold} must be a strict majority of the k + 1 = ${k + 1} share holders (at least ${recommendedThreshold(Math.max(3, selected), neighbours)})`);
  }
  return { neighbours, threshold, clipRange, quantizationRange, stepTimeoutMs: 1000 * number(str('secagg-step-timeout'), 'secagg-step-timeout', 30, (n) => n > 0, 'a positive number of seconds') };
}

/** Rules that aggregate a plain (or fixed-denominator) mean, the only thing a secure sum gives. */
const SECURE_STRATEGIES: readonly string[] = ['fedavg', 'fedprox', 'fedadam', 'fedyogi'];
