import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseConfig, type CoordinatorConfig } from '../coordinator/config.ts';
import { startCoordinator } from '../coordinator/server.ts';
import { loadMnistDemo } from '../coordinator/task/demo-data.ts';
import type { ShardSkew } from '../core/data/dataset.ts';
import type { FederationStatus, RoundRecord } from '../core/protocol/status.ts';
import { SeededRandom } from '../core/random/prng.ts';
import { startNodeParticipants, stopNodeParticipants } from '../test/helpers/node-participants.ts';
import { fixedDuration } from '../test/helpers/slowed-trainer.ts';
import { SocketTrace } from './async-trace.ts';

const COMMAND = 'npx tsx bench/async.ts';
const USAGE = `Usage: ${COMMAND} [--speeds two-speed,lognormal] [--splits iid,label] [--fast-ms MS] [--sync-rounds N] [--buffer-size K]
       [--concurrency C] [--server-learning-rate ETA] [--server-momentum B]
       [--fedbuff-server-learning-rate ETA] [--fedbuff-server-momentum B] [--staleness-exponent E] [--jitter J] [--repeat R] [--trace]

Time to accuracy, synchronous FedAvg with a deadline against FedBuff (--mode
async, docs/async.md), on the MNIST demo task with 20 real in-process Node
participants (tfjs wasm) whose device speeds are simulated: each local run
takes a fixed time per participant (test/helpers/slowed-trainer.ts; the real
training, shared by all 20 on this machine, is checked to stay below it).

  two-speed  14 participants (70%) take MS per local run, 6 (30%) take 5 x MS
  lognormal  each takes MS x exp(0.8 N(0,1)) (seeded), median MS

Sync: --clients-per-round 20, --round-timeout 2.5 x MS (the deadline: the
slow ones miss it and their update is refused), --sync-rounds rounds.
FedBuff: --buffer-size K, --concurrency C, --max-staleness 10, run until it
reaches the final accuracy of the sync run (or 3x the sync time). The server
learning rate ETA applies to BOTH runs (sync FedAvg and FedBuff), so a tuned
rate is tuned for both; so does the server momentum B (FedAvgM,
--server-momentum), unless FedBuff's own are given. --jitter J makes every
local run of every device (in both runs) take its time x U(1 - J, 1 + J), seeded: devices of one speed
class stop finishing in lockstep.

Reported: the sync run's final accuracy A and the time it first reached A;
the time FedBuff took to reach A; the ratio; and the update bytes both sent
(every upload, refused late ones included) up to that point.

  --speeds LIST       default two-speed,lognormal
  --splits LIST       iid and/or label (label-skewed shards), default iid,label
  --fast-ms MS        default 1500
  --sync-rounds N     default 6
  --buffer-size K     default 5
  --concurrency C     default 20 (all participants)
  --server-learning-rate ETA  default 1, both runs
  --server-momentum B default 0 (none), both runs
  --fedbuff-server-learning-rate ETA, --fedbuff-server-momentum B
                      FedBuff's own, when tuned apart from the sync run's
                      (default: the values above)
  --staleness-exponent E      FedBuff's staleness weight (1 + s)^-E, default 0.5
  --repeat R          run each (speeds, split) pair R times (sync and FedBuff
                      each time) and report the median time ratio, default 1
  --jitter J          default 0 (every run of a device takes exactly its time)
  --trace             after the tables, where each run's time went up to A (bench/async-trace.ts): the
                      fast devices' local runs and waits for the next model (two-speed: the 14 fast
                      ones; lognormal: all), and each round's steps on the coordinator`;

