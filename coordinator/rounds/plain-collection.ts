import type { RoundAggregator } from '../../core/aggregation/strategy.ts';
import { ackError, ackOk, ErrorCode, ProtocolError, type Ack } from '../../core/protocol/errors.ts';
import type { DeclineMessage, RoundStartMessage, SecAggAccepted, UpdateAccepted, UpdateMessage } from '../../core/protocol/messages.ts';
import type { DecodedUpdate } from '../../core/compression/update-decode.ts';
import {
  settleDecline,
  type Collection,
  type CollectionHost,
  type CollectionMethod,
  type Delivered,
  type Interruption,
} from './collection.ts';
import { unsettled, type RoundBasis } from './open-round.ts';
import type { RemoteSettlement } from './collection.ts';
import { markOut, type ParticipantRecord } from './participants.ts';
import { quorumMet } from './quorum.ts';

/** Rounds whose participants send their updates in the clear: the adaptive (or fixed) deadline. */
export const plainCollection: CollectionMethod = {
  deadlineMs: (adaptiveMs) => adaptiveMs,
  create: (host, round) => new PlainCollection(host, round),
};

/**
 * Intake of plain updates: each is decoded, checked and added to the
 * aggregator as it arrives; the round closes once every selected participant
 * answered, dropped out or was rejected, or the quorum rule (quorum.ts) says
 * the rest need not be waited for.
 */
class PlainCollection implements Collection {
  /** Updates accepted so far (the acknowledgement reports it); the round's tallies come from its settlements. */
  private received = 0;
  /** Selected participants with a record of never delivering: records change only when a round closes, so they are read once. */
  private neverDeliverers: readonly string[] | undefined;

  constructor(
    private readonly host: CollectionHost,
    private readonly round: RoundBasis,
  ) {}

  roundStart(_id: string, message: RoundStartMessage): RoundStartMessage {
    return message;
  }

  started(): void {
    // Sampling may select nobody; such a round closes at once.
    this.closeIfSettled();
  }

  submitUpdate(record: ParticipantRecord, message: UpdateMessage): Ack<UpdateAccepted> {
    const { host, round: open } = this;
    if (open.settlements.has(record.id)) {
      return record.state === 'uploaded'
        ? ackError(ErrorCode.DuplicateUpdate, `an update for round ${open.round} was already received`)
        : ackError(ErrorCode.NotSelected, `no longer part of round ${open.round} (${record.state})`);
    }
    if (message.baseVersion !== open.baseVersion) {
      return this.excludeFromRound(
        record,
        ackError(
          ErrorCode.StaleModel,
          `update trained from model ${message.baseVersion}, round ${open.round} uses model ${open.baseVersion}`,
        ),
      );
    }
    let decoded: DecodedUpdate;
    try {
      decoded = open.decoder.decode(message.update);
    } catch (error) {
      if (error instanceof ProtocolError) return this.excludeFromRound(record, ackError(error.code, error.message));
      throw error;
    }
    try {
      open.aggregator.add({ participantId: record.id, numExamples: message.numExamples, update: decoded.update, norm: decoded.norm });
    } catch (error) {
      if (error instanceof ProtocolError) return this.excludeFromRound(record, ackError(error.code, error.message));
      throw error;
    }
    this.received++;
    open.bytesIn += message.update.byteLength;
    const norm = host.normsWithheld() === undefined ? decoded.norm : undefined;
    host.settle(open, record.id, 'received', undefined, norm);
    if (norm !== undefined) record.lastUpdateNorm = norm;
    record.state = 'uploaded';
    record.progress = undefined;
    record.roundsContributed++;
    record.lastLatencyMs = host.clock.now() - open.startedAt;
    host.recordLatency(record.lastLatencyMs);
    if (message.epsilon !== undefined) record.epsilon = message.epsilon;
    const received = this.received;
    host.statusChanged();
    this.closeIfSettled();
    return ackOk({ round: message.round, received });
  }

