import { shardIndices, subset, type Dataset, type ShardSkew } from '../../core/data/dataset.ts';
import type { FrozenWeightsStore } from '../../core/model/fine-tune-weights.ts';
import { Participant, type ParticipantEvent } from '../../core/participant/participant.ts';
import { DpSgdRoundTrainer, PlainRoundTrainer, type RoundTrainer } from '../../core/participant/trainers.ts';
import { DpSgdTrainer } from '../../core/privacy/dp-sgd.ts';
import { PrivacyLedger, type LedgerStore } from '../../core/privacy/ledger.ts';
import type { ClientLevelLedger } from '../../core/privacy/client-ledger.ts';
import { openClientLevelLedger } from '../../core/privacy/participant-budget.ts';
import type { TaskSummary } from '../../core/protocol/messages.ts';
import { LocalTrainer } from '../../core/training/local-trainer.ts';
import type { DemoData } from '../../coordinator/task/demo-data.ts';
import { initNodeBackend } from '../../coordinator/tf-node.ts';
import { SlowedTrainer } from './slowed-trainer.ts';

export interface NodeParticipant {
  readonly participant: Participant;
  readonly trainer: { dispose(): void };
  readonly events: ParticipantEvent[];
  readonly ledger?: PrivacyLedger;
  readonly clientLedger?: ClientLevelLedger;
  /** With a simulated pace (`paces`): the trainer that keeps it. */
  readonly slowed?: SlowedTrainer;
}

export interface NodeParticipantOptions {
  /** Total shards the demo training set is cut into (default: one per participant). */
  readonly totalShards?: number;
  /** With a DP-SGD task: where ledgers live, and each participant's ε budget (index-aligned, optional). */
  readonly ledgerStore?: LedgerStore;
  readonly budgets?: readonly (number | undefined)[];
  /** Client-level DP: where each participant's own ledger lives, and its ε budget (index-aligned; default 10). */
  readonly clientLedgerStore?: LedgerStore;
  readonly clientBudgets?: readonly (number | undefined)[];
  /** socket.io handshake auth, e.g. `{ token }` for a coordinator with join tokens. */
  readonly auth?: Record<string, string>;
  /** Fine-tuning tests: where participant k keeps the frozen weights (index-aligned, optional). */
  readonly frozenStores?: readonly (FrozenWeightsStore | undefined)[];
  /** Secure aggregation tests: participant k's plain update of each round, before masking. */
  readonly onPlainUpdate?: (k: number, round: number, update: Float32Array) => void;
  /** Simulated device speeds: how long participant k's local run takes in all, given its real training time (slowed-trainer.ts). */
  readonly paces?: readonly (((trainedMs: number) => number) | undefined)[];
  /** How the demo training set is cut into shards (default 'iid'). */
  readonly skew?: ShardSkew;
}

/**
 * Real participants in this Node process: the shared participant client and trainers on the tfjs wasm backend.
 * `data`: the demo data, of which participant k trains on shard k; or one prepared dataset per participant.
 */
export async function startNodeParticipants(
  url: string,
  data: DemoData | readonly Dataset[],
  task: TaskSummary,
  count: number,
  options: NodeParticipantOptions = {},
): Promise<NodeParticipant[]> {
  // Their own backend: the coordinator's tfjs is in its model thread, not this one.
  await initNodeBackend();
  const out: NodeParticipant[] = [];
  for (let k = 0; k < count; k++) {
    const local = participantData(data, k, options.totalShards ?? count, options.skew ?? 'iid');
    const events: ParticipantEvent[] = [];
    let trainer: RoundTrainer;
    let disposable: { dispose(): void };
    let ledger: PrivacyLedger | undefined;
    if (task.sampleDp) {
      const dp = new DpSgdTrainer(task.model, local, task.sampleDp);
      trainer = new DpSgdRoundTrainer(dp);
      disposable = dp;
      if (!options.ledgerStore) throw new Error('a DP-SGD task needs a ledger store');
      ledger = await PrivacyLedger.open(
        options.ledgerStore,
        `participant-${k}`,
        task.sampleDp.delta,
        options.budgets?.[k] ?? task.sampleDp.epsilonBudget,
      );
    } else {
      const plain = new LocalTrainer(task.model, local);
      trainer = new PlainRoundTrainer(plain);
      disposable = plain;
    }
    const clientLedger = options.clientLedgerStore
      ? await openClientLevelLedger(options.clientLedgerStore, local, { ownBudget: options.clientBudgets?.[k] })
      : undefined;
    const pace = options.paces?.[k];
    const slowed = pace === undefined ? undefined : new SlowedTrainer(trainer, pace);
    const participant = new Participant({
      url,
      client: { backend: 'wasm', platform: `node ${process.version}` },
      trainer: slowed ?? trainer,
      ledger,
      clientLedger,
      // Retry every 0.2 s, not backing off to 5 s: tests that SIGKILL and restart the coordinator otherwise wait
      // up to seconds per restart for the participants to come back (docs/test-time.md).
      reconnectionDelayMs: 200,
      reconnectionDelayMaxMs: 200,
      auth: options.auth,
      frozenStore: options.frozenStores?.[k],
      onPlainUpdate: options.onPlainUpdate ? (round, update) => options.onPlainUpdate!(k, round, update.slice()) : undefined,
      onEvent: (event) => events.push(event),
    });
    participant.start();
    out.push({ participant, trainer: disposable, events, ledger, clientLedger, slowed });
  }
  return out;
}

function participantData(data: DemoData | readonly Dataset[], k: number, shards: number, skew: ShardSkew): Dataset {
  if (!('train' in data)) {
    const own = data[k];
    if (!own) throw new Error(`participant ${k} has no dataset (${data.length} given)`);
    return own;
  }
  return subset(data.train, shardIndices(data.train.labels, { index: k, count: shards, skew }));
}

export function stopNodeParticipants(participants: readonly NodeParticipant[]): void {
  for (const p of participants) {
    p.participant.stop();
    p.trainer.dispose();
  }
}
