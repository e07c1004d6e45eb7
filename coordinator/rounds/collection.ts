import type { RoundAggregator } from '../../core/aggregation/strategy.ts';
import { ackOk, type Ack } from '../../core/protocol/errors.ts';
import type { DeclineMessage, RoundStartMessage, SecAggAccepted, UpdateAccepted, UpdateMessage } from '../../core/protocol/messages.ts';
import type { RoundParticipantOutcome, RoundSettings, SecAggRoundStats, StalenessStats } from '../../core/protocol/status.ts';
import type { PackedMaskedInputMessage } from '../../core/secagg/messages.ts';
import type { AdvertiseKeysMessage, MaskedInputMessage, ShareKeysMessage, UnmaskResponseMessage } from '../../core/secagg/protocol.ts';
import type { Clock } from './clock.ts';
import type { GlobalModel, RoundEngineOptions } from './engine-types.ts';
import type { RoundBasis } from './open-round.ts';
import type { ParticipantRecord } from './participants.ts';
import type { SecAggStep } from './secure-round.ts';

/** How a participant of another node settled there, as its node reports it. */
export interface RemoteSettlement {
  readonly outcome: RoundParticipantOutcome;
  readonly reason?: string;
  readonly norm?: number;
  readonly code?: string;
  /** Dropped because its node failed, not by its own doing (open-round.ts Settlement). */
  readonly nodeFault?: boolean;
}

/** The open round with the way it collects its input (picked once, when it opens). */
export interface OpenRound extends RoundBasis {
  readonly collection: Collection;
}

/**
 * How a round collects its input, after Flower's
 * `DefaultWorkflow(fit_workflow=SecAggPlusWorkflow())`: the engine opens and
 * closes rounds, selects, records and saves; a Collection takes the
 * participants' messages for one round, decides when everyone is out of the
 * waiting, and at close hands the aggregator what was collected. The engine
 * picks one per round (CollectionMethod) and never asks which it has.
 *
 * Plain collection (plain-collection.ts) adds each update to the aggregator
 * as it arrives; secure collection (secure-collection.ts) runs the SecAgg
 * exchange and adds only the decoded sum. Compressed or asynchronous
 * collection would plug in the same way: decode in `submitUpdate`, decide
 * readiness with `host.closeSoon`, and feed the aggregator in `deliver`.
 */
export interface Collection {
  /** round:start as participant `id` gets it (secure rounds add its SecAgg index and config). */
  roundStart(id: string, message: RoundStartMessage): RoundStartMessage;
  /** round:start went out to everyone selected (a round that selected nobody may close now). */
  started(): void;
  /** A selected participant's update (the engine checked that it joined, that this round is open, and that it was selected). */
  submitUpdate(record: ParticipantRecord, message: UpdateMessage): Ack<UpdateAccepted>;
  /** A selected participant's secure aggregation message (checked as for updates). Never throws. */
  submitSecAgg(record: ParticipantRecord, step: SecAggStep, message: SecAggInput): Promise<Ack<SecAggAccepted>>;
  /** A selected participant will not train this round. */
  decline(record: ParticipantRecord, message: DeclineMessage): Ack<{ readonly round: number }>;
  /** A selected participant's connection closed (the engine settled it as dropped if it had not answered: `wasWaiting`). */
  left(id: string, wasWaiting: boolean): void;
  /** A selected participant's request was unusable: it is out of the round. */
  exclude(record: ParticipantRecord): void;
  /** The deadline passed or the operator stopped: collection ends, and the round closes with what it has (or aborts). */
  interrupt(cause: Interruption): void;
  /** Shutdown: collection ends and the round is never closed. */
  abandon(reason: string): void;
  /** At close: hands the aggregator what was collected. */
  deliver(aggregator: RoundAggregator): Delivered;
  /** Secure aggregation figures for the round's record, where there are any. */
  stats(): SecAggRoundStats | undefined;
  /** Async mode: the staleness of the version's buffered updates, for its record. */
  staleness?(): StalenessStats | undefined;
  /** Resolves once the async work the collection has queued so far has run (engine.idle()). */
  settled(): Promise<void>;
  /** Plain rounds on a cluster's leader: a participant of another node settled there; its update, if any, comes in its node's partial (remote-rounds.ts). */
  remoteSettled?(id: string, settlement: RemoteSettlement): void;
}

/** Why a round stops collecting before everyone answered. */
export type Interruption = { readonly kind: 'deadline' } | { readonly kind: 'stop'; readonly reason: string };

/** A masked input arrives packed from the wire, or as words from an in-process participant (tests). */
export type SecAggInput = AdvertiseKeysMessage | ShareKeysMessage | MaskedInputMessage | PackedMaskedInputMessage | UnmaskResponseMessage;

/**
 * What a collection handed over at close. `contributors`: whose input is in
 * the aggregate when only the collection knows it (a decoded secure sum; empty
 * if it aborted); absent when each accepted update was added on arrival.
 */
export type Delivered =
  | { readonly ok: true; readonly contributors?: readonly string[] }
  | { readonly ok: false; readonly reason: string; readonly contributors: readonly string[] };

/** The engine's side of a collection: what it may read and do while its round is open. */
export interface CollectionHost {
  readonly clock: Clock;
  readonly options: RoundEngineOptions;
  readonly settings: RoundSettings;
  readonly model: GlobalModel;
  participant(id: string): ParticipantRecord | undefined;
  /** True while `round` is open and still collecting. */
  collecting(round: RoundBasis): boolean;
  /** Records how a selected participant's part ended (open-round.ts settle). */
  settle(
    round: RoundBasis,
    id: string,
    outcome: RoundParticipantOutcome,
    reason?: string,
    norm?: number,
    code?: string,
    nodeFault?: boolean,
  ): void;
  /** Everyone is out of the waiting: the round closes on a fresh stack, after the acknowledgements went out. */
  closeSoon(round: RoundBasis): void;
  /** The round closes now (deadline, stop). */
  closeNow(round: RoundBasis): void;
  statusChanged(): void;
  /** Why individual update norms are not shown, or undefined where they may be. */
  normsWithheld(): string | undefined;
  /** One participant's time from round start to its input, for the adaptive deadline. */
  recordLatency(ms: number): void;
  /** Whether the strategy selects its own participants (then the quorum does not apply). */
  readonly ownSelection: boolean;
  /** The participant's record shows selections and no delivery (quorum.ts). */
  neverDelivered(id: string): boolean;
}

/** How rounds of one kind collect: the round deadline it needs and a collection per round. */
export interface CollectionMethod {
  deadlineMs(adaptiveMs: number): number;
  create(host: CollectionHost, round: RoundBasis, selected: readonly string[]): Collection;
}

/** The part of declining every collection shares: the participant sits this round out. */
export function settleDecline(
  host: CollectionHost,
  round: RoundBasis,
  record: ParticipantRecord,
  reason: string,
): Ack<{ readonly round: number }> {
  host.settle(round, record.id, 'declined', reason);
  record.state = 'declined';
  record.declined = reason;
  record.progress = undefined;
  host.statusChanged();
  return ackOk({ round: round.round });
}