  submitSecAgg(): Promise<Ack<SecAggAccepted>> {
    return Promise.resolve(
      ackError(ErrorCode.WrongRound, `secure aggregation message for round ${this.round.round} refused: no such round is open`),
    );
  }

  decline(record: ParticipantRecord, message: DeclineMessage): Ack<{ readonly round: number }> {
    const open = this.round;
    if (open.settlements.has(record.id)) return ackError(ErrorCode.NotSelected, `no longer part of round ${open.round} (${record.state})`);
    const result = settleDecline(this.host, open, record, message.reason);
    this.closeIfSettled();
    return result;
  }

  left(_id: string, wasWaiting: boolean): void {
    if (wasWaiting) this.closeIfSettled();
  }

  exclude(record: ParticipantRecord): void {
    if (this.round.settlements.has(record.id)) return;
    this.excludeFromRound(record, ackOk(undefined));
  }

  interrupt(cause: Interruption): void {
    this.dropUnsettled(cause.kind === 'deadline' ? 'missed the deadline' : cause.reason);
    this.host.closeNow(this.round);
  }

  abandon(): void {}

  deliver(_aggregator: RoundAggregator): Delivered {
    // Each accepted update went to the aggregator on arrival.
    return { ok: true };
  }

  stats(): undefined {
    return undefined;
  }

  settled(): Promise<void> {
    return Promise.resolve();
  }

  remoteSettled(id: string, settlement: RemoteSettlement): void {
    const open = this.round;
    if (!this.host.collecting(open) || !open.selected.has(id) || open.settlements.has(id)) return;
    this.host.settle(open, id, settlement.outcome, settlement.reason, settlement.norm, settlement.code, settlement.nodeFault);
    if (settlement.outcome === 'received') this.received++;
    this.host.statusChanged();
    this.closeIfSettled();
  }

  /** A selected participant whose update is unusable is out of this round, so the round need not wait for it. */
  private excludeFromRound<T>(record: ParticipantRecord, result: Ack<T>): Ack<T> {
    // Messages can quote an update's norm (UPDATE_TOO_LARGE): only the code where norms are withheld.
    const reason = result.ok
      ? 'its request could not be used'
      : this.host.normsWithheld() === undefined
        ? `${result.error.code}: ${result.error.message}`
        : result.error.code;
    this.host.settle(this.round, record.id, 'rejected', reason, undefined, result.ok ? 'BAD_PAYLOAD' : result.error.code);
    markOut(record);
    this.closeIfSettled();
    return result;
  }

  private closeIfSettled(): void {
    const open = this.round;
    if (!this.host.collecting(open)) return;
    const quorum = this.host.ownSelection ? undefined : this.quorumReason();
    if (quorum !== undefined) this.dropUnsettled(quorum);
    // Closing evaluates the model; the last sender's acknowledgement must not wait for that.
    if (open.settlements.size >= open.selected.size) this.host.closeSoon(open);
  }

  /** Why the round may close before everyone answered (quorum.ts), or undefined. */
  private quorumReason(): string | undefined {
    const open = this.round;
    return quorumMet({
      selected: open.selected.size,
      received: this.received,
      clientsPerRound: open.clientsPerRound,
      minUpdates: this.host.settings.minUpdates,
      // Settlements only ever hold selected participants (closeIfSettled relies on it too).
      outstanding: open.selected.size - open.settlements.size,
      outstandingNeverDelivered: () => {
        this.neverDeliverers ??= [...open.selected].filter((id) => this.host.neverDelivered(id));
        return this.neverDeliverers.filter((id) => !open.settlements.has(id)).length;
      },
    });
  }

  /** Everyone selected who has not answered is out of the round (deadline, stop, quorum). */
  private dropUnsettled(why: string): void {
    for (const id of unsettled(this.round)) {
      this.host.settle(this.round, id, 'dropped', why);
      const record = this.host.participant(id);
      if (record) markOut(record);
    }
  }
}
