import type { RoundStartMessage } from '../../core/protocol/messages.ts';
import type { Clock } from '../rounds/clock.ts';
import type { CollectionMethod, OpenRound } from '../rounds/collection.ts';
import type { ParticipantRecord, Participants } from '../rounds/participants.ts';
import { remoteRecord, resettle, type RemoteRounds } from '../rounds/remote-rounds.ts';
import { parseSettledReport, parseStoredNotice, type ClusterEventServer, type PartialReply, type RoundReply } from './cluster-events.ts';
import type { ClusterNode } from './cluster-node.ts';
import type { LeaderLease } from './lease.ts';
import type { PartialExchange } from './partial-exchange.ts';
import { formCohorts } from './cohort-selection.ts';
import { clusterSecureCollection } from './cluster-secure-collection.ts';
import { gatherPartials } from './partial-requests.ts';
import { DIRECTORY_LIVE_MS, type ParticipantDirectory } from './participant-directory.ts';
import { RemoteDeliveries } from './remote-deliveries.ts';
import { announceRound } from './round-announce.ts';

/** The distributed round the leader has open: its term, and which node holds each remote participant it selected. */
interface RemoteRound {
  readonly term: number;
  readonly open: OpenRound;
  readonly nodeOf: ReadonlyMap<string, string>;
  /** Members that stored their partial before the close (their notices): the close reads theirs without asking. */
  readonly stored: Map<string, PartialReply>;
}

/**
 * The leader's side of a round across nodes (docs/cluster.md): the engine's
 * RemoteRounds hook. Selection sees every live node's selectable
 * participants (the directory in Redis, read before each round and once a
 * second); the round open goes to the members as a model version with the
 * selection per node (`cluster:round`); members report how each of their
 * participants settled (`cluster:settled`: the leader's quorum and record
 * treat them like its own, and no update bytes cross the adapter); at close
 * the leader reads the members' partials (asking only those that had not
 * announced theirs as stored, `cluster:stored`) and adds them to its round
 * aggregator before it finishes. A member that does not start the round, or
 * whose partial is missing, malformed or does not match the contributors it
 * names, loses its participants' updates whole: they count as dropped, and
 * the engine's minUpdates rule then decides on the updates really combined.
 */
export class LeaderRounds implements RemoteRounds {
  private io: ClusterEventServer | undefined;
  private remote: readonly ParticipantRecord[] = [];
  private nodeOfCandidate = new Map<string, string>();
  private current: RemoteRound | undefined;
  /** Other nodes' participants' delivery records, kept in the engine's (remote-deliveries.ts); set by attach. */
  private deliveries: RemoteDeliveries | undefined;
  /** The engine's clock, on which the round's deadline was set; set by attach. */
  private clock: Pick<Clock, 'now'> | undefined;

  constructor(
    private readonly node: Pick<ClusterNode, 'isLeader' | 'status' | 'nodeId'> & { readonly lease: Pick<LeaderLease, 'term'> },
    private readonly directory: Pick<ParticipantDirectory, 'remoteCandidates'>,
    private readonly exchange: PartialExchange,
    private readonly log: (line: string) => void,
  ) {}

  /**
   * Starts listening to the members' reports; `candidatesChanged` tells the
   * engine a round may start now; `engine.participants` is the engine's
   * registry, whose delivery records hold other nodes' participants' too;
   * `engine.clock` the engine's, whose deadlines the announcements convert.
   */
  attach(
    io: ClusterEventServer,
    candidatesChanged: () => void,
    engine: { readonly participants: Participants; readonly clock: Pick<Clock, 'now'> },
  ): void {
    this.io = io;
    this.clock = engine.clock;
    this.deliveries = new RemoteDeliveries(engine.participants);
    this.candidatesChanged = candidatesChanged;
    io.on('cluster:settled', (value: unknown) => {
      const report = parseSettledReport(value);
      if (report === undefined) {
        this.log('cluster: a member sent a malformed settlement report; ignored');
        return;
      }
      const round = this.current;
      // Only the open round's participants, each from the node it was selected on.
      if (
        !round ||
        report.term !== round.term ||
        report.round !== round.open.round ||
        round.nodeOf.get(report.participantId) !== report.node
      )
        return;
      // The parser kept only the fields a member reports: whether a drop was its node's fault is the leader's to say.
      round.open.collection.remoteSettled?.(report.participantId, report);
    });
    io.on('cluster:stored', (value: unknown) => {
      const notice = parseStoredNotice(value);
      if (notice === undefined) {
        this.log('cluster: a member sent a malformed stored-partial notice; ignored');
        return;
      }
      const round = this.current;
      // A member sends it before its last settlement report (member-rounds.ts), so a close on that report finds it here.
      if (!round || notice.term !== round.term || notice.round !== round.open.round || ![...round.nodeOf.values()].includes(notice.node))
        return;
      round.stored.set(notice.node, notice);
    });
  }

