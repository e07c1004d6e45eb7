import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseConfig } from '../coordinator/config.ts';
import { isNonNegativeInt, isPositive, isPositiveInt, numberFlag } from '../coordinator/flags.ts';
import { startCoordinator, type Coordinator } from '../coordinator/server.ts';
import { loadMnistDemo, type DemoData } from '../coordinator/task/demo-data.ts';
import { shardIndices } from '../core/data/dataset.ts';
import { findNoiseMultiplier } from '../core/privacy/accountant.ts';
import { findNoiseMultiplierPld } from '../core/privacy/epsilon.ts';
import { dpStepsPerEpoch } from '../core/privacy/dp-sgd.ts';
import { MemoryLedgerStore } from '../core/privacy/ledger.ts';
import type { FederationStatus } from '../core/protocol/status.ts';
import { startNodeParticipants, stopNodeParticipants, type NodeParticipant } from '../test/helpers/node-participants.ts';

const COMMAND = 'npx tsx bench/privacy-utility.ts';
const DELTA = 1e-5;

const USAGE = `Usage: ${COMMAND} [options]

Privacy-utility table for the demo task (MNIST digits: 8,000 training
examples shared out to participants, 2,000 test examples on the coordinator,
MLP 784-128-10). Each row is a real federation: the coordinator of
coordinator/server.ts and in-process Node participants (tfjs wasm backend).
For every target ε (δ = 1e-5, improved RDP conversion) and for no DP:

  sample  sample-level DP-SGD in every participant: P participants holding
          8,000 / P examples each, R rounds of 1 local epoch. Per participant
          q = B / n and steps = R x round(n / B); σ is the smallest noise
          multiplier whose ε after R rounds is at most the target. ε reached
          is read from a participant's privacy ledger.
  client  client-level DP-FedAvg, central noise: N participants holding
          8,000 / N examples each, Poisson-sampled with rate q every round,
          updates clipped to S, N(0, z²S²) added to the sum, divided by
          m = q·N. z is the smallest noise multiplier whose ε after R rounds
          (one sampled-Gaussian step per round) is at most the target. ε
          reached is the coordinator's status.privacy.
  skellam client-level DP-FedAvg, distributed: the same population, rate,
          clip, training and z as client (z is still the one central DP needs
          for the target), but each sampled participant adds Skellam integer
          noise inside the secure sum (--client-dp distributed
          --secure-aggregation --distributed-noise skellam), over-provisioned
          for --tolerated-dropouts D. The coordinator knows who was sampled,
          so this is charged at q = 1 with z_eff (RDP only): compare it with
          client at --client-rate 1, where central DP has no amplification
          either. ε reached is the coordinator's status.privacy.

The no-DP rows use the same data, rounds, batch size, local epochs and
learning rate (client no-DP: plain FedAvg, m participants per round).

How the defaults were chosen (single runs at ε = 2, R = 15, 4 × 2,000):
(B, lr) = (128, 0.5) 86.1%, (128, 1) 85.7%, (128, 2) 82.0%, (256, 1) 86.5%,
(256, 2) 86.6%, (256, 4) 84.6%: flat within run-to-run noise; B = 256,
lr = 1 is kept for every ε (fewer, cheaper steps; the no-DP row is stable at
that lr). Client level: S = 1 sits just below the norm of a fresh 2-epoch
local update at lr 0.2 (1.7 from the initial model, less later), so
clipping costs little signal; adaptive
clipping needs z < m/10 and so is unusable at small ε with m = 30.

  --epsilons LIST        target ε values (default 1,2,4,8)
  --rounds N             rounds R for both setups (default 15)
  --modes LIST           sample,client,skellam (default sample,client)
  --noise-accountants LIST  rdp,pld: which accountant sets each row's noise for
                         its target ε (default rdp); both: the utility at
                         equal ε under each (skellam rows stay rdp: its
                         bound is RDP-only)
  --json FILE            write the raw results as JSON
  --skip-no-dp           leave out the no-DP rows (for tuning)

  Sample-level (defaults are the ones the table was made with)
  --sample-participants P  (default 4)
  --sample-batch B       expected Poisson batch size (default 256)
  --sample-clip C        per-example clip norm (default 1)
  --sample-lr X          learning rate (default 1)

  Client-level
  --clients N            participants (default 100)
  --client-rate Q        Poisson sampling rate per round (default 0.3)
  --client-clip S        update clip norm (default 1)
  --client-epochs E      local epochs (default 2)
  --client-batch B       local batch size (default 16)
  --client-lr X          local learning rate (default 0.2)
  --tolerated-dropouts D skellam: dropouts the sum's noise survives (default 2)

  --seed N               initial model and selection seed (default 1);
                         DP noise comes from the CSPRNG, so DP rows vary
                         from run to run
  --help                 show this text
`;