const { values } = parseArgs({
  options: {
    speeds: { type: 'string', default: 'two-speed,lognormal' },
    splits: { type: 'string', default: 'iid,label' },
    'fast-ms': { type: 'string', default: '1500' },
    'sync-rounds': { type: 'string', default: '6' },
    'buffer-size': { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '20' },
    'server-learning-rate': { type: 'string', default: '1' },
    'server-momentum': { type: 'string', default: '0' },
    'fedbuff-server-learning-rate': { type: 'string' },
    'fedbuff-server-momentum': { type: 'string' },
    'staleness-exponent': { type: 'string', default: '0.5' },
    repeat: { type: 'string', default: '1' },
    jitter: { type: 'string', default: '0' },
    trace: { type: 'boolean', default: false },
    help: { type: 'boolean' },
  },
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

type Speeds = 'two-speed' | 'lognormal';
const PARTICIPANTS = 20;
const fastMs = Number(values['fast-ms']);
const syncRounds = Number(values['sync-rounds']);
const bufferSize = Number(values['buffer-size']);
const concurrency = Number(values.concurrency);
/** The server optimizer's flags of the sync run, and of FedBuff's. */
const syncServer = ['--server-learning-rate', values['server-learning-rate'], '--server-momentum', values['server-momentum']];
const fedbuffServer = [
  '--server-learning-rate',
  values['fedbuff-server-learning-rate'] ?? values['server-learning-rate'],
  '--server-momentum',
  values['fedbuff-server-momentum'] ?? values['server-momentum'],
];
const stalenessExponent = values['staleness-exponent'];
const repeat = Number(values.repeat);
if (!(Number.isInteger(repeat) && repeat >= 1)) throw new Error(`--repeat must be a positive integer, got ${values.repeat}`);
const jitter = Number(values.jitter);
if (!(jitter >= 0 && jitter < 1)) throw new Error(`--jitter must be in [0, 1), got ${values.jitter}`);
const speedsList = values.speeds.split(',') as Speeds[];
const splits = values.splits.split(',') as ShardSkew[];
for (const s of speedsList) if (s !== 'two-speed' && s !== 'lognormal') throw new Error(`unknown --speeds ${s}`);
for (const s of splits) if (s !== 'iid' && s !== 'label') throw new Error(`unknown --splits ${s}`);

/** Each participant's simulated time per local run, ms. */
function deviceTimes(speeds: Speeds): number[] {
  if (speeds === 'two-speed') return Array.from({ length: PARTICIPANTS }, (_, k) => (k % 10 >= 7 ? 5 * fastMs : fastMs));
  const random = new SeededRandom(13);
  return Array.from({ length: PARTICIPANTS }, () => {
    // Box–Muller from the seeded generator.
    const normal = Math.sqrt(-2 * Math.log(1 - random.next())) * Math.cos(2 * Math.PI * random.next());
    return fastMs * Math.exp(0.8 * normal);
  });
}

/** Each device's pace: its time, times U(1 − J, 1 + J) per run when jittered (seeded per device, the same in both runs). */
function paces(times: readonly number[]): (() => number)[] {
  return times.map((ms, k) => {
    if (jitter === 0) return fixedDuration(ms);
    const random = new SeededRandom(1000 + k);
    return () => ms * (1 + jitter * (2 * random.next() - 1));
  });
}

interface Run {
  readonly status: FederationStatus;
  /** Update uploads the participants sent (accepted or refused). */
  readonly uploads: number;
  readonly frameBytes: number;
  readonly longestTrainingMs: number;
  readonly trace: SocketTrace | undefined;
}

async function run(flags: string[], times: readonly number[], skew: ShardSkew, stopAfterMs?: number): Promise<Run> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'fl-bench-async-'));
  const config = parseConfig(
    [
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--quiet',
      '--data-dir',
      dataDir,
      '--min-clients',
      String(PARTICIPANTS),
      '--clients-per-round',
      String(PARTICIPANTS),
      '--epochs',
      '1',
      ...flags,
    ],
    {},
  ) as CoordinatorConfig;
  const coordinator = await startCoordinator(config);
  const participants = await startNodeParticipants(coordinator.url, await loadMnistDemo(), coordinator.task, PARTICIPANTS, {
    paces: paces(times),
    skew,
  });
  const trace = values.trace ? SocketTrace.of(participants) : undefined;
  const timer = stopAfterMs === undefined ? undefined : setTimeout(() => void coordinator.engine.stop('bench time limit'), stopAfterMs);
  const status = await coordinator.engine.done;
  clearTimeout(timer);
  const uploads = participants.reduce((n, p) => n + p.events.filter((e) => e.type === 'uploaded' || e.type === 'rejected').length, 0);
  const longestTrainingMs = Math.max(...participants.map((p) => p.slowed?.longestTrainingMs ?? 0));
  stopNodeParticipants(participants);
  await coordinator.close();
  await rm(dataDir, { recursive: true, force: true });
  return { status, uploads, frameBytes: 16 + 4 * coordinator.task.paramCount, longestTrainingMs, trace };
}

