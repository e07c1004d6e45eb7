import type { RoundStartMessage } from '../../core/protocol/messages.ts';
import { AsyncCollection } from '../rounds/async-collection.ts';
import type { Clock } from '../rounds/clock.ts';
import type { OpenRound } from '../rounds/collection.ts';
import type { ParticipantRecord } from '../rounds/participants.ts';
import { resettle, type RemoteRounds } from '../rounds/remote-rounds.ts';
import { parseGeneration, type AsyncEventServer, type AsyncVersionAnnouncement } from './async-events.ts';
import type { AsyncNode } from './async-node.ts';
import type { BufferSeats, Generation, Seat } from './async-seats.ts';
import type { TrainingSlots } from './async-slots.ts';
import type { ClusterEventServer } from './cluster-events.ts';
import type { ClusterNode } from './cluster-node.ts';
import type { LeaderRounds } from './leader-rounds.ts';
import type { PartialExchange } from './partial-exchange.ts';
import { gatherPartials } from './partial-requests.ts';

/**
 * A node silent this long has its slots, queue places and waiting tickets
 * purged. Longer than the directory's window: a node slowed by load must
 * not lose its slots (the federation would then hand out more than C), and
 * what a live node loses all the same it restores at its next claim or grant.
 */
export const ASYNC_NODE_GONE_MS = 10_000;

/** Tries to close a version's buffer in Redis before the version is made of nothing. */
const CLOSE_TRIES = 2;

/** The version the leader has open: its generation and the engine's open round. */
interface OpenGeneration {
  readonly announcement: AsyncVersionAnnouncement;
  readonly open: OpenRound;
}

/**
 * Async mode on a cluster, the leader's side (docs/async.md "Cluster mode"):
 * the engine's RemoteRounds hook. Each model version the engine opens
 * becomes a buffer generation in Redis (fenced by the leader's term) and is
 * announced to every node, whose async intake (async-node.ts, this node's
 * too) hands its model out and claims seats for the updates it takes in.
 * When a node takes seat K the version closes; the leader closes the
 * generation in Redis first (no seat after that), then adds its own node's
 * partial and asks the others for theirs (partial-requests.ts), each checked
 * against the seats its node took. The engine's pool hands out no slots
 * (`handsOutAsyncSlots`): every node's intake does, federation-wide.
 */
export class AsyncLeaderRounds implements RemoteRounds {
  readonly handsOutAsyncSlots = true;
  private io: (ClusterEventServer & AsyncEventServer) | undefined;
  private current: OpenGeneration | undefined;

  constructor(
    private readonly rounds: LeaderRounds,
    private readonly node: ClusterNode,
    private readonly seats: BufferSeats,
    private readonly slots: TrainingSlots,
    private readonly exchange: PartialExchange,
    private readonly own: () => AsyncNode | undefined,
    private readonly ownCandidates: () => readonly ParticipantRecord[],
    private readonly clock: Clock,
    private readonly log: (line: string) => void,
    /** K: seats per generation. */
    private readonly bufferSize: number,
  ) {}

  attach(io: ClusterEventServer & AsyncEventServer, candidatesChanged: () => void, engine: Parameters<LeaderRounds['attach']>[2]): void {
    this.io = io;
    this.rounds.attach(io, candidatesChanged, engine);
    io.on('cluster:async-full', (value: unknown) => {
      const generation = parseGeneration(value);
      if (generation) this.filled(generation);
    });
  }

  candidates(): readonly ParticipantRecord[] {
    return this.rounds.candidates();
  }

  /**
   * The keys the sync rounds' selections learnt. Async slots are not selections, so another node's participant has
   * none here and its versions add nothing to its delivery record (this node's own participants' do).
   */
  deliveryKey(id: string): string | undefined {
    return this.rounds.deliveryKey(id);
  }

  /** The directory (the other nodes' participants), dead nodes' slots freed, and the open version announced again for a node that missed it. */
  async refresh(): Promise<void> {
    await this.rounds.refresh();
    if (!this.node.isLeader) return;
    const live = await this.liveNodes();
    if (live.includes(this.node.nodeId)) {
      const [slots, tickets] = await Promise.all([this.slots.purge(live), this.seats.purge(live)]);
      if (slots + tickets > 0)
        this.log(
          `cluster: async: purged ${slots} slots or queue places and ${tickets} waiting updates of nodes silent for ${ASYNC_NODE_GONE_MS} ms`,
        );
    }
    const current = this.current;
    if (!current) return;
    this.io?.serverSideEmit('cluster:async-version', current.announcement);
    // The node that took seat K tells the leader once, fire-and-forget: a lost notice must not leave a full buffer open.
    const generation = { term: current.announcement.term, round: current.announcement.round };
    if ((await this.seats.taken(generation)) >= this.bufferSize) this.filled(generation);
  }

  opened(open: OpenRound, _chosen: readonly ParticipantRecord[], message: RoundStartMessage): void {
    const term = this.node.lease.term;
    if (term === undefined) return;
    const announcement: AsyncVersionAnnouncement = {
      term,
      round: open.round,
      modelVersion: message.model.version,
      config: message.config,
      claimedExamples: [...this.ownCandidates(), ...this.rounds.candidates()].map((p) => p.info.numExamples),
    };
    this.current = { announcement, open };
    Promise.all([this.seats.open(announcement, announcement.modelVersion), this.slots.run()]).then(
      () => {
        this.io?.serverSideEmit('cluster:async-version', announcement);
        void this.own()?.versionOpened(announcement);
      },
      (error: Error) => this.log(`cluster: version ${open.round} could not open its buffer: ${error.message}`),
    );
  }

