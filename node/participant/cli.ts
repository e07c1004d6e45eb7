import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseShard, type ShardSkew } from '../../core/data/dataset.ts';
import { Participant, type ParticipantEvent } from '../../core/participant/participant.ts';
import { DpSgdRoundTrainer, PlainRoundTrainer, type RoundTrainer } from '../../core/participant/trainers.ts';
import { DpSgdTrainer } from '../../core/privacy/dp-sgd.ts';
import type { PrivacyLedger } from '../../core/privacy/ledger.ts';
import { ACCOUNTANT_KINDS, type AccountantKind, isAccountantKind } from '../../core/privacy/epsilon.ts';
import { openClientLevelLedger, openParticipantLedger } from '../../core/privacy/participant-budget.ts';
import { PROTOCOL_VERSION, type TaskSummary } from '../../core/protocol/messages.ts';
import { LocalTrainer } from '../../core/training/local-trainer.ts';
import { initNodeBackend } from '../../coordinator/tf-node.ts';
import { FileFrozenWeightsStore } from './frozen-file-store.ts';
import { FileLedgerStore } from './file-ledger-store.ts';
import { demoShard, prepareLocalData, type LocalData } from './local-data.ts';
import { ProgressLine } from './progress.ts';

/**
 * A participant without a browser:
 *   npm run participant -- --url URL --data FILE_OR_FOLDER [--token-file F] [--backend wasm|cpu] [--state-dir D]
 * The same participant code as a tab (core/participant), the same data
 * preparation, DP-SGD with its ledger kept in the state folder, secure
 * aggregation and reconnection. Exit codes: 0 the federation finished,
 * 1 an error, 2 a usage error, 3 the privacy budget of this data is spent.
 */

export const USAGE = `usage: npm run participant -- --url URL (--data FILE_OR_FOLDER | --shard K/N) [options]

  --url URL            the coordinator, e.g. http://localhost:8080
  --data PATH          your data: a CSV for a tabular task; for an image task a folder
                       with one subfolder per class, a CSV of pixels, or an IDX images
                       file (its labels file beside it) or a folder holding an IDX pair
  --shard K/N          instead of --data: shard K of N of the task's public demo data
  --skew label         with --shard: the label-skewed (non-IID) split
  --token-file F       a file holding the join token, when the coordinator needs one
  --backend wasm|cpu   the TensorFlow.js backend (default wasm)
  --state-dir D        where the DP-SGD privacy ledger and a fine-tuning task's frozen weights are kept (default ./participant-state)
  --epsilon-budget X   with DP-SGD: this participant's own ε budget (it can only lower the task's)
  --accountant A       auto|pld|rdp: how this participant's own ledgers turn their history into ε
                       (default: the task's, else auto = the smaller of the PLD and RDP bounds)`;

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface CliOptions {
  readonly url: string;
  readonly data?: string;
  readonly shard?: string;
  readonly skew: ShardSkew;
  readonly tokenFile?: string;
  readonly backend: 'wasm' | 'cpu';
  readonly stateDir: string;
  readonly epsilonBudget?: number;
  /** The person's own accountant for its ledgers; each is an upper bound on the same history. */
  readonly accountant?: AccountantKind;
}

