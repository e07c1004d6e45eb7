import { ackError, ackOk, ErrorCode, type Ack } from '../../core/protocol/errors.ts';
import type { DeclineMessage, ProgressMessage, UpdateAccepted, UpdateMessage } from '../../core/protocol/messages.ts';
import type { AsyncSettings } from '../../core/protocol/status.ts';
import { AsyncCollection, type AsyncPoolLink, type BufferedUpdate } from './async-collection.ts';
import { checkAsyncUpload } from './async-upload.ts';
import type { TimerHandle } from './clock.ts';
import type { CollectionHost, CollectionMethod } from './collection.ts';
import type { EngineState } from './engine-state.ts';
import type { GlobalModel, RoundEngineOptions } from './engine-types.ts';
import type { ParticipantRecord, Participants } from './participants.ts';

/** A participant training now: which version's round:start it got, and until when its slot is held. */
interface Slot {
  readonly round: number;
  readonly baseVersion: number;
  readonly startedAt: number;
  readonly timer: TimerHandle;
}

/** What the pool needs from the engine. */
export interface AsyncPoolHost {
  readonly options: RoundEngineOptions;
  readonly participants: Participants;
  readonly settings: AsyncSettings;
  /** The slot timeout: a participant that has not answered by then gives its slot back. */
  slotTimeoutMs(): number;
  /** On a cluster each node's own intake hands out slots (coordinator/cluster/async-node.ts): this pool hands out none. */
  readonly slotsElsewhere?: boolean;
  state(): EngineState;
  model(): GlobalModel;
  statusChanged(): void;
  /** Counts a refusal of an update that was already acknowledged (the status's rejections). */
  countRejection(code: string): void;
}

/**
 * Asynchronous buffered aggregation's side of the engine that outlives a
 * version (docs/async.md): who is training now (at most C, in slots handed
 * to the longest-waiting idle participants), the updates that arrive while
 * no version collects (one is being aggregated, evaluated and saved), and
 * the intake of updates, declines and progress, which name the version a
 * participant was handed rather than the open one.
 *
 * A participant gets round:start (mode 'async') with the newest model when
 * it gets a slot, trains, and uploads with that base version; once its
 * update is taken (or refused as too stale) it gets the newest model again
 * as soon as a slot and a collecting version allow.
 */
export class AsyncPool implements AsyncPoolLink {
  private readonly slots = new Map<string, Slot>();
  /** Accepted while no version was collecting; they go into the next version's buffer first. */
  private pending: { record: ParticipantRecord; update: BufferedUpdate }[] = [];
  private current: AsyncCollection | undefined;
  /** When each participant last had a slot: the longest-waiting get the next ones. */
  private readonly lastServed = new Map<string, number>();
  /** Out of the current version (a refused request, a decline): they get a slot again from the next version. */
  private readonly outOfVersion = new Set<string>();
  /** The collection method the round opening picks in async mode. */
  readonly method: CollectionMethod;

  constructor(private readonly host: AsyncPoolHost) {
    this.method = {
      // Versions have no deadline (interrupt ignores it); slots do.
      deadlineMs: () => host.slotTimeoutMs(),
      create: (collectionHost: CollectionHost, round) => new AsyncCollection(collectionHost, round, host.settings, this),
    };
  }

  /** Participants training now. */
  get training(): number {
    return this.slots.size;
  }

  holds(id: string): boolean {
    return this.slots.has(id);
  }

  opened(collection: AsyncCollection): void {
    this.current = collection;
    this.outOfVersion.clear();
    const waiting = this.pending;
    this.pending = [];
    for (const { record, update } of waiting) {
      if (this.collecting() === undefined || this.contributedOnce(collection, record)) {
        this.pending.push({ record, update });
        continue;
      }
      // Already acknowledged: a refusal here (a strategy check) is recorded in the version and counted, not answered.
      const result = collection.accept(record, update);
      if (!result.ok) this.host.countRejection(result.error.code);
    }
    if (this.collecting() === collection) this.dispatch();
    else this.handOutWhileMade(collection);
  }

  closed(collection: AsyncCollection): void {
    if (this.current === collection) this.current = undefined;
  }