  private candidatesChanged: () => void = () => {};

  /** The engine's time; only asked once attached (a round opens and closes, and candidates are listed, after attach). */
  private now(): number {
    if (this.clock === undefined) throw new Error('leader rounds used before attach');
    return this.clock.now();
  }

  candidates(): readonly ParticipantRecord[] {
    return this.remote;
  }

  deliveryKey(id: string): string | undefined {
    return this.deliveries?.deliveryKey(id);
  }

  /** Reads the live members' selectable participants from the directory (the leader only); tells the engine when they changed. */
  async refresh(): Promise<void> {
    if (!this.node.isLeader) {
      this.remote = [];
      return;
    }
    const nodes = this.node.status().nodes;
    this.dropDeadNodes(new Set(nodes.filter((n) => n.lastSeenMs <= DIRECTORY_LIVE_MS).map((n) => n.id)));
    const found = await this.directory.remoteCandidates(nodes);
    const before = this.remote.map((p) => p.id).join();
    this.remote = found.map((c) => remoteRecord(c.id, c.numExamples, c.deliveryKey));
    this.nodeOfCandidate = new Map(found.map((c) => [c.id, c.node]));
    this.deliveries?.listedNow(this.remote, this.now());
    if (this.remote.map((p) => p.id).join() !== before) this.candidatesChanged();
  }

  /** A node of the open round whose heartbeat stopped: its participants still waited for count as dropped, so the round need not wait out its deadline. */
  private dropDeadNodes(live: ReadonlySet<string>): void {
    const round = this.current;
    if (!round) return;
    for (const [id, node] of round.nodeOf)
      if (!live.has(node))
        round.open.collection.remoteSettled?.(id, {
          outcome: 'dropped',
          reason: `its node ${node} stopped answering (no heartbeat)`,
          nodeFault: true,
        });
  }

  formCohorts(
    sampled: readonly ParticipantRecord[],
    candidates: readonly ParticipantRecord[],
    rule: { readonly minCohort: number; readonly wanted: number },
  ): readonly ParticipantRecord[] {
    // The leader's own participants are not in the directory: they form its own cohort.
    return formCohorts(sampled, candidates, { ...rule, nodeOf: (id) => this.nodeOfCandidate.get(id) ?? this.node.nodeId });
  }

  secureCollection(own: CollectionMethod): CollectionMethod {
    return clusterSecureCollection(own, (id) => this.nodeOfCandidate.has(id));
  }