/** The parsed flags; a parse error ends the same way as any other bad flag. */
function flagValues(argv: readonly string[]) {
  try {
    return parseArgs({
      args: [...argv],
      options: {
        url: { type: 'string' },
        data: { type: 'string' },
        shard: { type: 'string' },
        skew: { type: 'string' },
        'token-file': { type: 'string' },
        backend: { type: 'string' },
        'state-dir': { type: 'string' },
        'epsilon-budget': { type: 'string' },
        accountant: { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

export function parseCliArgs(argv: readonly string[]): CliOptions {
  const values = flagValues(argv);
  if (values.url === undefined) throw new UsageError('--url is required');
  let url: URL;
  try {
    url = new URL(values.url);
  } catch {
    throw new UsageError(`--url ${values.url} is not a URL; give the coordinator's address, e.g. http://localhost:8080`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new UsageError(`--url must be an http:// or https:// address, got ${values.url}`);
  if ((values.data === undefined) === (values.shard === undefined))
    throw new UsageError("give exactly one of --data (your own data) or --shard K/N (the task's demo data)");
  const backend = values.backend ?? 'wasm';
  if (backend !== 'wasm' && backend !== 'cpu') throw new UsageError(`--backend must be wasm or cpu, got ${backend}`);
  const skew = values.skew ?? 'iid';
  if (skew !== 'iid' && skew !== 'label') throw new UsageError(`--skew must be iid or label, got ${skew}`);
  if (values.skew !== undefined && values.shard === undefined) throw new UsageError('--skew goes with --shard');
  if (values.shard !== undefined) {
    try {
      parseShard(values.shard);
    } catch (error) {
      throw new UsageError(`--shard: ${(error as Error).message}`);
    }
  }
  let epsilonBudget: number | undefined;
  if (values['epsilon-budget'] !== undefined) {
    epsilonBudget = Number(values['epsilon-budget']);
    if (!(epsilonBudget > 0) || !Number.isFinite(epsilonBudget))
      throw new UsageError(`--epsilon-budget must be a positive number, got ${values['epsilon-budget']}`);
  }
  const accountant = values.accountant;
  if (accountant !== undefined && !isAccountantKind(accountant))
    throw new UsageError(`--accountant must be one of ${ACCOUNTANT_KINDS.join(', ')}, got ${accountant}`);
  return {
    url: url.origin + url.pathname.replace(/\/$/, ''),
    data: values.data,
    shard: values.shard,
    skew,
    tokenFile: values['token-file'],
    backend,
    stateDir: path.resolve(values['state-dir'] ?? 'participant-state'),
    epsilonBudget,
    accountant,
  };
}

/** GET /api/task, with errors that say whether the address is wrong, unreachable or not a coordinator. */
export async function fetchTask(url: string): Promise<TaskSummary> {
  let response: Response;
  try {
    response = await fetch(`${url}/api/task`, { signal: AbortSignal.timeout(15_000) });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new Error(
      `cannot reach the coordinator at ${url}: ${cause?.code ?? cause?.message ?? (error as Error).message}; check the address and that the coordinator is running`,
    );
  }
  if (!response.ok)
    throw new Error(`${url} answered HTTP ${response.status} for /api/task: it is not a federation coordinator (or not this version)`);
  let task: unknown;
  try {
    task = await response.json();
  } catch {
    throw new Error(`${url}/api/task did not answer JSON: it is not a federation coordinator`);
  }
  const t = task as Partial<TaskSummary>;
  if (
    typeof t !== 'object' ||
    t === null ||
    typeof t.name !== 'string' ||
    typeof t.model !== 'object' ||
    typeof t.input !== 'object' ||
    !Array.isArray(t.classes)
  ) {
    throw new Error(`${url}/api/task is not a task description: it is not a federation coordinator`);
  }
  return task as TaskSummary;
}

async function readToken(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read the token file ${file}: ${(error as Error).message}`);
  }
  const token = text.trim();
  if (token === '' || /\s/.test(token)) throw new UsageError(`the token file ${file} must hold one token on one line`);
  return token;
}

/** Runs one participant until the federation ends; resolves with the exit code. */
export async function runParticipantCli(argv: readonly string[], out: (text: string) => void, interactive: boolean): Promise<number> {
  let options: CliOptions;
  try {
    options = parseCliArgs(argv);
  } catch (error) {
    out(`${(error as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  const token = options.tokenFile === undefined ? undefined : await readToken(options.tokenFile);
  const task = await fetchTask(options.url);
  out(`task "${task.name}": ${task.description}\n`);
  const backend = await initNodeBackend(options.backend);
  if (backend !== options.backend) throw new Error(`the ${options.backend} backend is not available here (got ${backend})`);

  const local: LocalData =
    options.data !== undefined
      ? await prepareLocalData(options.data, task)
      : await demoShard(options.url, task, parseShard(options.shard!, options.skew));
  for (const note of local.notes) out(`note: ${note}\n`);
  const counts = new Array<number>(task.classes.length).fill(0);
  for (const label of local.dataset.labels) counts[label]!++;
  out(`data: ${local.description}, ${local.dataset.count} examples (${task.classes.map((c, i) => `${c} ${counts[i]}`).join(', ')})\n`);

  let trainer: RoundTrainer;
  let disposable: { dispose(): void };
  let ledger: PrivacyLedger | undefined;
  if (task.sampleDp) {
    const dp = new DpSgdTrainer(task.model, local.dataset, task.sampleDp);
    trainer = new DpSgdRoundTrainer(dp);
    disposable = dp;
    // The device owns the budget (core/privacy/participant-budget.ts): keyed by the data, δ pinned, a default ε budget.
    ledger = await openParticipantLedger(new FileLedgerStore(options.stateDir), task.sampleDp, local.dataset, {
      ownBudget: options.epsilonBudget,
      ownData: options.data !== undefined,
      accountant: options.accountant,
    });
    const budget = ledger.epsilonBudget;
    out(
      `privacy: DP-SGD, ledger in ${options.stateDir}, ε ${ledger.epsilon.toFixed(3)} spent so far${budget === undefined ? '' : ` of ${budget}`}\n`,
    );
    if (budget !== undefined && ledger.epsilon >= budget) {
      dp.dispose();
      out(`the privacy budget of this data is spent (ε ${ledger.epsilon.toFixed(3)} of ${budget}): refusing to train on it again\n`);
      return 3;
    }
  } else {
    const plain = new LocalTrainer(task.model, local.dataset);
    trainer = new PlainRoundTrainer(plain);
    disposable = plain;
  }

  // Client-level DP: this device's own ledger of the rounds released while it took part, whatever the coordinator keeps.
  const clientLedger = await openClientLevelLedger(new FileLedgerStore(options.stateDir), local.dataset, {
    ownBudget: options.epsilonBudget,
    ownData: options.data !== undefined,
    accountant: options.accountant,
  });
  const progress = new ProgressLine(out, interactive);
  return new Promise<number>((resolve) => {
    let participant: Participant | undefined;
    let finished = false;
    const finish = (code: number) => {
      if (finished) return;
      finished = true;
      participant?.stop();
      disposable.dispose();
      if (interactive) out('\n');
      resolve(code);
    };
    const onEvent = (event: ParticipantEvent) => {
      progress.onEvent(event);
      if (event.type === 'done') finish(0);
      else if (event.type === 'error') finish(1);
      else if (event.type === 'privacy' && event.exhausted) finish(3);
    };
    participant = new Participant({
      url: options.url,
      client: { backend, platform: `node ${process.version} (protocol ${PROTOCOL_VERSION}, CLI)` },
      trainer,
      ledger,
      clientLedger,
      frozenStore: new FileFrozenWeightsStore(options.stateDir),
      auth: token === undefined ? undefined : { token },
      onEvent,
    });
    participant.start();
  });
}

async function main(): Promise<void> {
  const interactive = process.stdout.isTTY === true;
  try {
    process.exitCode = await runParticipantCli(process.argv.slice(2), (text) => process.stdout.write(text), interactive);
  } catch (error) {
    process.stderr.write(`participant: ${(error as Error).message}\n`);
    process.exitCode = error instanceof UsageError ? 2 : 1;
  }
  // socket.io and the wasm backend keep handles open; the work is done.
  setTimeout(() => process.exit(), 100).unref();
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) await main();