  /** An update from a participant training in a slot: refused, buffered, or held for the next version. */
  submitUpdate(record: ParticipantRecord, message: UpdateMessage): Ack<UpdateAccepted> {
    const now = this.host.options.clock.now();
    const upload = checkAsyncUpload(this.slots.get(record.id), message, {
      appliesTo: this.appliesTo(),
      maxStaleness: this.host.settings.maxStaleness,
      encoding: this.host.options.settings.updateEncoding ?? 'float32',
      updateLength: this.host.model().updateLength,
    });
    switch (upload.kind) {
      case 'no-slot':
        return upload.refusal;
      case 'unusable':
        return this.outOfTurn(record, upload.refusal);
      case 'too-stale': {
        this.release(record);
        const result = this.recordRefusal(record, upload.refusal);
        // It trains again from the newest model at once.
        this.dispatch();
        return result;
      }
      case 'usable':
        break;
      default:
        throw new Error(`unknown upload check ${upload satisfies never}`);
    }
    this.release(record);
    record.state = 'uploaded';
    record.progress = undefined;
    if (message.epsilon !== undefined) record.epsilon = message.epsilon;
    const buffered: BufferedUpdate = {
      participantId: record.id,
      baseVersion: message.baseVersion,
      numExamples: message.numExamples,
      update: upload.update,
      norm: upload.norm,
      bytes: message.update.byteLength,
      latencyMs: now - upload.slot.startedAt,
    };
    const open = this.collecting();
    let result: Ack<UpdateAccepted>;
    if (open && !this.contributedOnce(open, record)) {
      result = open.accept(record, buffered);
      if (!result.ok) this.outOfVersion.add(record.id);
    } else {
      this.pending.push({ record, update: buffered });
      result = ackOk({ round: message.round, received: this.pending.length });
    }
    this.dispatch();
    this.host.statusChanged();
    return result;
  }

  decline(record: ParticipantRecord, message: DeclineMessage): Ack<{ readonly round: number }> {
    const slot = this.slots.get(record.id);
    if (!slot || slot.round !== message.round) return ackError(ErrorCode.NotSelected, `no training slot for round ${message.round}`);
    this.release(record);
    record.declined = message.reason;
    record.state = 'declined';
    this.outOfVersion.add(record.id);
    // The intake already told the status it changed (pushes are deferred, so they show this state).
    this.dispatch();
    return ackOk({ round: message.round });
  }

  progress(record: ParticipantRecord, message: ProgressMessage): void {
    if (this.slots.get(record.id)?.round !== message.round) return;
    record.state = 'training';
    record.progress = message.fraction;
    this.host.statusChanged();
  }

  /** How many participants' last hand-out times are kept: only those still here (left and expire forget the rest). */
  get servedKnown(): number {
    return this.lastServed.size;
  }

  /** A participant's connection closed: its slot goes to someone else, and its last hand-out time is forgotten. */
  left(record: ParticipantRecord): void {
    // Every participant that ever trained would otherwise stay in lastServed for the life of the process.
    this.lastServed.delete(record.id);
    if (!this.slots.has(record.id)) return;
    this.release(record);
    this.dispatch();
  }

  exclude(record: ParticipantRecord): void {
    if (!this.slots.has(record.id)) return;
    this.release(record);
    this.outOfVersion.add(record.id);
    this.dispatch();
  }

  /** The federation finished: slot timers stop, nothing more is handed out. */
  stop(): void {
    for (const slot of this.slots.values()) this.host.options.clock.clear(slot.timer);
    this.slots.clear();
    this.pending = [];
    this.current = undefined;
  }

  /** Hands free slots to the longest-waiting idle participants, while a version collects and no pause or stop is pending. */
  dispatch(): void {
    if (this.host.slotsElsewhere) return;
    const open = this.collecting();
    const state = this.host.state();
    if (!open || state.kind !== 'collecting' || state.after.kind !== 'continue') return;
    this.handOut(open, () => false);
  }

