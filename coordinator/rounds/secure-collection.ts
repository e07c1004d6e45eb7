import type { RoundAggregator } from '../../core/aggregation/strategy.ts';
import { ackError, ackOk, ErrorCode, type Ack } from '../../core/protocol/errors.ts';
import type { DeclineMessage, RoundStartMessage, SecAggAccepted, UpdateAccepted, UpdateMessage } from '../../core/protocol/messages.ts';
import type { SecAggRoundStats, SecureAggregationSettings } from '../../core/protocol/status.ts';
import { wordBitsOf } from '../../core/secagg/config.ts';
import { packedBytes } from '../../core/secagg/word-packing.ts';
import type { RandomRotation } from '../../core/math/hadamard.ts';
import { rotatedLengthFor } from '../../core/compression/update-codec.ts';
import { secureInputsRotated, skellamRotation, unrotateSum } from '../../core/privacy/skellam-rotation.ts';
import {
  settleDecline,
  type Collection,
  type CollectionHost,
  type CollectionMethod,
  type Delivered,
  type Interruption,
  type SecAggInput,
} from './collection.ts';
import type { RoundBasis } from './open-round.ts';
import { markOut, type ParticipantRecord } from './participants.ts';
import { secAggConfigFor, SecureRound, type SecAggStep, type SecureRoundHost, type SecureRoundOutcome } from './secure-round.ts';

/**
 * Rounds with secure aggregation. Each SecAgg step has its own deadline; the
 * round's timer is only a safety net behind them.
 */
export function secureCollection(secure: SecureAggregationSettings, roundTimeoutMs: number): CollectionMethod {
  return {
    deadlineMs: () => roundTimeoutMs + 3 * secure.stepTimeoutMs + 1000,
    create: (host, round, selected) => new SecureCollection(host, round, selected, secure),
  };
}

/**
 * Collection through the SecAgg exchange (secure-round.ts): participants send
 * masked inputs instead of updates, and at close the aggregator gets only the
 * decoded sum of the contributors' inputs; plain updates are refused.
 */
class SecureCollection implements Collection {
  private readonly secure: SecureRound;
  /** Skellam and int4 rounds: the round's rotation, undone once on the decoded sum. */
  private readonly rotation: RandomRotation | undefined;
  private outcome: SecureRoundOutcome | undefined;

  constructor(
    private readonly host: CollectionHost,
    private readonly round: RoundBasis,
    selected: readonly string[],
    settings: SecureAggregationSettings,
  ) {
    const length = host.model.updateLength;
    const { privacy } = round.fit;
    // Skellam and int4 rounds are summed in the rotated basis (core/privacy/skellam-rotation.ts): the secure vector is the rotation's padded length.
    const rotated = secureInputsRotated({ rotated: settings.rotated }, privacy);
    const config = secAggConfigFor(round.round, selected.length, rotated ? rotatedLengthFor(length) : length, settings);
    this.rotation = rotated ? skellamRotation(config.roundSeed, length) : undefined;
    this.secure = new SecureRound(
      config,
      selected,
      this.secureHost(),
      { stepMs: settings.stepTimeoutMs, maskedMs: host.settings.roundTimeoutMs },
      privacy,
      this.rotation?.block,
      // On a cluster each node's cohort is a sum the coordinator sees: never one of fewer than k.
      settings.minCohort,
    );
  }

  roundStart(id: string, message: RoundStartMessage): RoundStartMessage {
    return { ...message, secagg: this.secure.roundInfo(id) };
  }

  started(): void {
    // A secure round that selected too few aborts by itself.
  }

  submitUpdate(record: ParticipantRecord, _message: UpdateMessage): Ack<UpdateAccepted> {
    this.secure.exclude(record.id);
    return ackError(
      ErrorCode.NotSelected,
      `round ${this.round.round} uses secure aggregation: plain updates are refused (send secagg:masked)`,
    );
  }

  async submitSecAgg(record: ParticipantRecord, step: SecAggStep, message: SecAggInput): Promise<Ack<SecAggAccepted>> {
    const result = await this.secure.submit(record.id, step, message);
    // The masked vector is what replaces the update on the wire: count its bytes (b-bit words, packed) as the round's input.
    if (result.ok && step === 'masked') {
      const { config } = this.secure;
      this.round.bytesIn += packedBytes(config.vectorLength, wordBitsOf(config));
    }
    return result;
  }

