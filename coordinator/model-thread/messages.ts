import type { MembershipAuditResult } from '../../core/privacy/membership-audit.ts';
import type { EvalMetrics } from '../../core/protocol/messages.ts';
import type { ModelArtifactsFiles } from '../storage/model-files.ts';
import type { LoadedTask, TaskLoadOptions } from '../task/load-task.ts';

/** What the main thread keeps of a loaded task: all of it but the evaluation and audit sets, which stay in the model thread. */
export type ThreadTask = Omit<LoadedTask, 'test' | 'audit'> & {
  /** The task has member and non-member sets, so the run report can audit its models. */
  readonly auditable: boolean;
  /** SHA-256 of the evaluation and audit data the thread holds: a restarted thread must hold the same. */
  readonly dataDigest: string;
};

/** The model thread's workerData. */
export interface ModelThreadData {
  readonly load: TaskLoadOptions;
}

/** What each request kind answers. */
export interface ModelAnswers {
  /** The model on the held-out test set (evaluator.ts). */
  readonly evaluate: EvalMetrics;
  /** model.json + weights.bin (storage/model-serializer.ts). */
  readonly files: ModelArtifactsFiles;
  /** The membership-inference audit (report/audit.ts). */
  readonly audit: MembershipAuditResult;
}

export type ModelRequestKind = keyof ModelAnswers;

/** Main thread → model thread: every request is about one model's flat weights. */
export interface ModelRequest {
  readonly id: number;
  readonly kind: ModelRequestKind;
  readonly weights: Float32Array;
}

/** An error as it crosses the thread boundary (its class does not). */
export interface ThreadError {
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
}

/** Model thread → main thread. */
export type ModelThreadMessage =
  | { readonly kind: 'loaded'; readonly task: ThreadTask; readonly backend: string }
  | { readonly kind: 'load-failed'; readonly error: ThreadError }
  | { readonly kind: 'answer'; readonly id: number; readonly value: ModelAnswers[ModelRequestKind] }
  | { readonly kind: 'failed'; readonly id: number; readonly error: ThreadError };

export function threadError(error: unknown): ThreadError {
  return error instanceof Error
    ? { name: error.name, message: error.message, ...(error.stack === undefined ? {} : { stack: error.stack }) }
    : { name: 'Error', message: String(error) };
}

/** The error again on the main thread, with the name (TaskLoadError, RangeError, ...) and message it had. */
export function rethrown(error: ThreadError): Error {
  const out = new Error(error.message);
  out.name = error.name;
  if (error.stack !== undefined) out.stack = error.stack;
  return out;
}