type Mode = 'sample' | 'client' | 'skellam';
/** Which accountant found the noise multiplier for the target ε. */
type NoiseAccountant = 'rdp' | 'pld';

interface RunResult {
  readonly mode: Mode;
  /** null: the no-DP row. */
  readonly targetEpsilon: number | null;
  /** ε at δ after the run: a participant's ledger (sample) or status.privacy (client, skellam). */
  readonly epsilonReached: number | null;
  /** Client levels: which accountant gave ε reached, and each one's ε where the coordinator reports it. */
  readonly accountant?: string;
  readonly rdpEpsilon?: number;
  readonly pldEpsilon?: number;
  /** skellam: the multiplier the RDP accountant was charged per round (z_eff). */
  readonly chargedNoiseMultiplier?: number;
  /** σ (sample) or z (client); null without DP. */
  readonly noiseMultiplier: number | null;
  /** The accountant that set σ or z for the target; null without DP. */
  readonly noiseSetBy: NoiseAccountant | null;
  /** q: examples per participant (sample), participants per round (client). */
  readonly sampleRate: number;
  /** C (sample) or S (client). */
  readonly clipNorm: number | null;
  readonly participants: number;
  readonly examplesPerParticipant: number;
  readonly batchSize: number;
  /** DP-SGD steps each participant ran (sample), or rounds charged (client). */
  readonly stepsPerParticipant: number | null;
  /** Expected updates per round, the DP-FedAvg denominator m (client). */
  readonly expectedClients?: number;
  readonly rounds: number;
  readonly epochs: number;
  readonly learningRate: number;
  readonly accuracy: number;
  readonly loss: number;
  readonly accuracyByRound: readonly number[];
  readonly roundsCompleted: number;
  readonly doneReason: string | undefined;
  readonly flags: readonly string[];
  readonly wallMs: number;
}

interface Options {
  readonly epsilons: readonly number[];
  readonly rounds: number;
  readonly modes: readonly Mode[];
  readonly noiseAccountants: readonly NoiseAccountant[];
  readonly json?: string;
  readonly skipNoDp: boolean;
  readonly seed: number;
  readonly sample: { readonly participants: number; readonly batch: number; readonly clip: number; readonly lr: number };
  readonly client: {
    readonly clients: number;
    readonly rate: number;
    readonly clip: number;
    readonly epochs: number;
    readonly batch: number;
    readonly lr: number;
    readonly toleratedDropouts: number;
  };
}

function fail(message: string): never {
  console.error(`${message}\n\n${USAGE}`);
  process.exit(2);
}

function num(text: string | undefined, flag: string, fallback: number, ok: (n: number) => boolean, expected: string): number {
  return numberFlag(text, flag, ok, expected, fail) ?? fallback;
}

const positive = (text: string | undefined, flag: string, fallback: number) => num(text, flag, fallback, isPositive, 'a positive number');
const positiveInt = (text: string | undefined, flag: string, fallback: number) =>
  num(text, flag, fallback, isPositiveInt, 'a positive integer');

/** The parsed flags; a parse error ends the same way as any other bad flag. */
function optionValues(argv: readonly string[]) {
  try {
    return parseArgs({
      args: [...argv],
      strict: true,
      options: {
        epsilons: { type: 'string' },
        rounds: { type: 'string' },
        modes: { type: 'string' },
        'noise-accountants': { type: 'string' },
        json: { type: 'string' },
        seed: { type: 'string' },
        'sample-participants': { type: 'string' },
        'sample-batch': { type: 'string' },
        'sample-clip': { type: 'string' },
        'sample-lr': { type: 'string' },
        clients: { type: 'string' },
        'client-rate': { type: 'string' },
        'client-clip': { type: 'string' },
        'client-epochs': { type: 'string' },
        'client-batch': { type: 'string' },
        'client-lr': { type: 'string' },
        'tolerated-dropouts': { type: 'string' },
        'skip-no-dp': { type: 'boolean' },
        help: { type: 'boolean' },
      },
    }).values;
  } catch (error) {
    fail((error as Error).message);
  }
}

