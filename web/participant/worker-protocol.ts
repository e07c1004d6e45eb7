import type { ParticipantEvent } from '../../core/participant/participant.ts';
import type { ShardSkew } from '../../core/data/dataset.ts';

/** Messages between the participant page and its training worker. */

export const BACKENDS = ['webgpu', 'webgl', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

export interface StartCommand {
  readonly type: 'start';
  /** Coordinator origin, e.g. "http://localhost:8080". */
  readonly url: string;
  readonly shard: { readonly index: number; readonly count: number; readonly skew: ShardSkew };
  /** Forced backend (`?backend=`); fails loudly when unavailable. */
  readonly backend?: BackendName;
  readonly platform: string;
  /** This tab's own ε budget (`?epsilon-budget=`), below the task's default. */
  readonly epsilonBudget?: number;
  /** Join token (`?token=`), sent in the socket.io handshake when the coordinator needs one. */
  readonly token?: string;
}

export interface LeaveCommand {
  readonly type: 'leave';
}

export type PageToWorker = StartCommand | LeaveCommand;

export type WorkerToPage =
  | { readonly type: 'backend'; readonly backend: string; readonly adapter?: string; readonly tried: readonly string[] }
  | { readonly type: 'data'; readonly numExamples: number; readonly labels: readonly number[] }
  | {
      readonly type: 'dp';
      /** 'fast' (vectorised per-example gradients) or 'per-example-loop' (slow fallback for unsupported layers). */
      readonly path: string;
      readonly clipNorm: number;
      readonly noiseMultiplier: number;
      readonly expectedBatchSize: number;
    }
  | { readonly type: 'memory'; readonly round: number; readonly numTensors: number; readonly numBytes: number }
  | { readonly type: 'participant'; readonly event: ParticipantEvent }
  /** checkPrgTestVector() in this worker: 'ok', or the mismatch (the browser half of the PRG cross-check with Node). */
  | { readonly type: 'prg'; readonly result: string }
  | { readonly type: 'fatal'; readonly message: string };
