import { parseArgs } from 'node:util';
import type { DpFedAvgOptions } from '../core/aggregation/dp-fedavg.ts';
import type { AccountantKind } from '../core/privacy/epsilon.ts';
import type { RoundSettings } from '../core/protocol/status.ts';
import type { CoordinatorConfig } from './coordinator-config.ts';
import { GAUSSIAN_ALTERNATIVE, parseDistributedNoise } from './distributed-noise-config.ts';
import {
  ADAPTIVE_DEADLINE,
  BATCH_SIZE,
  CHECKPOINT_KEY_FILE,
  CLIENTS_PER_ROUND,
  CLIP_NORM,
  EARLY_STOPPING_PATIENCE,
  EPOCHS,
  LEARNING_RATE,
  MANUAL_START,
  MIN_CLIENTS,
  MIN_UPDATES,
  MODEL,
  NOISE_STD,
  OVER_SELECT,
  ROUND_TIMEOUT,
  ROUNDS,
  SEED,
  TARGET_ACCURACY,
} from './options/federation.ts';
import { communicationSettings } from './options/communication.ts';
import { BUFFER_SIZE, MODE, parseAsync } from './options/async.ts';
import { ConfigError, configError } from './options/option.ts';
import { ACCOUNTANT, DELTA, DISTRIBUTED_NOISE, FRESH_PRIVACY_BUDGET, parseClientDp, parseSampleDp } from './options/privacy.ts';
import { startSettingsProblem, type StartStage, type StrategyFacts } from './options/rules.ts';
import { checkSecAggThreshold, parseSecureAggregation } from './options/secure-aggregation.ts';
import {
  DATA_DIR,
  DEMO_PARTICIPANTS,
  HELP,
  HOST,
  LEADER_LEASE_MS,
  PORT,
  QUIET,
  REDIS,
  STATIC_DIR,
  TASK,
  WORKERS,
} from './options/server.ts';
import { clusterConfigProblem } from './cluster/cluster-config.ts';
import { parseWorkers } from './cluster/workers-config.ts';
import { parsePoisoning, parseStrategyFlags, type StrategyConfig } from './options/strategy.ts';
import { PARSE_ARGS_OPTIONS } from './options/table.ts';
import { parseSecurityConfig } from './security/config.ts';
import { ruleTraits } from './strategies.ts';
import { explainConfigError, readTaskFile, TaskFileError, type TaskFile } from './task/task-file.ts';

/**
 * From the command line (and a task file) to a checked CoordinatorConfig.
 * Each option is declared once in coordinator/options/ (flag, help line,
 * default, task-file key, check); this file reads them in order and applies
 * the checks that join several of them, and the settings rules
 * (options/rules.ts, shared with the dashboard's settings changes) as soon
 * as it has read what each rule needs.
 */

export type { CoordinatorConfig } from './coordinator-config.ts';
export { ConfigError } from './options/option.ts';
export { USAGE } from './options/table.ts';

/** Parses command-line flags (and PORT from the environment) into a checked config. */
export function parseConfig(argv: readonly string[], env: Record<string, string | undefined> = {}): CoordinatorConfig | 'help' {
  return parseFlags(argv, env, undefined);
}