function parseOptions(argv: readonly string[]): Options | 'help' {
  const values = optionValues(argv);
  if (values.help) return 'help';
  const epsilons = (values.epsilons ?? '1,2,4,8').split(',').map((s) => positive(s, 'epsilons', 0));
  const modes = (values.modes ?? 'sample,client').split(',').map((s): Mode => {
    if (s === 'sample' || s === 'client' || s === 'skellam') return s;
    return fail(`--modes: unknown mode "${s}"`);
  });
  const noiseAccountants = (values['noise-accountants'] ?? 'rdp').split(',').map((s): NoiseAccountant => {
    if (s === 'rdp' || s === 'pld') return s;
    return fail(`--noise-accountants: unknown accountant "${s}"`);
  });
  return {
    epsilons,
    rounds: positiveInt(values.rounds, 'rounds', 15),
    modes,
    noiseAccountants,
    json: values.json,
    skipNoDp: values['skip-no-dp'] ?? false,
    seed: num(values.seed, 'seed', 1, isNonNegativeInt, 'a non-negative integer'),
    sample: {
      participants: positiveInt(values['sample-participants'], 'sample-participants', 4),
      batch: positiveInt(values['sample-batch'], 'sample-batch', 256),
      clip: positive(values['sample-clip'], 'sample-clip', 1),
      lr: positive(values['sample-lr'], 'sample-lr', 1),
    },
    client: {
      clients: positiveInt(values.clients, 'clients', 100),
      rate: num(values['client-rate'], 'client-rate', 0.3, (n) => n > 0 && n <= 1, 'a number in (0, 1]'),
      clip: positive(values['client-clip'], 'client-clip', 1),
      epochs: positiveInt(values['client-epochs'], 'client-epochs', 2),
      batch: positiveInt(values['client-batch'], 'client-batch', 16),
      lr: positive(values['client-lr'], 'client-lr', 0.2),
      toleratedDropouts: num(values['tolerated-dropouts'], 'tolerated-dropouts', 2, isNonNegativeInt, 'a non-negative integer'),
    },
  };
}

/** The noise multiplier whose ε (under `accountant`) after `steps` steps at rate q is at most the target. */
function noiseFor(sampleRate: number, steps: number, targetEpsilon: number, accountant: NoiseAccountant): number {
  const rdp = findNoiseMultiplier({ sampleRate, steps, delta: DELTA, targetEpsilon, relativeTolerance: 1e-6 });
  // PLD's ε is the tighter bound, so RDP's σ already meets the target under it: the search starts there.
  return accountant === 'rdp'
    ? rdp
    : findNoiseMultiplierPld({ sampleRate, steps, delta: DELTA, targetEpsilon, start: rdp, relativeTolerance: 1e-5 });
}