  /**
   * The version that just opened was filled by updates held while the one
   * before it was made, and closes as it opens. The model just published is
   * durable and the newest: the idle participants get it now rather than
   * idling through this version too, except those whose update is in this
   * version, who get the model it makes (they would train again from a
   * base without their own update). Its start is saved and it is not yet
   * delivered, so the hand-outs count in its record.
   */
  private handOutWhileMade(collection: AsyncCollection): void {
    const state = this.host.state();
    if (state.kind !== 'closing' || state.round.collection !== collection || state.after.kind !== 'continue') return;
    const settlements = collection.round.settlements;
    this.handOut(collection, (id) => settlements.get(id)?.outcome === 'received');
  }

  /** Hands free slots in `open`'s round to the longest-waiting idle participants, but those `inVersion` keeps waiting. */
  private handOut(open: AsyncCollection, inVersion: (id: string) => boolean): void {
    const free = this.host.settings.concurrency - this.slots.size;
    if (free <= 0) return;
    // One with an update waiting for the next version trains again once it is in (at most one waits per participant).
    const held = new Set(this.pending.map((p) => p.record.id));
    const waiting = this.host.participants
      .eligible((id) => this.slots.has(id) || this.outOfVersion.has(id) || held.has(id) || inVersion(id))
      .sort((a, b) => (this.lastServed.get(a.id) ?? -Infinity) - (this.lastServed.get(b.id) ?? -Infinity));
    const model = this.host.model();
    const { clock, transport } = this.host.options;
    const round = open.round;
    for (const record of waiting.slice(0, free)) {
      const now = clock.now();
      const timeoutMs = this.host.slotTimeoutMs();
      const timer = clock.setTimer(timeoutMs, () => this.expire(record.id, round.round));
      this.slots.set(record.id, { round: round.round, baseVersion: model.version, startedAt: now, timer });
      this.lastServed.set(record.id, now);
      record.state = 'selected';
      record.progress = 0;
      record.declined = undefined;
      round.bytesOut += model.frame.byteLength;
      transport.sendRoundStart(record.id, {
        round: round.round,
        model: { version: model.version, weights: model.frame, frozenHash: model.frozenHash },
        config: round.fit,
        deadline: now + timeoutMs,
        mode: 'async',
      });
    }
    this.host.statusChanged();
  }

  /**
   * Under client-level DP each participant adds at most one update to a
   * version (its sensitivity is one clipped update): a second one waits for
   * the next version.
   */
  private contributedOnce(collection: AsyncCollection, record: ParticipantRecord): boolean {
    return (
      this.host.options.strategy.traits.participation === 'private' && collection.round.settlements.get(record.id)?.outcome === 'received'
    );
  }

  /** The version collecting now, if any. */
  private collecting(): AsyncCollection | undefined {
    const state = this.host.state();
    return state.kind === 'collecting' && state.round.collection === this.current ? this.current : undefined;
  }

  /**
   * The model version an update arriving now would be applied to: the open
   * version's base, or, while one is being aggregated, the version it makes.
   */
  private appliesTo(): number {
    const state = this.host.state();
    if (state.kind === 'closing') return state.round.baseVersion + 1;
    return this.collecting()?.appliesTo ?? this.host.model().version;
  }

  private expire(id: string, round: number): void {
    const slot = this.slots.get(id);
    if (!slot || slot.round !== round) return;
    const record = this.host.participants.get(id);
    if (record) {
      this.release(record);
      record.state = 'idle';
    } else {
      // Its record is gone (forgotten after its grace): so is its place in the hand-out order.
      this.slots.delete(id);
      this.lastServed.delete(id);
    }
    this.dispatch();
  }

  private release(record: ParticipantRecord): void {
    const slot = this.slots.get(record.id);
    if (slot) this.host.options.clock.clear(slot.timer);
    this.slots.delete(record.id);
    record.progress = undefined;
  }

  /** An unusable request: the participant is out of this version (it gets a slot again from the next). */
  private outOfTurn<T>(record: ParticipantRecord, refusal: Ack<T>): Ack<T> {
    this.release(record);
    this.outOfVersion.add(record.id);
    this.dispatch();
    return this.recordRefusal(record, refusal);
  }

  private recordRefusal<T>(record: ParticipantRecord, refusal: Ack<T>): Ack<T> {
    return this.collecting()?.refuse(record, refusal) ?? refusal;
  }
}