/** With `task`, argv is the task file's flags followed by the command line's, so the command line wins. */
function parseFlags(
  argv: readonly string[],
  env: Record<string, string | undefined>,
  task: { file: TaskFile; commandLine: ReadonlySet<string> } | undefined,
): CoordinatorConfig | 'help' {
  let v: Record<string, string | boolean | undefined>;
  try {
    v = parseArgs({ args: [...argv], strict: true, options: PARSE_ARGS_OPTIONS }).values as Record<string, string | boolean | undefined>;
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
  if (HELP.read(v)) return 'help';
  const taskPath = TASK.read(v);
  if (taskPath !== undefined && task === undefined) {
    let file: TaskFile;
    try {
      file = readTaskFile(taskPath);
    } catch (error) {
      throw error instanceof TaskFileError ? new ConfigError(error.message) : error;
    }
    const commandLine = new Set(Object.keys(v));
    if (file.model.kind === 'modelJson' && v[MODEL.name] !== undefined)
      throw new ConfigError(`--model picks a built-in architecture, but ${file.file} brings its own model (model.modelJson)`);
    try {
      return parseFlags([...file.flags, ...argv], env, { file, commandLine });
    } catch (error) {
      // Errors about settings from the file name the file and its keys, not flags the user never typed.
      throw error instanceof ConfigError ? new ConfigError(explainConfigError(error.message, file, commandLine)) : error;
    }
  }
  const architecture = MODEL.read(v);
  const port = PORT.read({ [PORT.name]: v[PORT.name] ?? env.PORT });
  const demoParticipants = DEMO_PARTICIPANTS.read(v);
  // With demo participants, wait for all of them so the first round is not trained by the first tab alone.
  const minClients = MIN_CLIENTS.readOr(v, Math.max(1, demoParticipants));
  const clientsPerRound = CLIENTS_PER_ROUND.read(v);
  const minUpdates = MIN_UPDATES.read(v);
  const clipNorm = v[CLIP_NORM.name];
  if (v[NOISE_STD.name] !== undefined && clipNorm === undefined)
    throw new ConfigError('--noise-std needs --clip-norm: noise without a clipping bound protects nothing');
  const delta = DELTA.read(v);
  const batchSize = BATCH_SIZE.read(v);
  const accountant = ACCOUNTANT.read(v);
  const sampleDp = withAccountant(parseSampleDp(v, batchSize, delta), accountant);
  const settings: RoundSettings = {
    rounds: ROUNDS.read(v),
    minClients,
    clientsPerRound,
    minUpdates,
    roundTimeoutMs: 1000 * ROUND_TIMEOUT.read(v),
    overSelect: OVER_SELECT.read(v),
    adaptiveDeadline: ADAPTIVE_DEADLINE.read(v),
    targetAccuracy: TARGET_ACCURACY.read(v),
    earlyStoppingPatience: EARLY_STOPPING_PATIENCE.read(v),
    fit: {
      epochs: EPOCHS.read(v),
      batchSize,
      sampleDp,
      learningRate: LEARNING_RATE.read(v),
      privacy: clipNorm === undefined ? undefined : { clipNorm: CLIP_NORM.readOr(v, 0), noiseStd: NOISE_STD.read(v) },
    },
    ...communicationSettings(v),
  };
  checkRules('settings', settings);
  // In async mode a version averages over its buffer: K is the expected count of updates.
  const expectedClients = MODE.read(v) === 'async' ? BUFFER_SIZE.read(v) : settings.clientsPerRound;
  const clientDp = withAccountant(parseClientDp(v, expectedClients, delta), accountant);
  if (accountant !== undefined && !clientDp && !sampleDp)
    throw new ConfigError('--accountant needs --client-dp or --dp-sgd-clip: without differential privacy nothing is accounted');
  if (clientDp && settings.fit.privacy)
    throw new ConfigError('--clip-norm/--noise-std and --client-dp both set the update clipping: use one');
  const strategy = parseStrategy(v, settings, clientDp);
  const strategyFacts = { trimFraction: strategy.trimFraction };
  checkRules('strategy', settings, strategyFacts);
  const secureAggregation = parseSecureAggregation(v, settings, clientDp, strategy);
  const asyncMode = parseAsync(v, {
    settings,
    secureAggregation: secureAggregation !== undefined,
    clientSampleRate: clientDp?.sampleRate,
    trimFraction: strategy.trimFraction,
  });
  const checkedSettings = { ...(secureAggregation ? { ...settings, secureAggregation } : settings), ...asyncMode };
  if (secureAggregation) {
    checkRules('secure-aggregation', checkedSettings, strategyFacts);
    checkSecAggThreshold({ ...settings, secureAggregation });
  }
  const security = parseSecurityConfig(v, (message) => new ConfigError(message));
  if (clientDp && !security?.adminTokens) {
    // The status page names who took part in each round; sampling amplifies privacy only if that stays private.
    throw new ConfigError(
      '--client-dp needs --admin-token or --admin-token-file: the dashboard and /api/status show who took part in each round, which must stay with the operator',
    );
  }
  const manualStart = MANUAL_START.read(v);
  // Only an admin's dashboard may send controls: without a token nobody could ever start the federation.
  if (manualStart && !security?.adminTokens)
    throw new ConfigError('--manual-start needs --admin-token or --admin-token-file: only an admin dashboard can start the federation');
  const noise = parseDistributedNoise(v, { clientDp, settings: checkedSettings }, (message) => new ConfigError(message));
  const distributedNoise = noise.request;
  if (distributedNoise && accountant === 'pld')
    throw new ConfigError(
      `--accountant pld cannot account --distributed-noise skellam${v[DISTRIBUTED_NOISE.name] === undefined ? ' (the default with --client-dp distributed and --secure-aggregation)' : ''}: ` +
        `its noise is known only by an RDP bound; use --accountant auto or rdp, ${GAUSSIAN_ALTERNATIVE}`,
    );
  const redis = REDIS.read(v);
  const clusterProblem =
    redis === undefined
      ? undefined
      : clusterConfigProblem(redis, {
          strategy,
          secureAggregation,
          clientDpPlacement: clientDp?.placement,
          checkpointKeyFile: CHECKPOINT_KEY_FILE.read(v),
        });
  if (clusterProblem !== undefined) throw new ConfigError(clusterProblem);
  if (redis === undefined && v[LEADER_LEASE_MS.name] !== undefined)
    throw new ConfigError('--leader-lease-ms needs --redis: one coordinator elects no leader');
  const workers = parseWorkers(WORKERS.read(v), { redis, tls: security?.tls !== undefined, demoParticipants }, configError);
  return {
    redis,
    workers,
    ...(redis === undefined ? {} : { leaderLeaseMs: LEADER_LEASE_MS.read(v) }),
    checkpointKeyFile: CHECKPOINT_KEY_FILE.read(v),
    clientDp,
    freshPrivacyBudget: FRESH_PRIVACY_BUDGET.read(v),
    distributedNoise,
    strategy,
    port,
    host: HOST.read(v),
    dataDir: DATA_DIR.read(v),
    architecture,
    settings: { ...checkedSettings, minUpdates: noise.minUpdates },
    seed: SEED.read(v),
    demoParticipants,
    staticDir: STATIC_DIR.read(v),
    quiet: QUIET.read(v) ?? false,
    manualStart,
    security,
    task: task?.file,
    poisoning: parsePoisoning(v, clientDp !== undefined || secureAggregation !== undefined),
  };
}

/** The DP options with the chosen accountant; absent: each place uses 'auto'. */
function withAccountant<T extends object>(options: T | undefined, accountant: AccountantKind | undefined): T | undefined {
  return options === undefined || accountant === undefined ? options : { ...options, accountant };
}

/** The settings rules shared with dashboard changes (options/rules.ts), each checked once start has read what it needs. */
function checkRules(stage: StartStage, settings: RoundSettings, strategy?: StrategyFacts): void {
  const problem = startSettingsProblem(stage, settings, strategy);
  if (problem !== undefined) throw new ConfigError(problem);
}

function parseStrategy(
  v: Record<string, string | boolean | undefined>,
  settings: RoundSettings,
  clientDp: DpFedAvgOptions | undefined,
): StrategyConfig {
  const clip = clientDp
    ? clientDp.clip.kind === 'fixed'
      ? clientDp.clip.norm
      : clientDp.clip.initialNorm
    : settings.fit.privacy?.clipNorm;
  const strategy = parseStrategyFlags(v, {
    minUpdates: settings.minUpdates,
    clientDp: clientDp?.placement,
    clientClipNorm: clip,
    sampleDp: settings.fit.sampleDp !== undefined,
  });
  // DP-FedAvg's noise is calibrated to a sum of clipped updates: only rules that aggregate a sum (their traits say so) can wrap it.
  if (clientDp && ruleTraits(strategy).input === 'individual') {
    throw new ConfigError(
      `--strategy ${strategy.name} cannot be combined with --client-dp: DP-FedAvg's noise is calibrated to a sum of clipped updates, ` +
        `and a ${strategy.name} of the updates has another sensitivity that nothing here accounts for (nor would it sum the distributed noise shares); ` +
        'use --strategy fedavg, fedprox, fedadam or fedyogi with --client-dp',
    );
  }
  return strategy;
}
