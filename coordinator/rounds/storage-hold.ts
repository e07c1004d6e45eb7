import type { RoundRecord, StorageFailure } from '../../core/protocol/status.ts';
import type { RoundCandidate } from './closing.ts';
import { storageFailureText, type SaveOutcome } from './durable-commit.ts';
import type { EngineState, UnsavedState } from './engine-state.ts';
import type { RoundSaving } from './round-saving.ts';

/** What holding back an unsaved state, and the operator's retry, need from the engine. */
export interface StorageHoldHost {
  state(): EngineState;
  to(next: EngineState): void;
  readonly saving: RoundSaving;
  readonly history: readonly RoundRecord[];
  /** A round's number is used up (started.json has it) whether or not the round is ever saved. */
  useRoundNumber(round: number): void;
  finish(reason: string): void;
  /** The round was saved after all: it becomes visible. */
  publishRound(candidate: RoundCandidate): void;
  /** The round's number was saved after all: the round opens. */
  openRound(round: number): void;
  statusChanged(): void;
}

/**
 * A save that failed for good (durable-commit.ts) pauses the federation: the
 * unsaved round (or round start) is held out of sight, the failure is shown
 * (status, dashboard, log), and only the operator's resume, which tries the
 * save once more, lets the federation go on.
 */
export class StorageHold {
  /** What the status shows: the last save that failed for good, until one succeeds. */
  failure: StorageFailure | undefined;

  constructor(private readonly host: StorageHoldHost) {}

  /** What the federation is paused on, if it is paused on a failed save. */
  unsaved(): UnsavedState | undefined {
    const state = this.host.state();
    return state.kind === 'idle' && state.pause?.kind === 'storage' ? state.pause.unsaved : undefined;
  }

  /** Pauses on `unsaved`, saying why; a stop that was waiting for the round ends the federation instead. */
  hold(unsaved: UnsavedState, failure: StorageFailure): void {
    const host = this.host;
    const state = host.state();
    this.failure = failure;
    if (unsaved.kind === 'round') host.useRoundNumber(unsaved.candidate.record.round);
    const held =
      unsaved.kind === 'round'
        ? `round ${unsaved.candidate.record.round} is not shown or announced until it is saved`
        : `round ${unsaved.round} does not start until its number is saved`;
    host.saving.logError(`${storageFailureText(failure)}. The federation is paused: ${held}. Make the folder writable, then resume.`);
    if (state.kind === 'closing' && state.after.kind === 'stop') {
      host.finish(
        unsaved.kind === 'round'
          ? `${state.after.reason}; round ${unsaved.candidate.record.round} could not be saved, so it was never shown or counted`
          : state.after.reason,
      );
      return;
    }
    host.to({ kind: 'idle', pause: { kind: 'storage', unsaved, retrying: false } });
    host.statusChanged();
  }

  /** The operator's resume: one more try; on success the federation goes on. Returns why not, if not. */
  async retry(): Promise<string | undefined> {
    const host = this.host;
    const state = host.state();
    if (state.kind !== 'idle' || state.pause?.kind !== 'storage') return undefined;
    const { unsaved } = state.pause;
    if (state.pause.retrying) return 'a retry of the failed save is already under way';
    const retrying: EngineState = { kind: 'idle', pause: { kind: 'storage', unsaved, retrying: true } };
    host.to(retrying);
    let outcome: SaveOutcome;
    try {
      outcome = await host.saving.retry(unsaved, host.history);
    } finally {
      if (host.state() === retrying) host.to({ kind: 'idle', pause: { kind: 'storage', unsaved, retrying: false } });
    }
    if (this.unsaved() !== unsaved) return 'the federation stopped meanwhile';
    if (!outcome.ok) {
      this.failure = outcome.failure;
      host.saving.logError(`resume refused: ${storageFailureText(outcome.failure)}`);
      host.statusChanged();
      return `saving still fails: ${storageFailureText(outcome.failure)}`;
    }
    this.failure = undefined;
    host.to({ kind: 'idle' });
    if (unsaved.kind === 'round') {
      host.publishRound(unsaved.candidate);
    } else {
      host.statusChanged();
      host.openRound(unsaved.round);
    }
    return undefined;
  }
}
