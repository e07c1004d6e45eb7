import { ackError, ErrorCode, type Ack } from '../../core/protocol/errors.ts';
import type {
  ClientInfo,
  DeclineMessage,
  ProgressMessage,
  SecAggAccepted,
  UpdateAccepted,
  UpdateMessage,
} from '../../core/protocol/messages.ts';
import type { AsyncPool } from './async-pool.ts';
import type { Clock } from './clock.ts';
import type { SecAggInput } from './collection.ts';
import { openRoundOf, type EngineState } from './engine-state.ts';
import type { OpenRound } from './collection.ts';
import { settle } from './open-round.ts';
import type { Participants } from './participants.ts';
import type { SecAggStep } from './secure-round.ts';

/** What intake needs from the engine. */
export interface IntakeHost {
  readonly clock: Clock;
  /** Where refusals are counted, when another intake's count is shared (a cluster member's round intake counts into its engine's); else its own. */
  readonly rejections?: Record<string, number>;
  readonly participants: Participants;
  state(): EngineState;
  inOpenRound(id: string): boolean;
  forgetDeparted(): void;
  statusChanged(): void;
  /** A new round may be possible: the engine looks on a fresh stack. */
  startSoon(): void;
  /** Async mode: participants' round messages name the version they were handed, and go to the pool. */
  readonly async?: AsyncPool;
}

/**
 * Participants' messages into the engine: joins and leaves, updates,
 * secure aggregation messages, declines and progress. Each round message
 * passes the common checks (admit) and then goes to the open round's
 * collection; every refusal is counted by its code.
 */
export class Intake {
  /** Refused requests by error code (the status's rejections). */
  readonly rejections: Record<string, number>;

  constructor(private readonly host: IntakeHost) {
    this.rejections = host.rejections ?? {};
  }

  /** A participant joined or rejoined. Returns its id (the old one when it is known). */
  join(info: ClientInfo, requestedId?: string, credential?: string): string {
    this.host.forgetDeparted();
    const record = this.host.participants.join(info, requestedId, credential, (id) => this.host.inOpenRound(id));
    this.host.statusChanged();
    // Deferred: the participant must get its join answer before any round:start.
    this.host.startSoon();
    return record.id;
  }

  /** A participant's connection closed. If it was selected and had not answered, it drops out of the round. */
  leave(participantId: string): void {
    const record = this.host.participants.get(participantId);
    if (!record) return;
    this.host.participants.left(record, this.host.clock.now());
    this.host.forgetDeparted();
    this.host.async?.left(record);
    const open = openRoundOf(this.host.state());
    if (open?.selected.has(participantId)) {
      const waiting = !open.settlements.has(participantId);
      if (waiting) {
        record.state = 'dropped';
        settle(open, participantId, this.host.clock.now(), 'dropped', 'disconnected');
      }
      open.collection.left(participantId, waiting);
    }
    this.host.statusChanged();
  }

  /** A secure aggregation message from a selected participant. Never throws: a refused message excludes its sender. */
  async submitSecAgg(participantId: string, step: SecAggStep, message: SecAggInput): Promise<Ack<SecAggAccepted>> {
    const record = this.host.participants.get(participantId);
    if (!record) return this.rejected(notJoined('secagg'));
    const admitted = admit('secagg', this.host.state(), participantId, message.round);
    if (!admitted.ok) return this.rejected(admitted.refusal);
    const result = await admitted.open.collection.submitSecAgg(record, step, message);
    if (!result.ok) {
      this.rejected(result);
      this.host.statusChanged();
    }
    return result;
  }

  /** Validates and accumulates one update. Never throws on bad input: it answers with a coded error. */
  submitUpdate(participantId: string, message: UpdateMessage): Ack<UpdateAccepted> {
    const result = this.acceptUpdate(participantId, message);
    if (!result.ok) {
      this.rejected(result);
      this.host.statusChanged();
    }
    return result;
  }

  private acceptUpdate(participantId: string, message: UpdateMessage): Ack<UpdateAccepted> {
    const record = this.host.participants.get(participantId);
    if (!record) return notJoined('update');
    const state = this.host.state();
    if (this.host.async && state.kind !== 'done') return this.host.async.submitUpdate(record, message);
    const admitted = admit('update', state, participantId, message.round);
    return admitted.ok ? admitted.open.collection.submitUpdate(record, message) : admitted.refusal;
  }

