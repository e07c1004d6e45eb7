import type { StorageFailure } from '../../core/protocol/status.ts';

/**
 * Saving state the coordinator is about to show: retried with backoff, and
 * on lasting failure described for the operator (what, path, OS error)
 * instead of being logged and forgotten. Whoever calls this keeps the state
 * invisible until it resolves with `ok`.
 */

/** How often and how patiently a failed save is tried again before the federation pauses. */
export interface RetryPolicy {
  /** Tries in all, the first included. */
  readonly attempts: number;
  /** Wait before the second try; each later wait doubles, up to `maxDelayMs`. */
  readonly firstDelayMs: number;
  readonly maxDelayMs: number;
}

/** 5 tries over about 3.75 s: rides out a brief hiccup (a remount, a full disk being cleaned), not an operator's fix. */
export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, firstDelayMs: 250, maxDelayMs: 2000 };

export type SaveOutcome = { readonly ok: true } | { readonly ok: false; readonly failure: StorageFailure };

export interface SaveAttempt {
  /** What is being saved, in words the operator reads: "round 7 (checkpoint, history, model files)". */
  readonly what: string;
  readonly save: () => Promise<void> | void;
  /** Waits between tries (the engine's clock, so tests need not wait in real time). */
  readonly wait: (ms: number) => Promise<void>;
  readonly now: () => number;
  readonly policy?: RetryPolicy;
  /** Told of every failed try that will be retried, with the wait before the next. */
  readonly onRetry?: (failure: StorageFailure, delayMs: number) => void;
}

export async function saveWithRetry(attempt: SaveAttempt): Promise<SaveOutcome> {
  const policy = attempt.policy ?? DEFAULT_RETRY;
  let delay = policy.firstDelayMs;
  for (let tried = 1; ; tried++) {
    try {
      await attempt.save();
      return { ok: true };
    } catch (error) {
      const failure = describeSaveError(attempt.what, error, tried, attempt.now());
      if (tried >= policy.attempts) return { ok: false, failure };
      attempt.onRetry?.(failure, delay);
      await attempt.wait(delay);
      delay = Math.min(policy.maxDelayMs, delay * 2);
    }
  }
}

/** Node's file-system errors carry the path and the OS error code (ENOSPC, EACCES, ENOTDIR...): keep both. */
export function describeSaveError(what: string, error: unknown, attempts: number, at: number): StorageFailure {
  const fsError = error as { path?: unknown; dest?: unknown; code?: unknown; message?: unknown };
  const path = typeof fsError.path === 'string' ? fsError.path : undefined;
  const code = typeof fsError.code === 'string' ? fsError.code : undefined;
  const message = typeof fsError.message === 'string' ? fsError.message : String(error);
  return { what, ...(path !== undefined ? { path } : {}), ...(code !== undefined ? { code } : {}), message, attempts, at };
}

/** One line for logs and the dashboard. */
export function storageFailureText(failure: StorageFailure): string {
  return `saving ${failure.what} failed after ${failure.attempts} tries: ${failure.code ?? 'error'} at ${failure.path ?? '(unknown path)'} (${failure.message})`;
}