  /** The leader's engine finished the federation: no node hands out a slot after this (the leader that resumes it opens them again). */
  async finished(): Promise<void> {
    this.current = undefined;
    await this.slots.finish();
  }

  /** Some node took seat K: the version closes (its collection ends; the engine calls closing). */
  filled(generation: Generation): void {
    const current = this.current;
    if (!current || current.announcement.term !== generation.term || current.announcement.round !== generation.round) return;
    current.open.collection.interrupt({ kind: 'stop', reason: `its buffer of ${generation.round} is full` });
  }

  async closing(open: OpenRound): Promise<void> {
    const current = this.current;
    if (!current || current.open !== open || !this.io) return;
    this.current = undefined;
    const { term, round } = current.announcement;
    const generation = { term, round };
    // No seat once the partials are gathered: a claim after this finds the generation closed and waits for the next.
    if (!(await this.closeBuffer(generation))) {
      // Still open, it may seat more updates: none is gathered, and its seats stay (the next version's opening closes it,
      // the TTL removes them) rather than let new claims take fresh seats in a generation no version will read.
      this.log(`cluster: version ${round}: its buffer could not be closed: it is made of nothing, its updates are lost`);
      return;
    }
    let seated: Seat[] = [];
    let seatsKnown = true;
    try {
      seated = await this.seats.seated(generation);
    } catch (error) {
      seatsKnown = false;
      this.log(`cluster: version ${round}: could not read its seats: ${(error as Error).message}; it is made of nothing`);
    }
    const seatsOf = (node: string) => seated.filter((seat) => seat.node === node);
    const inSum: string[] = [];
    /** Why a node's partial does not match the seats it took, or undefined when it does. */
    const mismatch = (node: string, count: number, contributors: readonly string[]): string | undefined => {
      const left = seatsOf(node).map((seat) => seat.participantId);
      for (const id of contributors) {
        const at = left.indexOf(id);
        if (at < 0) return `it names ${id}, who took no seat on node ${node}`;
        left.splice(at, 1);
      }
      if (count !== contributors.length) return `it holds ${count} updates but names ${contributors.length} contributors`;
      return undefined;
    };
    const self = this.node.nodeId;
    const mine = this.own()?.partialOf(generation);
    const addPartial = open.aggregator.addPartial;
    if (mine && addPartial) {
      const wrong = mismatch(self, mine.partial.count, mine.contributors);
      if (wrong === undefined) {
        addPartial.call(open.aggregator, mine.partial);
        inSum.push(...mine.contributors);
        open.bytesIn += mine.bytesIn;
      } else this.log(`cluster: version ${round}: this node's partial is refused: ${wrong}`);
    }
    // Seats unknown: every live node is asked, so each lets go of its part (refused below, as no seat vouches for it).
    const members = (seatsKnown ? [...new Set(seated.map((seat) => seat.node))] : await this.liveNodes().catch(() => [])).filter(
      (node) => node !== self,
    );
    if (members.length > 0) {
      const gathered = await gatherPartials({
        io: this.io,
        exchange: this.exchange,
        request: generation,
        members,
        length: open.decoder.aggregateLength,
        aggregator: open.aggregator,
        log: this.log,
        check: (node, partial, reply) => {
          if (!reply?.stored) return 'its node did not acknowledge it, so whose updates it holds is unknown';
          const wrong = mismatch(node, partial.count, reply.contributors);
          if (wrong === undefined) inSum.push(...reply.contributors);
          return wrong;
        },
      });
      open.bytesIn += gathered.bytesIn;
    }
    // The models every node sent while this version collected, as one process counts its hand-outs; a statistic only.
    open.bytesOut += await this.seats.takeSent(generation.term).catch((error: Error) => {
      this.log(`cluster: version ${round}: could not read the models sent for it (its bytes out count none): ${error.message}`);
      return 0;
    });
    // The version's record: every seated participant, received when its update is in the sum, with its staleness.
    const now = this.clock.now();
    const unmatched = [...inSum];
    for (const seat of seated) {
      open.selected.add(seat.participantId);
      const at = unmatched.indexOf(seat.participantId);
      if (at >= 0) {
        unmatched.splice(at, 1);
        resettle(open, seat.participantId, now, { outcome: 'received' });
        if (open.collection instanceof AsyncCollection) open.collection.countElsewhere(seat.staleness);
      } else if (open.settlements.get(seat.participantId)?.outcome !== 'received')
        resettle(open, seat.participantId, now, {
          outcome: 'dropped',
          reason: `its node ${seat.node}'s partial did not reach the leader (or did not hold it): its update is lost`,
        });
    }
    await this.seats.discard(generation).catch(() => undefined); // tidying: the TTL removes them anyway
  }

  /** Closes the generation in Redis, trying again once: false when it may still be open (or the term is over). */
  private async closeBuffer(generation: Generation): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.seats.close(generation);
        return true;
      } catch (error) {
        this.log(`cluster: version ${generation.round}: could not close its buffer (try ${attempt}): ${(error as Error).message}`);
        if (attempt >= CLOSE_TRIES) return false;
      }
    }
  }

  /** The nodes heard from within ASYNC_NODE_GONE_MS, on Redis's clock. */
  /** Read at the moment they are needed: the registry's listing on the leader misses a node that started since its last heartbeat. */
  private liveNodes(): Promise<string[]> {
    return this.node.liveNodes(ASYNC_NODE_GONE_MS);
  }
}