  opened(open: OpenRound, chosen: readonly ParticipantRecord[], message: RoundStartMessage): void {
    const nodeOf = new Map<string, string>();
    for (const p of chosen) {
      const node = this.nodeOfCandidate.get(p.id);
      if (node !== undefined) nodeOf.set(p.id, node);
    }
    this.deliveries?.selected(
      chosen.filter((p) => nodeOf.has(p.id)),
      this.now(),
    );
    const term = this.node.lease.term;
    const io = this.io;
    if (nodeOf.size === 0) return;
    if (term === undefined || io === undefined) {
      for (const id of nodeOf.keys())
        open.collection.remoteSettled?.(id, { outcome: 'dropped', reason: 'this node no longer leads', nodeFault: true });
      return;
    }
    this.current = { term, open, nodeOf, stored: new Map() };
    const selected: Record<string, string[]> = {};
    for (const [id, node] of nodeOf) selected[node] = [...(selected[node] ?? []), id];
    const announcement = {
      term,
      round: open.round,
      modelVersion: message.model.version,
      config: message.config,
      // The time left, not the leader's wall-clock deadline: members keep it on their own clocks (round-announce.ts heardRound).
      remainingMs: message.deadline - this.now(),
      selected,
      claimedExamples: chosen.map((p) => p.info.numExamples),
    };
    void announceRound(io, announcement, this.log).then((replies) => {
      for (const [node, ids] of Object.entries(selected)) {
        const reply = (replies ?? []).find((r: RoundReply | undefined) => r?.node === node);
        if (reply !== undefined && 'sent' in reply && typeof reply.sent === 'number') continue;
        const reason =
          reply !== undefined && 'refused' in reply && typeof reply.refused === 'string'
            ? reply.refused
            : `its node ${node} did not answer the round's start`;
        if (reply === undefined)
          this.log(`cluster: round ${open.round}: node ${node} did not answer; its selected participants count as dropped`);
        for (const id of ids) open.collection.remoteSettled?.(id, { outcome: 'dropped', reason, nodeFault: true });
      }
    });
  }

  async closing(open: OpenRound): Promise<void> {
    const round = this.current;
    if (!round || round.open !== open || !this.io) return;
    this.current = undefined;
    const members = [...new Set(round.nodeOf.values())];
    const inSum = new Set<string>();
    // The leader's combine time (bench/cluster.ts reads this line): from the close (a request to the members that had not
    // announced their partial as stored) to every partial added.
    const requested = performance.now();
    const { lost, bytesIn, steps } = await gatherPartials({
      io: this.io,
      exchange: this.exchange,
      request: { term: round.term, round: open.round },
      members,
      stored: round.stored,
      // int4 rounds sum in their rotated basis; asking the aggregator for a partial would record its round into a wrapper's reference twice.
      length: open.decoder.aggregateLength,
      aggregator: open.aggregator,
      log: this.log,
      check: (node, partial, reply) => {
        if (!reply?.stored) return 'its node did not acknowledge it, so whose updates it holds is unknown';
        const named = new Set(reply.contributors);
        if (named.size !== reply.contributors.length || reply.contributors.some((id) => round.nodeOf.get(id) !== node))
          return 'its node names contributors that were not selected on it';
        if (partial.count !== named.size) return `it holds ${partial.count} updates but its node names ${named.size} contributors`;
        for (const id of named) inSum.add(id);
        return undefined;
      },
    });
    this.log(
      `cluster: round ${open.round}: partials of ${members.length - lost.length} of ${members.length} member node(s) combined in ${(performance.now() - requested).toFixed(1)} ms` +
        ` (${steps.asked} asked at close, request ${steps.requestMs.toFixed(1)} ms, read ${steps.readMs.toFixed(1)} ms, add ${steps.addMs.toFixed(1)} ms)`,
    );
    // The round's record counts the uploads summed on every node, as one coordinator's counts its own.
    open.bytesIn += bytesIn;
    // The settlements say whose updates are really in the sum: the quorum rule (minUpdates) is decided on these.
    const now = this.now();
    for (const [id, node] of round.nodeOf) {
      const received = open.settlements.get(id)?.outcome === 'received';
      if (lost.includes(node)) {
        if (received || !open.settlements.has(id))
          resettle(open, id, now, {
            outcome: 'dropped',
            reason: `its node ${node}'s partial did not reach the leader: its update is lost`,
            nodeFault: true,
          });
      } else if (inSum.has(id) && !received) {
        resettle(open, id, now, { outcome: 'received', reason: 'its update reached its node after the leader stopped waiting' });
      } else if (!inSum.has(id) && received) {
        resettle(open, id, now, { outcome: 'dropped', reason: `its update is not in its node ${node}'s partial`, nodeFault: true });
      }
    }
  }
}
