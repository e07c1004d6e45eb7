import { DepartedParticipants } from '../rounds/participant-registry.ts';
import { MAX_DEPARTED_PARTICIPANTS, type ParticipantRecord, type Participants } from '../rounds/participants.ts';

/**
 * The leader's delivery records of other nodes' participants. They are kept
 * in the engine's own DeliveryRecord (selection.ts), under each participant's
 * delivery key (its credential, else its id), so one participant has one
 * record whatever node it trains on, and reliability-weighted selection and
 * the quorum's "never delivered" rule treat it like one of the leader's own.
 * This keeps the keys of the remote participants selected in the latest
 * round (the engine records the round at its close), and bounds the records
 * as one coordinator does (participants.ts forgetDeparted): a record keyed by
 * an id that has left every live node's directory for the participant grace
 * is forgotten (at most MAX_DEPARTED_PARTICIPANTS wait), while one keyed by a
 * credential stays. A selected participant is out of its node's directory
 * while it trains: it has not left, so it does not take a place among the
 * departed (a round selecting 1,000 would push out older records before their
 * grace); its grace starts when the next round's selection replaces its own.
 */
export class RemoteDeliveries {
  /** The latest round's selected participants of other nodes, by id: their delivery keys. */
  private selectedKeys = new Map<string, string>();
  /** Remote candidates whose record is keyed by their id, as last listed. */
  private listed = new Set<string>();
  private readonly departed: DepartedParticipants;

  constructor(private readonly participants: Participants) {
    this.departed = new DepartedParticipants(participants.graceMs, MAX_DEPARTED_PARTICIPANTS);
  }

  /** A round opened with these participants of other nodes: the previous round's that are not listed now have left since `now`. */
  selected(remote: readonly ParticipantRecord[], now: number): void {
    const previous = this.selectedKeys;
    this.selectedKeys = new Map(remote.map((p) => [p.id, p.deliveryKey]));
    for (const [id, key] of previous) if (key === id && !this.selectedKeys.has(id) && !this.listed.has(id)) this.departed.left(id, now);
  }

  deliveryKey(id: string): string | undefined {
    return this.selectedKeys.get(id);
  }

  /** The live nodes' selectable participants now: records keyed by an id gone longer than the grace are forgotten. */
  listedNow(candidates: readonly ParticipantRecord[], now: number): void {
    const next = new Set(candidates.filter((p) => p.deliveryKey === p.id).map((p) => p.id));
    for (const id of this.listed) if (!next.has(id) && !this.selectedKeys.has(id)) this.departed.left(id, now);
    for (const id of next) this.departed.returned(id);
    this.listed = next;
    // Selected ones are never among the departed (they were listed when selected); the leader's own are its registry's to forget.
    const keep = (id: string) => this.participants.get(id) !== undefined;
    for (const id of this.departed.expire(now, keep)) this.participants.deliveries.forget(id);
  }
}
