import type { ParticipantEvent } from '../../core/participant/participant.ts';
import type { Dataset, ShardSpec } from '../../core/data/dataset.ts';
import type { TaskSummary } from '../../core/protocol/messages.ts';
import type { AccountantKind } from '../../core/privacy/epsilon.ts';
import type { MeasureJob } from './backend-measure.ts';
import type { BackendName } from './backend-name.ts';
import type { SelectedBackend } from './backend.ts';

/** Messages between the participant page and its training worker. */

export { BACKENDS, type BackendName } from './backend-name.ts';

/** Sent as soon as the page loads, so the backend is ready (and shown) while the user picks data. */
export interface InitCommand {
  readonly type: 'init';
  /** Forced backend (`?backend=`); fails loudly when unavailable. */
  readonly backend?: BackendName;
}

/**
 * What the worker trains on. 'demo': its shard of the coordinator's encoded
 * demo dataset, fetched by the worker. 'local': examples the page prepared
 * from the user's files (or from a demo CSV), already in model layout; the
 * raw files never reach the worker.
 */
export type StartData =
  | { readonly kind: 'demo'; readonly shard: ShardSpec }
  /** `own`: the person's files (as opposed to a demo CSV shard), which sets the scope of the privacy ledger. */
  | { readonly kind: 'local'; readonly dataset: Dataset; readonly description: string; readonly own: boolean };

export interface StartCommand {
  readonly type: 'start';
  /** Coordinator origin, e.g. "http://localhost:8080". */
  readonly url: string;
  /** The task the page read from /api/task and prepared the data for. */
  readonly task: TaskSummary;
  readonly data: StartData;
  readonly platform: string;
  /** This tab's own ε budget (`?epsilon-budget=`), below the task's (or the default 10). */
  readonly epsilonBudget?: number;
  /** The person's largest acceptable δ (`?max-delta=`); 1e-5 when absent, never above 1/n. */
  readonly maxDelta?: number;
  /** `?accountant=`: the person's accountant for this device's ledgers (each is an upper bound on the same history). */
  readonly accountant?: AccountantKind;
  /** Join token (`?token=`), sent in the socket.io handshake when the coordinator needs one. */
  readonly token?: string;
}

/**
 * Sent once the page has the task: the worker chooses the backend by timing
 * this job (the task's model, batch size, DP or not) while the user picks data.
 */
export interface ChooseCommand {
  readonly type: 'choose';
  readonly job: MeasureJob;
}

/**
 * The job for a task: its model, its batch size and whether steps are DP-SGD.
 * The round's batch size arrives only with each round's fit config, so plain
 * tasks are timed at 32 (the default); DP-SGD tasks at their expected batch.
 */
export function jobForTask(task: TaskSummary): MeasureJob {
  return { model: task.model, batchSize: task.sampleDp?.expectedBatchSize ?? 32, dp: task.sampleDp !== undefined };
}

export interface LeaveCommand {
  readonly type: 'leave';
}

/** The person lowers this device's ε budget from the page (it can never be raised). */
export interface LowerBudgetCommand {
  readonly type: 'lower-budget';
  readonly epsilonBudget: number;
}

export type PageToWorker = InitCommand | ChooseCommand | StartCommand | LeaveCommand | LowerBudgetCommand;

export type WorkerToPage =
  /** The backend in use, how it was chosen and what the measurement found; `isolated`: the worker is cross-origin isolated. */
  | { readonly type: 'backend'; readonly selected: SelectedBackend; readonly text: string; readonly isolated: boolean }
  /** The training data as the worker holds it: example count and examples per class (index = label). */
  | { readonly type: 'data'; readonly numExamples: number; readonly labels: readonly number[]; readonly description: string }
  | {
      readonly type: 'dp';
      /** 'fast' (vectorised per-example gradients) or 'per-example-loop' (slow fallback for unsupported layers). */
      readonly path: string;
      readonly clipNorm: number;
      readonly noiseMultiplier: number;
      readonly expectedBatchSize: number;
      /** What the ε ledger covers: everything the person loads for this task in this browser, or one demo shard. */
      /** The ledger this data charges ('own-data': one for all the person's files; 'content': the demo shard's content hash), the device's δ and the ε budget in force. */
      readonly ledger: { readonly scope: 'own-data' | 'content'; readonly delta: number; readonly epsilonBudget: number };
    }
  | { readonly type: 'memory'; readonly round: number; readonly numTensors: number; readonly numBytes: number }
  | { readonly type: 'participant'; readonly event: ParticipantEvent }
  /** checkPrgTestVector() in this worker: 'ok', or the mismatch (the browser half of the PRG cross-check with Node). */
  | { readonly type: 'prg'; readonly result: string }
  | { readonly type: 'fatal'; readonly message: string };