  /**
   * A selected participant will not train this round (its privacy budget is
   * spent, say). The round stops waiting for it; with `final` it is never
   * selected again.
   */
  decline(participantId: string, message: DeclineMessage): Ack<{ readonly round: number }> {
    const record = this.host.participants.get(participantId);
    if (!record) return this.rejected(notJoined('decline'));
    // A participant that will never train again retires whatever the state of the round.
    if (message.final) {
      record.retired = true;
      record.declined = message.reason;
    }
    this.host.statusChanged();
    if (this.host.async && this.host.state().kind !== 'done') return this.rejected(this.host.async.decline(record, message));
    const admitted = admit('decline', this.host.state(), participantId, message.round);
    if (!admitted.ok) return this.rejected(admitted.refusal);
    return this.rejected(admitted.open.collection.decline(record, message));
  }

  /** Counts a refused request by its code (the status's rejections). */
  count(code: string): void {
    this.rejections[code] = (this.rejections[code] ?? 0) + 1;
  }

  private rejected<T>(result: Ack<T>): Ack<T> {
    if (!result.ok) this.count(result.error.code);
    return result;
  }

  /** Takes a selected participant out of the open round (its request was unusable), so the round need not wait for it. */
  excludeFromOpenRound(participantId: string): void {
    const record = this.host.participants.get(participantId);
    const state = this.host.state();
    if (record && this.host.async) {
      this.host.async.exclude(record);
      return;
    }
    if (!record || state.kind !== 'collecting' || !state.round.selected.has(participantId)) return;
    state.round.collection.exclude(record);
  }

  /** Records a participant's training progress for the dashboard. Ignored unless it is training in the open round. */
  reportProgress(participantId: string, message: ProgressMessage): void {
    const record = this.host.participants.get(participantId);
    if (record && this.host.async) {
      this.host.async.progress(record, message);
      return;
    }
    const open = openRoundOf(this.host.state());
    if (!record || !open || message.round !== open.round || !open.selected.has(participantId) || open.settlements.has(participantId))
      return;
    record.state = 'training';
    record.progress = message.fraction;
    this.host.statusChanged();
  }
}

/** A participant's message about a round: an update, a secure aggregation message, or a decline. */
export type RoundMessageKind = 'update' | 'secagg' | 'decline';

/** The message may go to the open round's collection, or is refused with a code. */
export type Admission = { readonly ok: true; readonly open: OpenRound } | { readonly ok: false; readonly refusal: Ack<never> };

const NOT_JOINED: Record<RoundMessageKind, string> = {
  update: 'join before sending updates',
  secagg: 'join before sending secure aggregation messages',
  decline: 'join before declining rounds',
};

/** The refusal for a participant the engine does not know. */
export function notJoined(kind: RoundMessageKind): Ack<never> {
  return ackError(ErrorCode.NotJoined, NOT_JOINED[kind]);
}

/**
 * The checks every round message of a known participant passes before the
 * round's collection sees it: the federation has not finished, the round it
 * names is open and collecting, and (except secure aggregation messages,
 * whose round checks its own indices) the sender was selected for it.
 */
export function admit(kind: RoundMessageKind, state: EngineState, participantId: string, round: number): Admission {
  if (state.kind === 'done') return refuse(ErrorCode.FederationDone, `the federation has finished: ${state.reason}`);
  const open = state.kind === 'collecting' ? state.round : undefined;
  if (!open || open.round !== round) return refuse(ErrorCode.WrongRound, wrongRound(kind, round, open));
  if (kind !== 'secagg' && !open.selected.has(participantId)) return refuse(ErrorCode.NotSelected, `not selected for round ${open.round}`);
  return { ok: true, open };
}

function wrongRound(kind: RoundMessageKind, round: number, collecting: OpenRound | undefined): string {
  switch (kind) {
    case 'update':
      return `update for round ${round} refused: ${collecting ? `round ${collecting.round} is collecting updates` : 'no round is collecting updates'}`;
    case 'secagg':
      return `secure aggregation message for round ${round} refused: no such round is open`;
    case 'decline':
      return `round ${round} is not collecting answers`;
    default:
      throw new Error(`unknown round message ${kind satisfies never as string}`);
  }
}

function refuse(code: ErrorCode, message: string): Admission {
  return { ok: false, refusal: ackError(code, message) };
}
