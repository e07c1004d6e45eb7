import type { RoundAggregator } from '../../core/aggregation/strategy.ts';
import { ackError, ErrorCode, type Ack } from '../../core/protocol/errors.ts';
import type { DeclineMessage, RoundStartMessage, SecAggAccepted, UpdateAccepted, UpdateMessage } from '../../core/protocol/messages.ts';
import type { SecAggRoundStats } from '../../core/protocol/status.ts';
import type { Collection, CollectionHost, CollectionMethod, Delivered, Interruption, SecAggInput } from '../rounds/collection.ts';
import type { RoundBasis } from '../rounds/open-round.ts';
import type { ParticipantRecord } from '../rounds/participants.ts';
import type { RemoteSettlement } from '../rounds/collection.ts';
import type { SecAggStep } from '../rounds/secure-round.ts';

/**
 * Secure aggregation on a cluster's leader (docs/cluster.md): one secure sum
 * per node. The leader's own selected participants are its cohort, run by
 * the engine's secure collection (`local`, reused as it is); every other
 * node runs its own cohort and reports each participant's final outcome
 * once its sum is decoded (member-rounds.ts), and its sum arrives as the
 * node's partial at close. The round closes when the leader's cohort is done
 * and no other node's participant is still waited for.
 */
export function clusterSecureCollection(local: CollectionMethod, isRemote: (id: string) => boolean): CollectionMethod {
  return {
    deadlineMs: (adaptiveMs) => local.deadlineMs(adaptiveMs),
    create: (host, round, selected) => new ClusterSecureCollection(local, host, round, selected, isRemote),
  };
}

class ClusterSecureCollection implements Collection {
  /** The leader's own cohort; absent when none of its participants was selected. */
  private readonly own: Collection | undefined;
  private ownDone: boolean;
  /** The other nodes' selected participants. */
  private readonly remoteIds: ReadonlySet<string>;
  /** Those whose final outcome has not been reported yet. */
  private readonly waiting: Set<string>;

  constructor(
    local: CollectionMethod,
    private readonly host: CollectionHost,
    private readonly round: RoundBasis,
    selected: readonly string[],
    isRemote: (id: string) => boolean,
  ) {
    const ownIds = selected.filter((id) => !isRemote(id));
    this.remoteIds = new Set(selected.filter(isRemote));
    this.waiting = new Set(this.remoteIds);
    this.ownDone = ownIds.length === 0;
    // The own cohort's close (its sum decoded, or its abort) is one of the two things the round waits for.
    const ownHost: CollectionHost = Object.create(host, {
      closeSoon: { value: () => this.ownFinished() },
    }) as CollectionHost;
    this.own = ownIds.length === 0 ? undefined : local.create(ownHost, round, ownIds);
  }

  roundStart(id: string, message: RoundStartMessage): RoundStartMessage {
    return this.own && !this.remoteIds.has(id) ? this.own.roundStart(id, message) : message;
  }

  started(): void {
    this.own?.started();
    this.closeIfDone();
  }

  submitUpdate(record: ParticipantRecord, message: UpdateMessage): Ack<UpdateAccepted> {
    return this.own ? this.own.submitUpdate(record, message) : this.notInCohort();
  }

  submitSecAgg(record: ParticipantRecord, step: SecAggStep, message: SecAggInput): Promise<Ack<SecAggAccepted>> {
    return this.own ? this.own.submitSecAgg(record, step, message) : Promise.resolve(this.notInCohort());
  }

  decline(record: ParticipantRecord, message: DeclineMessage): Ack<{ readonly round: number }> {
    return this.own ? this.own.decline(record, message) : this.notInCohort();
  }

  left(id: string, wasWaiting: boolean): void {
    this.own?.left(id, wasWaiting);
  }

  exclude(record: ParticipantRecord): void {
    this.own?.exclude(record);
  }

  interrupt(cause: Interruption): void {
    const why = cause.kind === 'deadline' ? 'missed the deadline' : cause.reason;
    for (const id of this.waiting) this.host.settle(this.round, id, 'dropped', why);
    this.waiting.clear();
    // The own cohort closes the round once its abort is done; without one the round closes now.
    if (this.own) this.own.interrupt(cause);
    else this.host.closeNow(this.round);
  }

  abandon(reason: string): void {
    this.own?.abandon(reason);
  }

  deliver(aggregator: RoundAggregator): Delivered {
    const own = this.own?.deliver(aggregator);
    // The other nodes' sums were added by LeaderRounds.closing, whose settlements say whose updates they hold.
    const remote = [...this.round.settlements].filter(([id, s]) => s.outcome === 'received' && this.remoteIds.has(id)).map(([id]) => id);
    const ownContributors = own?.contributors ?? [];
    if (own && !own.ok && remote.length === 0) return own;
    return { ok: true, contributors: [...ownContributors, ...remote] };
  }

  stats(): SecAggRoundStats | undefined {
    return this.own?.stats();
  }

  settled(): Promise<void> {
    return this.own?.settled() ?? Promise.resolve();
  }

  remoteSettled(id: string, settlement: RemoteSettlement): void {
    if (!this.host.collecting(this.round) || !this.waiting.delete(id)) return;
    this.host.settle(this.round, id, settlement.outcome, settlement.reason, settlement.norm, settlement.code, settlement.nodeFault);
    this.host.statusChanged();
    this.closeIfDone();
  }

  private ownFinished(): void {
    this.ownDone = true;
    this.closeIfDone();
  }

  private closeIfDone(): void {
    if (this.ownDone && this.waiting.size === 0) this.host.closeSoon(this.round);
  }

  private notInCohort<T>(): Ack<T> {
    return ackError(ErrorCode.NotSelected, `not in this node's cohort of round ${this.round.round}`);
  }
}