  decline(record: ParticipantRecord, message: DeclineMessage): Ack<{ readonly round: number }> {
    const open = this.round;
    if (open.settlements.get(record.id)?.outcome === 'received') {
      // Its masked input is in the sum, so it stays a contributor; the round just stops waiting for its unmasking answer.
      this.secure.leave(record.id);
      return ackOk({ round: open.round });
    }
    if (open.settlements.has(record.id)) return ackError(ErrorCode.NotSelected, `no longer part of round ${open.round} (${record.state})`);
    const result = settleDecline(this.host, open, record, message.reason);
    this.secure.leave(record.id);
    return result;
  }

  left(id: string): void {
    this.secure.leave(id);
  }

  exclude(record: ParticipantRecord): void {
    this.secure.exclude(record.id);
  }

  interrupt(cause: Interruption): void {
    // Nothing can be decoded before the unmasking step: the round aborts, and closes when the abort is done.
    this.secure.abort(cause.kind === 'deadline' ? 'the round deadline passed' : cause.reason);
  }

  abandon(reason: string): void {
    this.secure.abort(reason);
  }

  deliver(aggregator: RoundAggregator): Delivered {
    const outcome = this.outcome;
    if (!outcome?.ok) return { ok: false, reason: outcome?.reason ?? 'secure aggregation did not finish', contributors: [] };
    if (!aggregator.addSum) throw new Error(`strategy ${this.host.options.strategy.name} cannot aggregate a secure sum`);
    // The decoded sum of the contributors' clipped (and, with distributed DP, noised) updates; each counts once.
    aggregator.addSum(outcome.result.sum, outcome.contributors.length);
    for (const id of outcome.contributors) {
      const p = this.host.participant(id);
      if (p) p.roundsContributed++;
    }
    return { ok: true, contributors: outcome.contributors };
  }

  stats(): SecAggRoundStats {
    return this.secure.stats;
  }

  settled(): Promise<void> {
    return this.secure.settled();
  }

  /** A rotated round's sum rotated back once, before anything reads it (the range checks ran on the rotated sum, where they hold). */
  private unrotated(outcome: SecureRoundOutcome): SecureRoundOutcome {
    if (!outcome.ok || this.rotation === undefined) return outcome;
    return { ...outcome, result: unrotateSum(outcome.result, this.rotation) };
  }

  /** How the SecureRound reaches participants and reports back to the open round. */
  private secureHost(): SecureRoundHost {
    const { host, round } = this;
    const observer = host.options.secaggObserver;
    return {
      clock: host.clock,
      send: (participantId, out) => {
        if (!host.options.transport.sendSecAgg) throw new Error('this transport cannot carry secure aggregation');
        host.options.transport.sendSecAgg(participantId, out);
      },
      out: (participantId, why) => {
        const record = host.participant(participantId);
        if (!host.collecting(round) || !record || round.settlements.has(participantId)) return;
        if (why === 'timeout') host.settle(round, participantId, 'dropped', 'missed a secure aggregation step deadline');
        else
          host.settle(
            round,
            participantId,
            'rejected',
            `${ErrorCode.SecAggRejected}: excluded for a refused secure aggregation message`,
            undefined,
            ErrorCode.SecAggRejected,
          );
        markOut(record);
        host.statusChanged();
      },
      accepted: (participantId, step) => {
        const record = host.participant(participantId);
        if (!host.collecting(round) || !record) return;
        if (step === 'masked') {
          record.state = 'uploaded';
          record.progress = undefined;
          record.lastLatencyMs = host.clock.now() - round.startedAt;
          // Settled: its update is in the sum from now on, so a later disconnect or exclusion at
          // unmasking must not relabel it. Only an abort takes it out (round-records.ts).
          host.settle(round, participantId, 'received');
        }
        host.statusChanged();
      },
      observeMasked: observer?.masked ? (participantId, masked) => observer.masked?.(round.round, participantId, masked) : undefined,
      done: (decoded) => {
        if (!host.collecting(round)) return;
        const outcome = this.unrotated(decoded);
        this.outcome = outcome;
        if (outcome.ok) observer?.finished?.(round.round, outcome.result, outcome.contributors);
        host.closeSoon(round);
      },
    };
  }
}
