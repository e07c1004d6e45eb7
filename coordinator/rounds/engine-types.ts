import { createHash } from 'node:crypto';
import type { Strategy } from '../../core/aggregation/strategy.ts';
import type {
  EvalMetrics,
  FederationDoneMessage,
  ModelEncodingName,
  RoundEndMessage,
  RoundStartMessage,
} from '../../core/protocol/messages.ts';
import type { FederationStatus, RoundRecord, RoundSettings } from '../../core/protocol/status.ts';
import type { UniformSource } from '../../core/random/prng.ts';
import type { SecAggResult } from '../../core/secagg/protocol.ts';
import { gatherTrainable, type TrainableLayout } from '../../core/model/fine-tune.ts';
import { encodeFloat16 } from '../../core/compression/update-codec.ts';
import { encodeFrame, FrameKind } from '../../core/wire/frame.ts';
import type { Clock } from './clock.ts';
import type { RetryPolicy } from './durable-commit.ts';
import type { SecAggOutbound } from './secure-round.ts';

/** The round engine's public types: what the server gives it and gets from it. */

/** How the engine reaches participants; the socket.io server implements it. */
export interface RoundTransport {
  sendRoundStart(participantId: string, message: RoundStartMessage): void;
  broadcastRoundEnd(message: RoundEndMessage): void;
  broadcastDone(message: FederationDoneMessage): void;
  /** Something in `status()` changed (the server throttles pushes to dashboards). */
  statusChanged(): void;
  /** Secure aggregation: a step's output for one participant (needed with `settings.secureAggregation`). */
  sendSecAgg?(participantId: string, out: SecAggOutbound): void;
}

/** Tests only: what the coordinator holds during secure aggregation. */
export interface SecAggObserver {
  masked?(round: number, participantId: string, masked: Uint32Array): void;
  finished?(round: number, result: SecAggResult, contributors: readonly string[]): void;
}

export interface ModelEvaluator {
  evaluate(weights: Float32Array): Promise<EvalMetrics>;
}

/**
 * Called after every closed round, aggregated or skipped, with the round's
 * model and the history including the round, before anything shows them
 * (status, downloads, round:end): persistence hooks in here. A throw means
 * not saved: it is retried, then the federation pauses (durable-commit.ts).
 */
export type RoundCompletedListener = (record: RoundRecord, model: GlobalModel, history: readonly RoundRecord[]) => Promise<void> | void;

/** Where a restarted coordinator picks up: the last checkpoint, and the last round number ever used. */
export interface ResumePoint {
  readonly round: number;
  readonly modelVersion: number;
  readonly weights: Float32Array;
  readonly history: readonly RoundRecord[];
}

export interface GlobalModel {
  readonly version: number;
  readonly weights: Float32Array;
  /** SHA-256 (hex) of the weights' bytes, as weights.bin stores them. */
  readonly hash: string;
  /** The weights encoded once as a frame, shared by every message that sends them (only the trainable ones when fine-tuning). */
  readonly frame: ArrayBuffer;
  /** Values in each update (and secure sum) of a round from this model: the trainable ones when fine-tuning, else all. */
  readonly updateLength: number;
  /** Fine-tuning: the hash of the frozen values the frame leaves out (GlobalModelMessage.frozenHash). */
  readonly frozenHash?: string;
}

/** A fine-tuning task, as the engine needs it: what travels of the model, and the frozen values' hash. */
export interface EngineFineTune {
  readonly layout: TrainableLayout;
  readonly frozenHash: string;
}

export interface RoundEngineOptions {
  readonly settings: RoundSettings;
  readonly strategy: Strategy;
  readonly clock: Clock;
  readonly transport: RoundTransport;
  readonly evaluator: ModelEvaluator;
  readonly initialWeights: Float32Array;
  readonly random: UniformSource;
  readonly task: FederationStatus['task'];
  readonly onRoundCompleted?: RoundCompletedListener;
  /** Awaited before a round's participants hear of it (persists the round number). */
  readonly onRoundStarting?: (round: number) => Promise<void> | void;
  readonly resume?: ResumePoint;
  /** The last round number ever started (perhaps cut short by a crash); numbering continues after it. */
  readonly lastStartedRound?: number;
  /** Creates participant ids; random by default. */
  readonly newId?: () => string;
  readonly secaggObserver?: SecAggObserver;
  /** Failed saves: how often to retry before pausing (durable-commit.ts DEFAULT_RETRY). */
  readonly saveRetry?: RetryPolicy;
  /** Where save failures are reported (console.error by default). */
  readonly logError?: (line: string) => void;
  /** A participant that left is forgotten after this long (participant-registry.ts); default 120 s. */
  readonly participantGraceMs?: number;
  /** Called when a participant's record is forgotten (the server drops its rejoin secret). */
  readonly onParticipantForgotten?: (participantId: string) => void;
  /** Fine-tuning: rounds send and collect only the trainable values (the strategy must be a FineTuneStrategy of the same layout). */
  readonly fineTune?: EngineFineTune;
}

/**
 * The model as the engine holds and sends it. `encoding`: how the frame sent to participants carries the
 * weights (`--model-encoding`); fine-tuning: the frame carries only the trainable values. The hash is always
 * of the whole float32 weights.
 */
export function makeModel(
  version: number,
  weights: Float32Array,
  options: { readonly fineTune?: EngineFineTune; readonly encoding?: ModelEncodingName } = {},
): GlobalModel {
  const sent = options.fineTune ? gatherTrainable(weights, options.fineTune.layout) : weights;
  const frame = options.encoding === 'float16' ? encodeFloat16(FrameKind.Weights, sent).frame : encodeFrame(FrameKind.Weights, sent);
  return {
    version,
    weights,
    hash: weightsHash(weights),
    frame,
    updateLength: sent.length,
    ...(options.fineTune ? { frozenHash: options.fineTune.frozenHash } : {}),
  };
}

/** SHA-256 of float32 weights as little-endian bytes: the same digest as of the weights.bin they are saved to. */
export function weightsHash(weights: Float32Array): string {
  return createHash('sha256')
    .update(new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength))
    .digest('hex');
}