/** Runs one federation with these coordinator flags and these participants; returns its final status. */
async function federate(
  flags: readonly string[],
  demo: DemoData,
  count: number,
  withLedgers: boolean,
): Promise<{ final: FederationStatus; participants: readonly NodeParticipant[] }> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'fl-privacy-utility-'));
  let coordinator: Coordinator | undefined;
  let participants: NodeParticipant[] = [];
  try {
    const config = parseConfig(['--port', '0', '--host', '127.0.0.1', '--quiet', '--data-dir', dataDir, ...flags]);
    if (config === 'help') throw new Error('unexpected --help');
    coordinator = await startCoordinator(config);
    participants = await startNodeParticipants(coordinator.url, demo, coordinator.task, count, {
      totalShards: count,
      ledgerStore: withLedgers ? new MemoryLedgerStore() : undefined,
    });
    const final = await coordinator.done;
    return { final, participants };
  } finally {
    stopNodeParticipants(participants);
    await coordinator?.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

function summarize(final: FederationStatus): Pick<RunResult, 'accuracy' | 'loss' | 'accuracyByRound' | 'roundsCompleted' | 'doneReason'> {
  const metrics = final.history.map((r) => r.metrics).filter((m) => m !== undefined);
  const last = metrics.at(-1);
  return {
    accuracy: last?.accuracy ?? NaN,
    loss: last?.loss ?? NaN,
    accuracyByRound: metrics.map((m) => m.accuracy),
    roundsCompleted: final.history.length,
    doneReason: final.doneReason,
  };
}

async function runSample(options: Options, demo: DemoData, targetEpsilon: number | null, accountant: NoiseAccountant): Promise<RunResult> {
  const { participants: count, batch, clip, lr } = options.sample;
  const R = options.rounds;
  // Every shard of an iid split has floor or ceil of 8,000 / P examples: take the smallest (its ε is the largest).
  const n = Math.min(...Array.from({ length: count }, (_, k) => shardIndices(demo.train.labels, { index: k, count, skew: 'iid' }).length));
  const B = Math.min(batch, n);
  const q = B / n;
  const steps = R * dpStepsPerEpoch(n, B);
  const sigma = targetEpsilon === null ? null : noiseFor(q, steps, targetEpsilon, accountant);
  const flags = [
    '--rounds',
    String(R),
    '--min-clients',
    String(count),
    '--clients-per-round',
    String(count),
    '--min-updates',
    String(count),
    '--round-timeout',
    '900',
    '--epochs',
    '1',
    '--batch-size',
    String(B),
    '--learning-rate',
    String(lr),
    '--seed',
    String(options.seed),
    ...(sigma === null
      ? []
      : ['--dp-sgd-clip', String(clip), '--dp-sgd-noise-multiplier', String(sigma), '--dp-sgd-batch-size', String(B)]),
  ];
  const started = performance.now();
  const { final, participants } = await federate(flags, demo, count, sigma !== null);
  const ledgers = participants.flatMap((p) => (p.ledger ? [p.ledger.epsilon] : []));
  return {
    mode: 'sample',
    targetEpsilon,
    epsilonReached: ledgers.length > 0 ? Math.max(...ledgers) : null,
    noiseMultiplier: sigma,
    noiseSetBy: sigma === null ? null : accountant,
    sampleRate: q,
    clipNorm: sigma === null ? null : clip,
    participants: count,
    examplesPerParticipant: n,
    batchSize: B,
    stepsPerParticipant: steps,
    rounds: R,
    epochs: 1,
    learningRate: lr,
    ...summarize(final),
    flags,
    wallMs: performance.now() - started,
  };
}

/** Client-level DP-FedAvg with central noise, or (skellam) distributed Skellam noise in the secure sum at the same z. */
async function runClient(
  options: Options,
  demo: DemoData,
  targetEpsilon: number | null,
  mode: 'client' | 'skellam',
  accountant: NoiseAccountant,
): Promise<RunResult> {
  const { clients: count, rate: q, clip, epochs, batch, lr, toleratedDropouts } = options.client;
  const R = options.rounds;
  const m = q * count;
  const z = targetEpsilon === null ? null : noiseFor(q, R, targetEpsilon, accountant);
  const perRound = Math.max(1, Math.round(m));
  const flags = [
    '--rounds',
    String(R),
    '--min-clients',
    String(count),
    '--clients-per-round',
    String(perRound),
    '--min-updates',
    // Skellam: every released sum must hold at least m − D shares of the noise.
    String(mode === 'skellam' && z !== null ? Math.max(1, Math.round(m) - toleratedDropouts) : 1),
    '--round-timeout',
    '900',
    '--epochs',
    String(epochs),
    '--batch-size',
    String(batch),
    '--learning-rate',
    String(lr),
    '--seed',
    String(options.seed),
    ...(z === null
      ? []
      : [
          '--client-dp',
          ...(mode === 'skellam'
            ? ['distributed', '--secure-aggregation', '--distributed-noise', 'skellam', '--tolerated-dropouts', String(toleratedDropouts)]
            : ['central']),
          '--fresh-privacy-budget',
          '--client-noise-multiplier',
          String(z),
          '--client-sample-rate',
          String(q),
          '--client-clip',
          String(clip),
          '--expected-clients',
          String(m),
          '--epsilon-budget',
          String(targetEpsilon),
          // Client-level DP requires the status to stay with the operator.
          '--admin-token',
          'privacy-utility-bench-admin-token',
        ]),
  ];
  const started = performance.now();
  const { final } = await federate(flags, demo, count, false);
  const n = Math.min(...Array.from({ length: count }, (_, k) => shardIndices(demo.train.labels, { index: k, count, skew: 'iid' }).length));
  return {
    mode,
    targetEpsilon,
    epsilonReached: final.privacy?.epsilon ?? null,
    accountant: final.privacy?.accountant,
    rdpEpsilon: final.privacy?.rdpEpsilon,
    pldEpsilon: final.privacy?.pldEpsilon,
    chargedNoiseMultiplier: final.privacy?.noiseMultiplier,
    noiseMultiplier: z,
    noiseSetBy: z === null ? null : accountant,
    sampleRate: z === null ? perRound / count : q,
    clipNorm: z === null ? null : clip,
    participants: count,
    examplesPerParticipant: n,
    batchSize: batch,
    stepsPerParticipant: final.privacy?.rounds ?? null,
    expectedClients: z === null ? perRound : m,
    rounds: R,
    epochs,
    learningRate: lr,
    ...summarize(final),
    flags,
    wallMs: performance.now() - started,
  };
}

const fmt = (x: number | null, digits: number) => (x === null ? '–' : x.toFixed(digits));

/** Client levels: which accountant gave ε reached, and the other one's ε where it exists. */
function accountedBy(r: RunResult): string {
  if (r.accountant === undefined) return '';
  const other = r.accountant === 'pld' ? r.rdpEpsilon : r.pldEpsilon;
  const otherName = r.accountant === 'pld' ? 'RDP' : 'PLD';
  return ` (${r.accountant.toUpperCase()}${other === undefined ? ' only' : `; ${otherName} ${other.toFixed(3)}`})`;
}

/** skellam: the multiplier the accountant was charged, when it differs from z. */
function charged(r: RunResult): string {
  return r.mode === 'skellam' && r.chargedNoiseMultiplier !== undefined ? ` (z_eff ${r.chargedNoiseMultiplier.toFixed(6)})` : '';
}

function table(results: readonly RunResult[]): string {
  const lines = [
    '| mode | target ε | ε reached (δ=1e-5) | σ or z | q | C or S | batch / rounds / epochs | lr | test accuracy |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    const mode =
      r.mode === 'sample'
        ? `sample-level DP-SGD (${r.participants} × ${r.examplesPerParticipant})`
        : `client-level DP-FedAvg, ${r.mode === 'client' ? 'central' : `distributed Skellam, D = ${r.flags[r.flags.indexOf('--tolerated-dropouts') + 1]}`} (${r.participants} × ${r.examplesPerParticipant}, m = ${fmt(r.expectedClients ?? null, 0)})`;
    const shape =
      r.mode === 'sample'
        ? `B = ${r.batchSize} (${r.noiseMultiplier === null ? 'shuffled' : 'Poisson'}), ${r.rounds} rounds × ${r.epochs} epoch = ${r.stepsPerParticipant} steps`
        : `local B = ${r.batchSize}, ${r.rounds} rounds × ${r.epochs} local epochs`;
    const rounds = r.roundsCompleted < r.rounds ? ` (${r.roundsCompleted} rounds: ${r.doneReason ?? ''})` : '';
    lines.push(
      `| ${mode} | ${r.targetEpsilon === null ? 'no DP' : r.targetEpsilon} | ${fmt(r.epsilonReached, 3)}${accountedBy(r)} | ${fmt(r.noiseMultiplier, 3)}${r.noiseSetBy === null ? '' : ` (${r.noiseSetBy.toUpperCase()})`}${charged(r)} | ${r.mode === 'sample' && r.noiseMultiplier === null ? '–' : r.sampleRate.toFixed(3)} | ` +
        `${fmt(r.clipNorm, 2)} | ${shape} | ${r.learningRate} | ${(r.accuracy * 100).toFixed(2)}%${rounds} |`,
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const options = parseOptions(argv);
  if (options === 'help') {
    console.log(USAGE);
    return;
  }
  const demo = await loadMnistDemo();
  const results: RunResult[] = [];
  const targets: (number | null)[] = [...(options.skipNoDp ? [] : [null]), ...options.epsilons];
  const started = performance.now();
  for (const mode of options.modes) {
    for (const target of targets) {
      // Without DP the skellam row would be the client no-DP row again.
      if (mode === 'skellam' && target === null) continue;
      // No DP: one row. Skellam: its bound is RDP-only, so a PLD-set z would overspend.
      const accountants: readonly NoiseAccountant[] = target === null || mode === 'skellam' ? ['rdp'] : options.noiseAccountants;
      for (const accountant of accountants) {
        const label = `${mode} ${target === null ? 'no DP' : `ε = ${target}, noise set by ${accountant}`}`;
        console.error(`running ${label} ...`);
        const result =
          mode === 'sample' ? await runSample(options, demo, target, accountant) : await runClient(options, demo, target, mode, accountant);
        results.push(result);
        console.error(
          `  ${label}: accuracy ${(result.accuracy * 100).toFixed(2)}%, ε reached ${fmt(result.epsilonReached, 3)}, ` +
            `noise ${fmt(result.noiseMultiplier, 3)}, ${result.roundsCompleted} rounds, ${(result.wallMs / 1000).toFixed(1)} s`,
        );
      }
    }
  }
  const command = [COMMAND, ...argv].join(' ');
  console.log(`\n${table(results)}\n`);
  console.log(`Command: ${command}`);
  console.log(`Total wall time: ${((performance.now() - started) / 1000).toFixed(0)} s`);
  if (options.json) {
    const report = { command, delta: DELTA, conversion: 'improved', options, results, date: new Date().toISOString() };
    await writeFile(options.json, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`Raw results: ${options.json}`);
  }
  // Participants' reconnect timers and the wasm backend may keep the loop alive.
  process.exit(0);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
