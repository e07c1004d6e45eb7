import { stalenessRefusal, stalenessWeighted, StalenessTally } from '../../core/aggregation/staleness.ts';
import type { RoundAggregator } from '../../core/aggregation/strategy.ts';
import { ackError, ackOk, ErrorCode, ProtocolError, type Ack } from '../../core/protocol/errors.ts';
import type { RoundStartMessage, SecAggAccepted, UpdateAccepted } from '../../core/protocol/messages.ts';
import type { AsyncSettings, StalenessStats } from '../../core/protocol/status.ts';
import type { Collection, CollectionHost, Delivered, Interruption } from './collection.ts';
import type { RoundBasis } from './open-round.ts';
import type { ParticipantRecord } from './participants.ts';

/** An update the pool took in: decoded and checked for its frame, waiting for (or going into) a version's buffer. */
export interface BufferedUpdate {
  readonly participantId: string;
  readonly baseVersion: number;
  readonly numExamples: number;
  readonly update: Float32Array;
  /** l2Norm(update), computed while decoding it (ClientResult.norm). */
  readonly norm: number;
  readonly bytes: number;
  /** Local training time, for the participant's latency. */
  readonly latencyMs: number;
}

/** What a version's collection needs from the pool that outlives it (async-pool.ts). */
export interface AsyncPoolLink {
  /** The version opened: the pool hands it the updates that arrived meanwhile, then fills free training slots. */
  opened(collection: AsyncCollection): void;
  /** The version stops taking updates (it closes, or is abandoned): later ones wait for the next. */
  closed(collection: AsyncCollection): void;
  /** A participant's request was unusable: it gives its slot back. */
  exclude(record: ParticipantRecord): void;
}

/**
 * One model version in async mode (docs/async.md): its buffer. The pool
 * (async-pool.ts) routes every accepted update here while the version
 * collects; each goes to the strategy's aggregator at once, scaled by its
 * staleness weight (core/aggregation/staleness.ts), and the K-th closes the
 * version. Participants are not selected for a version: `selected` lists who
 * sent it something, so its record names its contributors and refusals.
 */
export class AsyncCollection implements Collection {
  private readonly tally = new StalenessTally();

  constructor(
    private readonly host: CollectionHost,
    readonly round: RoundBasis,
    private readonly settings: AsyncSettings,
    private readonly pool: AsyncPoolLink,
  ) {}

  /** Buffered updates so far. */
  get count(): number {
    return this.tally.count;
  }

  /** The version this buffer's aggregate is applied to: its staleness counts from here. */
  get appliesTo(): number {
    return this.round.baseVersion;
  }

  /**
   * Adds an update to the buffer, or refuses it (too stale, or the strategy's
   * checks, e.g. the outlier bound). The K-th accepted update closes the version.
   */
  accept(record: ParticipantRecord, buffered: BufferedUpdate): Ack<UpdateAccepted> {
    const { host, round: open } = this;
    this.round.selected.add(record.id);
    // The pool checked against the newest version when the update arrived; a held update may have aged since.
    const tooStale = stalenessRefusal(buffered.baseVersion, open.baseVersion, this.settings.maxStaleness);
    if (tooStale !== undefined) return this.refuse(record, ackError<UpdateAccepted>(ErrorCode.UpdateTooStale, tooStale));
    const staleness = open.baseVersion - buffered.baseVersion;
    try {
      open.aggregator.add(
        stalenessWeighted(
          { participantId: record.id, numExamples: buffered.numExamples, update: buffered.update, norm: buffered.norm },
          staleness,
          this.settings.stalenessExponent,
        ),
      );
    } catch (error) {
      if (error instanceof ProtocolError) return this.refuse(record, ackError(error.code, error.message));
      throw error;
    }
    this.tally.add(staleness);
    open.bytesIn += buffered.bytes;
    const norm = host.normsWithheld() === undefined ? buffered.norm : undefined;
    host.settle(open, record.id, 'received', undefined, norm);
    if (norm !== undefined) record.lastUpdateNorm = norm;
    record.roundsContributed++;
    record.lastLatencyMs = buffered.latencyMs;
    host.statusChanged();
    if (this.tally.count >= this.settings.bufferSize) this.host.closeSoon(open);
    return ackOk({ round: open.round, received: this.tally.count });
  }

  /** A refusal recorded in this version (its timeline and rejection codes). */
  refuse<T>(record: ParticipantRecord, refusal: Ack<T>): Ack<T> {
    if (refusal.ok) return refusal;
    this.round.selected.add(record.id);
    const { code, message } = refusal.error;
    const reason = this.host.normsWithheld() === undefined ? `${code}: ${message}` : code;
    this.host.settle(this.round, record.id, 'rejected', reason, undefined, code);
    return refusal;
  }

  /** An update of this version taken in by another node (a cluster's buffer, coordinator/cluster/async-leader.ts): its staleness in the record. */
  countElsewhere(staleness: number): void {
    this.tally.add(staleness);
  }

  staleness(): StalenessStats | undefined {
    return this.tally.summary();
  }

  roundStart(_id: string, message: RoundStartMessage): RoundStartMessage {
    return message;
  }

  started(): void {
    this.pool.opened(this);
  }

  submitUpdate(): Ack<UpdateAccepted> {
    // In async mode updates reach the pool (intake.ts), which knows each participant's training slot.
    return ackError(ErrorCode.NotSelected, 'in async mode updates go to the training pool');
  }

  submitSecAgg(): Promise<Ack<SecAggAccepted>> {
    return Promise.resolve(ackError(ErrorCode.WrongRound, 'async mode has no secure aggregation'));
  }

  decline(): Ack<{ readonly round: number }> {
    return ackOk({ round: this.round.round });
  }

  left(): void {}

  exclude(record: ParticipantRecord): void {
    this.pool.exclude(record);
  }

  interrupt(cause: Interruption): void {
    // A version has no deadline (participants hold slots with their own); a stop closes it with what it has.
    if (cause.kind === 'deadline') return;
    this.pool.closed(this);
    this.host.closeNow(this.round);
  }

  abandon(): void {
    this.pool.closed(this);
  }

  deliver(_aggregator: RoundAggregator): Delivered {
    // Each accepted update went to the aggregator on arrival; from here updates wait for the next version.
    this.pool.closed(this);
    return { ok: true };
  }

  stats(): undefined {
    return undefined;
  }

  settled(): Promise<void> {
    return Promise.resolve();
  }
}
