import * as tf from '@tensorflow/tfjs';
import { decodeDataset, shardIndices, subset, type Dataset } from '../../core/data/dataset.ts';
import { Participant } from '../../core/participant/participant.ts';
import { DpSgdRoundTrainer, PlainRoundTrainer, type RoundTrainer } from '../../core/participant/trainers.ts';
import { DpSgdTrainer } from '../../core/privacy/dp-sgd.ts';
import { datasetFingerprint, type PrivacyLedger } from '../../core/privacy/ledger.ts';
import { openClientLevelLedger, openParticipantLedger } from '../../core/privacy/participant-budget.ts';
import type { ClientLevelLedger } from '../../core/privacy/client-ledger.ts';
import { checkPrgTestVector } from '../../core/secagg/prg.ts';
import { LocalTrainer } from '../../core/training/local-trainer.ts';
import { IndexedDbFrozenWeightsStore } from './frozen-cache.ts';
import { IndexedDbLedgerStore } from './ledger-store.ts';
import { chooseBackend, choiceText, selectBackend, type SelectedBackend } from './backend.ts';
import { jobForTask, type PageToWorker, type StartCommand, type WorkerToPage } from './worker-protocol.ts';

/**
 * The participant runtime, in a dedicated worker: background tabs throttle
 * the page's timers, not a worker's, and training never blocks the UI. The
 * socket lives here too, so the page is only a view (and the file reader:
 * it hands over prepared examples, never the user's files).
 */

interface WorkerScope {
  postMessage(message: WorkerToPage): void;
  addEventListener(type: 'message', listener: (event: MessageEvent<PageToWorker>) => void): void;
}
const scope = self as unknown as WorkerScope;
const post = (message: WorkerToPage) => scope.postMessage(message);

let participant: Participant | undefined;
let initialised = false;
let ledger: PrivacyLedger | undefined;
let clientLedger: ClientLevelLedger | undefined;
let backend: Promise<SelectedBackend> | undefined;

const reportError = (error: unknown) => post({ type: 'fatal', message: error instanceof Error ? error.message : String(error) });

scope.addEventListener('message', (event) => {
  const command = event.data;
  if (command.type === 'init' && !initialised) {
    initialised = true;
    checkPrg();
    if (command.backend) backend = report(selectBackend(command.backend));
  } else if (command.type === 'choose') {
    backend ??= report(chooseBackend(command.job));
  } else if (command.type === 'start' && !participant) {
    start(command).catch(reportError);
  } else if (command.type === 'leave') {
    participant?.stop();
  } else if (command.type === 'lower-budget') {
    clientLedger?.ledger.lowerBudget(command.epsilonBudget);
    if (ledger) {
      ledger.lowerBudget(command.epsilonBudget);
      const budget = ledger.epsilonBudget!;
      post({
        type: 'participant',
        event: {
          type: 'privacy',
          epsilon: ledger.epsilon,
          delta: ledger.delta,
          budget,
          exhausted: ledger.epsilon >= budget,
          accountant: ledger.accounted.accountant,
        },
      });
    }
  }
});

/** Posts the backend once chosen (or the failure). */
function report(choice: Promise<SelectedBackend>): Promise<SelectedBackend> {
  choice.then(
    (selected) => post({ type: 'backend', selected, text: choiceText(selected), isolated: globalThis.crossOriginIsolated === true }),
    reportError,
  );
  return choice;
}

async function fetchOk(url: string): Promise<Response> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  return response;
}

function checkPrg(): void {
  // The mask PRG must give the same bytes here as in Node (test/unit/secagg-prg.test.ts): check once, report either way.
  void checkPrgTestVector().then(
    () => post({ type: 'prg', result: 'ok' }),
    (error: unknown) => post({ type: 'prg', result: error instanceof Error ? error.message : String(error) }),
  );
}

/** The examples this tab trains on: its shard of the demo dataset, or what the page prepared from local files. */
async function trainingData(command: StartCommand): Promise<{ local: Dataset; description: string }> {
  const { task, data } = command;
  if (data.kind === 'local') return { local: data.dataset, description: data.description };
  if (task.demoData?.format !== 'dataset') throw new Error(`task ${task.name} has no encoded demo dataset; load your own data instead`);
  // The demo training set is public; each tab keeps only its shard, and only updates leave the tab.
  const all = decodeDataset(new Uint8Array(await (await fetchOk(`${command.url}${task.demoData.url}`)).arrayBuffer()));
  return {
    local: subset(all, shardIndices(all.labels, data.shard)),
    description: `demo shard ${data.shard.index + 1}/${data.shard.count}`,
  };
}

async function start(command: StartCommand): Promise<void> {
  backend ??= report(chooseBackend(jobForTask(command.task)));
  const selected = await backend;
  const { task } = command;
  const { local, description } = await trainingData(command);
  const labels = new Array<number>(Math.max(local.numClasses, task.classes.length)).fill(0);
  for (const label of local.labels) labels[label]!++;
  post({ type: 'data', numExamples: local.count, labels, description });

  let trainer: RoundTrainer;
  const dp = task.sampleDp;
  if (dp) {
    const dpTrainer = new DpSgdTrainer(task.model, local, dp);
    trainer = new DpSgdRoundTrainer(dpTrainer);
    // The ledger is the person's own files' (one for all of them) or the demo shard's content hash: renaming the task or the file changes nothing; at the
    // device's δ (a task asking for more is refused) and the person's budget; ledgers once keyed by task name
    // are composed into it when it is new.
    const own = command.data.kind === 'local' && command.data.own;
    const legacyKey = own ? `${task.name}/own-data` : `${task.name}/${datasetFingerprint(local.labels, local.values)}`;
    ledger = await openParticipantLedger(new IndexedDbLedgerStore(), dp, local, {
      ownBudget: command.epsilonBudget,
      maxDelta: command.maxDelta,
      legacyKeys: [legacyKey],
      ownData: own,
      accountant: command.accountant,
    });
    post({
      type: 'dp',
      path: dpTrainer.gradientPath,
      clipNorm: dp.clipNorm,
      noiseMultiplier: dp.noiseMultiplier,
      expectedBatchSize: dp.expectedBatchSize,
      ledger: { scope: own ? 'own-data' : 'content', delta: ledger.delta, epsilonBudget: ledger.epsilonBudget! },
    });
  } else {
    trainer = new PlainRoundTrainer(new LocalTrainer(task.model, local));
  }
  const ownData = command.data.kind === 'local' && command.data.own;
  clientLedger = await openClientLevelLedger(new IndexedDbLedgerStore(), local, {
    ownBudget: command.epsilonBudget,
    maxDelta: command.maxDelta,
    ownData,
    accountant: command.accountant,
  });
  participant = new Participant({
    url: command.url,
    client: { backend: selected.backend, adapter: selected.adapter, threads: selected.threads, platform: command.platform },
    trainer,
    ledger,
    clientLedger,
    frozenStore: new IndexedDbFrozenWeightsStore(),
    auth: command.token ? { token: command.token } : undefined,
    onEvent: (event) => {
      post({ type: 'participant', event });
      if (event.type === 'uploaded' || event.type === 'rejected') {
        const memory = tf.memory();
        post({ type: 'memory', round: event.round, numTensors: memory.numTensors, numBytes: memory.numBytes });
      }
    },
  });
  participant.start();
}