/** Ms from the first round's start to the end of the first record reaching `accuracy`. */
function timeTo(history: readonly RoundRecord[], accuracy: number): number | undefined {
  const start = history[0]?.startedAt;
  const reached = history.find((r) => (r.metrics?.accuracy ?? 0) >= accuracy);
  return start === undefined || !reached ? undefined : reached.startedAt + reached.durationMs - start;
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
const s = (ms: number | undefined) => (ms === undefined ? 'not reached' : `${(ms / 1000).toFixed(1)} s`);

console.log(
  `${COMMAND} --speeds ${speedsList.join(',')} --splits ${splits.join(',')} --fast-ms ${fastMs} --sync-rounds ${syncRounds} --buffer-size ${bufferSize} --concurrency ${concurrency} ${syncServer.join(' ')} --fedbuff-server-learning-rate ${fedbuffServer[1]} --fedbuff-server-momentum ${fedbuffServer[3]} --staleness-exponent ${stalenessExponent} --jitter ${jitter} --repeat ${repeat}`,
);
console.log(
  '| speeds | split | sync final acc A | sync time to A | sync upload | FedBuff time to A | FedBuff upload | time ratio | FedBuff versions (mean staleness) | longest real training |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|');
/** The median of `values`: the middle one, or the mean of the two middle ones. */
function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const medians: string[] = [];
/** With --trace: where each run's time went, printed after the tables. */
const traces: string[] = [];
for (const speeds of speedsList) {
  for (const skew of splits) {
    /** Time ratios of the repetitions; Infinity where FedBuff did not reach A in its time. */
    const ratios: number[] = [];
    for (let repetition = 0; repetition < repeat; repetition++) ratios.push(await measure(speeds, skew));
    const shown = ratios.map((r) => (Number.isFinite(r) ? r.toFixed(2) : 'not reached'));
    medians.push(
      `| ${speeds} | ${skew} | ${shown.join(', ')} | ${Number.isFinite(median(ratios)) ? median(ratios).toFixed(2) : 'not reached'} |`,
    );
  }
}
if (repeat > 1) {
  console.log('\n| speeds | split | time ratios | median |\n|---|---|---|---|');
  for (const line of medians) console.log(line);
}
if (traces.length > 0) console.log(`\n${traces.join('\n')}`);

/** One sync run and one FedBuff run on `speeds` and `skew`; prints the row and returns the time ratio (Infinity: not reached). */
async function measure(speeds: Speeds, skew: ShardSkew): Promise<number> {
  const times = deviceTimes(speeds);
  const sync = await run([...syncServer, '--rounds', String(syncRounds), '--round-timeout', String((2.5 * fastMs) / 1000)], times, skew);
  const target = sync.status.history.at(-1)?.metrics?.accuracy ?? 0;
  const syncTime = timeTo(sync.status.history, target);
  const syncWallMs =
    (sync.status.history.at(-1)?.startedAt ?? 0) + (sync.status.history.at(-1)?.durationMs ?? 0) - (sync.status.history[0]?.startedAt ?? 0);
  const fedbuff = await run(
    [
      ...fedbuffServer,
      '--mode',
      'async',
      '--buffer-size',
      String(bufferSize),
      '--concurrency',
      String(concurrency),
      '--max-staleness',
      '10',
      '--staleness-exponent',
      stalenessExponent,
      '--rounds',
      '1000',
      '--target-accuracy',
      String(target),
      '--round-timeout',
      String((10 * (1 + jitter) * Math.max(...times)) / 1000),
    ],
    times,
    skew,
    3 * syncWallMs + 30_000,
  );
  const asyncTime = timeTo(fedbuff.status.history, target);
  const versions = fedbuff.status.history.filter((r) => r.staleness);
  const stalenessSum = versions.reduce((sum, r) => sum + r.staleness!.mean * r.staleness!.counts.reduce((a, b) => a + b, 0), 0);
  const updates = versions.reduce((sum, r) => sum + r.staleness!.counts.reduce((a, b) => a + b, 0), 0);
  console.log(
    `| ${speeds} | ${skew} | ${target.toFixed(4)} | ${s(syncTime)} | ${mb(sync.uploads * sync.frameBytes)} | ${s(asyncTime)} | ${mb(fedbuff.uploads * fedbuff.frameBytes)} | ${
      syncTime && asyncTime ? (asyncTime / syncTime).toFixed(2) : '–'
    } | ${versions.length} (${(stalenessSum / Math.max(1, updates)).toFixed(2)}) | ${Math.round(Math.max(sync.longestTrainingMs, fedbuff.longestTrainingMs))} ms |`,
  );
  if (values.trace) {
    const fast = speeds === 'two-speed' ? times.flatMap((ms, k) => (ms === fastMs ? [k] : [])) : times.map((_, k) => k);
    const until = (history: readonly RoundRecord[], ms: number | undefined) => (history[0]?.startedAt ?? 0) + (ms ?? Infinity);
    const start = fedbuff.status.history[0]?.startedAt ?? 0;
    const half = (syncTime ?? 0) / 2;
    const byHalf = fedbuff.status.history.filter((r) => r.startedAt + r.durationMs - start <= half);
    const syncRounds = sync.status.history.map(
      (r) => `${(r.metrics?.accuracy ?? 0).toFixed(4)} at ${s(r.startedAt + r.durationMs - (sync.status.history[0]?.startedAt ?? 0))}`,
    );
    traces.push(
      `${speeds} ${skew}: sync accuracy after each round ${syncRounds.join(', ')}; FedBuff by 0.5× the sync time (${s(half)}): ${byHalf.length} versions, best accuracy ${Math.max(0, ...byHalf.map((r) => r.metrics?.accuracy ?? 0)).toFixed(4)}`,
      `${speeds} ${skew}, sync up to A:`,
      ...(sync.trace?.summary(sync.status.history, fast, until(sync.status.history, syncTime)) ?? []),
      `${speeds} ${skew}, FedBuff up to A:`,
      ...(fedbuff.trace?.summary(fedbuff.status.history, fast, until(fedbuff.status.history, asyncTime)) ?? []),
    );
  }
  return syncTime && asyncTime ? asyncTime / syncTime : Number.POSITIVE_INFINITY;
}
