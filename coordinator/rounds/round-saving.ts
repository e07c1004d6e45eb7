import type { RoundRecord } from '../../core/protocol/status.ts';
import type { RoundCandidate } from './closing.ts';
import { saveWithRetry, storageFailureText, type SaveOutcome } from './durable-commit.ts';
import type { UnsavedState } from './engine-state.ts';
import type { RoundEngineOptions } from './engine-types.ts';

/**
 * The engine's two saves, each retried with backoff (durable-commit.ts): a
 * round's number before its participants hear of it (started.json), and a
 * closed round with its model and the history up to it before anything
 * shows it. `attempts` 1 is the operator's own retry after a failure.
 */
export class RoundSaving {
  constructor(private readonly options: RoundEngineOptions) {}

  /** Saves that round `round` started; saved at once when nothing persists round starts. */
  roundStart(round: number, attempts?: number): Promise<SaveOutcome> {
    const persist = this.options.onRoundStarting;
    if (!persist) return Promise.resolve({ ok: true });
    return this.save(`the start of round ${round} (started.json)`, () => persist(round), attempts);
  }

  /** Saves a closed round with its model and `history`, the rounds before it. */
  round(candidate: RoundCandidate, history: readonly RoundRecord[], attempts?: number): Promise<SaveOutcome> {
    const persist = this.options.onRoundCompleted;
    if (!persist) return Promise.resolve({ ok: true });
    const { record, model } = candidate;
    return this.save(
      `round ${record.round} (checkpoint, history, model files)`,
      () => persist(record, model, [...history, record]),
      attempts,
    );
  }

  /** The operator's retry of what a storage hold keeps unsaved: one attempt. */
  retry(unsaved: UnsavedState, history: readonly RoundRecord[]): Promise<SaveOutcome> {
    switch (unsaved.kind) {
      case 'round':
        return this.round(unsaved.candidate, history, 1);
      case 'round-start':
        return this.roundStart(unsaved.round, 1);
      default:
        throw new Error(`unknown unsaved state ${unsaved satisfies never as string}`);
    }
  }

  logError(line: string): void {
    (this.options.logError ?? console.error)(line);
  }

  private save(what: string, save: () => Promise<void> | void, attempts?: number): Promise<SaveOutcome> {
    const { clock } = this.options;
    const policy = this.options.saveRetry;
    return saveWithRetry({
      what,
      save,
      wait: (ms) => new Promise((resolve) => clock.setTimer(ms, () => resolve())),
      now: () => clock.now(),
      policy: attempts === undefined ? policy : { firstDelayMs: 0, maxDelayMs: 0, ...policy, attempts },
      onRetry: (failure, delayMs) => this.logError(`${storageFailureText(failure)}; trying again in ${delayMs} ms`),
    });
  }
}
