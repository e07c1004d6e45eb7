import type { Server as NetServer } from 'node:net';
import type { Server } from 'socket.io';
import type { Strategy } from '../../core/aggregation/strategy.ts';
import type { AsyncSettings, FederationStatus, RoundRecord } from '../../core/protocol/status.ts';
import type { RoundStartMessage } from '../../core/protocol/messages.ts';
import { SystemClock } from '../rounds/clock.ts';
import type { GlobalModel, ResumePoint, RoundEngine } from '../rounds/round-engine.ts';
import { makeModel } from '../rounds/engine-types.ts';
import type { ParticipantEngine } from '../socket/participant-events.ts';
import type { RemoteRounds } from '../rounds/remote-rounds.ts';
import { asyncEvents, parseVersionAnnouncement } from './async-events.ts';
import { AsyncLeaderRounds } from './async-leader.ts';
import { AsyncNode, routeToAsyncNode } from './async-node.ts';
import { BufferSeats } from './async-seats.ts';
import { TrainingSlots } from './async-slots.ts';
import type { ClusterEventServer } from './cluster-events.ts';
import { ClusterNode } from './cluster-node.ts';
import { LeaderRounds } from './leader-rounds.ts';
import { MemberRounds, routeToMemberRounds } from './member-rounds.ts';
import { ModelVersions } from './model-versions.ts';
import { PartialExchange } from './partial-exchange.ts';
import { answerPartialRequests, storeContribution } from './partial-requests.ts';
import { ParticipantDirectory } from './participant-directory.ts';
import { ClusterParticipantRows, ownParticipantRows } from './participant-rows.ts';
import { answerRoundAnnouncements } from './round-announce.ts';
import { FederationStore, type FederationHead, type StoredFederation } from './federation-store.ts';
import type { LeaseRole } from './lease.ts';
import { TrafficCounter } from './traffic.ts';

/** How often a node whose engine does not run reads the federation's head from Redis. */
const FOLLOW_INTERVAL_MS = 1_000;
/** How soon a leader whose take-up of the federation failed (Redis not answering yet) tries again. */
const TAKE_UP_RETRY_MS = 500;

/** Where a node's engine starts from: the federation in Redis. */
export interface ClusterResume {
  readonly resume: ResumePoint | undefined;
  readonly lastStartedRound: number;
  /** The engine's round records its resume's history goes on from (a follower catching up reads only the newer ones). */
  readonly historyFrom: number;
}

export interface ClusterWiring {
  readonly io: Server;
  readonly httpServer: NetServer;
  readonly engine: RoundEngine;
  /** Participants joined on this node. */
  readonly participants: () => number;
  /** `--manual-start`: the leader waits for the operator instead of starting rounds itself. */
  readonly manualStart: boolean;
  readonly statusChanged: () => void;
  /**
   * This node led, lost the lease, and another node led meanwhile: its
   * engine's state is stale and must not run again. The command line exits
   * so a supervisor restarts it as a fresh node (fail-stop, like
   * Kubernetes' leader election); by default the engine stays paused.
   */
  readonly onStale?: (reason: string) => void;
}

/**
 * A coordinator as one node of a cluster (`--redis`): the cluster node
 * (lease, registry, adapter clients) and the federation store in Redis.
 * Only the leader drives rounds: a node starts or resumes its engine when it
 * wins the lease and pauses it when it loses it; the leader's round numbers
 * and completed rounds go to Redis, fenced by its term, before anything
 * shows them, and a node that wins the lease takes the federation up from
 * Redis, not from any node's disk.
 */
export class ClusterRuntime {
  private wiring: ClusterWiring | undefined;
  /** The term whose state this node's engine holds once it has run; undefined before it ever ran. */
  private ranInTerm: number | undefined;
  /** The head this node's engine last wrote or adopted: another leader's progress changes it. */
  private knownHead: FederationHead | undefined;
  private catchingUp: Promise<void> = Promise.resolve();
  private followTimer: NodeJS.Timeout | undefined;
  /** A take-up that failed, tried again while this node still leads in the same term. */
  private takeUpRetry: NodeJS.Timeout | undefined;
  /** Set once this node's engine state is known to be stale: it stays paused (the command line exits). */
  private stale = false;
  private closed = false;
  private readonly directory: ParticipantDirectory;
  private readonly exchange: PartialExchange;
  /** Every node's participant rows, so every node's status lists them (participant-rows.ts). */
  private readonly participantRows: ClusterParticipantRows;
  /** The leader's side of rounds across nodes: the engine's remoteRounds hook (leader-rounds.ts). */
  readonly leaderRounds: LeaderRounds;
  /** A member's side: its own selected participants' part of the leader's rounds (member-rounds.ts). */
  private member: MemberRounds | undefined;
  /** Async mode: the leader's side of the federation-wide buffer (async-leader.ts), the engine's remoteRounds hook. */
  private readonly asyncLeader: AsyncLeaderRounds | undefined;
  /** Async mode: its settings, and the federation's buffer seats and training slots in Redis, one pair for the leader's side and this node's. */
  private readonly asyncMode: { readonly settings: AsyncSettings; readonly seats: BufferSeats; readonly slots: TrainingSlots } | undefined;
  /** Async mode: this node's participants' slots and updates (async-node.ts). */
  private asyncNode: AsyncNode | undefined;
  /** The engine's hook for participants of other nodes: the sync rounds', or async mode's buffer. */
  readonly remoteRounds: RemoteRounds;

  private constructor(
    readonly node: ClusterNode,
    readonly store: FederationStore,
    private readonly strategy: Strategy,
    private readonly log: (line: string) => void,
    federation: string,
    asyncSettings: AsyncSettings | undefined,
  ) {
    this.directory = new ParticipantDirectory(node.redis, node.keys, node.nodeId);
    this.exchange = new PartialExchange(node.redis, node.keys);
    this.participantRows = new ClusterParticipantRows(node.redis, node.keys, node.nodeId);
    this.leaderRounds = new LeaderRounds(node, this.directory, this.exchange, log);
    const asyncMode = asyncSettings && {
      settings: asyncSettings,
      seats: new BufferSeats(node.redis, federation),
      slots: new TrainingSlots(node.redis, federation, node.nodeId),
    };
    this.asyncMode = asyncMode;
    this.asyncLeader =
      asyncMode &&
      new AsyncLeaderRounds(
        this.leaderRounds,
        node,
        asyncMode.seats,
        asyncMode.slots,
        this.exchange,
        () => this.asyncNode,
        () => this.wiring?.engine.memberView().participants.eligible(() => false) ?? [],
        new SystemClock(),
        log,
        asyncMode.settings.bufferSize,
      );
    this.remoteRounds = this.asyncLeader ?? this.leaderRounds;
  }

  /**
   * The participants' socket handlers on this node: a participant selected
   * in the leader's round is collected here, with the engine's own intake
   * checks (member-rounds.ts); everything else goes to the engine.
   */
  participantEngine(
    engine: RoundEngine,
    io: Server,
    send: (participantId: string, message: RoundStartMessage) => boolean,
  ): ParticipantEngine {
    const asyncMode = this.asyncMode;
    if (asyncMode) {
      const versions = new ModelVersions(this.store);
      const { options, settings } = engine.memberView();
      const node = new AsyncNode({
        engine,
        nodeId: this.node.nodeId,
        settings: asyncMode.settings,
        seats: asyncMode.seats,
        slots: asyncMode.slots,
        // The strategy's state as of the version's model first (DP-FedAvg's clip norm): every node clips as the leader would.
        model: (version) =>
          this.catchUp()
            .then(() => versions.get(version))
            .then((weights) => makeModel(version, weights, { fineTune: options.fineTune, encoding: settings.modelEncoding })),
        send,
        filled: (generation) => {
          asyncEvents(io).serverSideEmit('cluster:async-full', generation);
          this.asyncLeader?.filled(generation);
        },
        log: this.log,
      });
      this.asyncNode = node;
    }
    this.member = new MemberRounds({
      engine,
      io: clusterEvents(io),
      nodeId: this.node.nodeId,
      directory: this.directory,
      exchange: this.exchange,
      send,
      leads: () => this.node.lease.term !== undefined,
      log: this.log,
    });
    return this.asyncNode ? routeToAsyncNode(engine, this.asyncNode) : routeToMemberRounds(engine, this.member);
  }

  static async connect(options: {
    readonly redisUrl: string;
    readonly leaseTtlMs?: number;
    readonly task: { readonly name: string; readonly paramCount: number };
    readonly strategy: Strategy;
    readonly log: (line: string) => void;
    /** `--mode async`: the buffer federation-wide (docs/async.md "Cluster mode"). */
    readonly async?: AsyncSettings;
  }): Promise<ClusterRuntime> {
    let runtime: ClusterRuntime | undefined;
    const node = await ClusterNode.connect({
      redisUrl: options.redisUrl,
      leaseTtlMs: options.leaseTtlMs,
      federation: options.task.name,
      log: options.log,
      statusChanged: () => runtime?.wiring?.statusChanged(),
      onRoleChange: (role) => void runtime?.roleChanged(role),
      onReachable: () => runtime?.redisBack(),
    });
    const store = new FederationStore(node.redis, node.store, node.keys, options.task);
    runtime = new ClusterRuntime(node, store, options.strategy, options.log, options.task.name, options.async);
    return runtime;
  }

  /** The federation as Redis holds it, with the strategy state loaded; undefined when Redis holds none yet. */
  async resumePoint(): Promise<ClusterResume | undefined> {
    const stored = await this.store.load();
    if (stored === undefined) return undefined;
    this.knownHead = stored.head;
    return this.takeUp(stored);
  }

  /** Loads the strategy's state and charges rounds started after the last completed one (their updates may have been seen). */
  private takeUp(stored: StoredFederation, announce = true): ClusterResume {
    const { head, strategy } = stored;
    if (strategy && this.strategy.loadState) {
      if (strategy.name !== this.strategy.name)
        throw new Error(
          `the federation in Redis runs strategy "${strategy.name}", this node "${this.strategy.name}": start every node with the same flags`,
        );
      this.strategy.loadState(strategy.state);
    }
    const unrecorded = head.lastStartedRound - head.round;
    if (unrecorded > 0 && this.strategy.chargeUnrecordedRounds) {
      this.strategy.chargeUnrecordedRounds(unrecorded);
      if (announce) this.log(`charged ${unrecorded} round(s) started after the last completed one to the privacy accountant`);
    }
    if (announce && head.round > 0)
      this.log(`cluster: the federation in Redis is at round ${head.round} (model version ${head.modelVersion})`);
    return { resume: stored.resume, lastStartedRound: head.lastStartedRound, historyFrom: stored.historyFrom };
  }

  /** Wires the running server in: the adapter, the traffic counter and the role changes; call once the server listens. */
  start(wiring: ClusterWiring, address: string): void {
    this.wiring = wiring;
    wiring.io.adapter(this.node.adapter());
    const traffic = TrafficCounter.of(wiring.httpServer);
    this.node.start(() => ({ address, participants: wiring.participants(), bytesIn: traffic.bytesIn, bytesOut: traffic.bytesOut }));
    const io = clusterEvents(wiring.io);
    const { engine } = wiring;
    const view = engine.memberView();
    // The engine's clock: the round's deadline was set on it, and the announcement says how much of it is left.
    const leaderView = { participants: view.participants, clock: view.options.clock };
    const asyncNode = this.asyncNode;
    if (this.asyncLeader && asyncNode) {
      const events = asyncEvents(wiring.io);
      this.asyncLeader.attach(Object.assign(io, events), () => engine.candidatesChanged(), leaderView);
      events.on('cluster:async-version', (value: unknown) => {
        const announcement = parseVersionAnnouncement(value);
        if (announcement)
          asyncNode
            .versionOpened(announcement)
            .catch((error: Error) => this.log(`cluster: async version ${announcement.round}: ${error.message}`));
      });
      answerPartialRequests(io, (request) => storeContribution(this.exchange, this.node.nodeId, request, asyncNode.partialOf(request)));
      const asyncLeader = this.asyncLeader;
      // Only the leader's engine runs the federation: when it finishes, the other nodes' intakes hand out no more slots.
      void engine.done.then(() => {
        if (this.node.isLeader && !this.stale)
          asyncLeader
            .finished()
            .catch((error: Error) => this.log(`cluster: could not mark the async federation finished: ${error.message}`));
      });
    } else this.leaderRounds.attach(io, () => engine.candidatesChanged(), leaderView);
    const member = this.member;
    if (member && !asyncNode) {
      const versions = new ModelVersions(this.store);
      answerRoundAnnouncements({
        io,
        nodeId: this.node.nodeId,
        clock: engine.memberView().options.clock,
        // The strategy's state as of the round's model first (DP-FedAvg's clip norm): the member clips as the leader would.
        versions: { get: (version) => this.catchUp().then(() => versions.get(version)) },
        modelOf: (version, weights) => member.modelOf(version, weights),
        send: (id, message) => member.send(id, message),
        opening: (announcement, model) => member.open(announcement, model),
      });
      answerPartialRequests(io, (request) => member.partialOf(request));
    }
    this.follow();
  }

  /**
   * Once a second a node that does not lead looks at Redis: until its engine
   * runs, it follows the federation's head (one GET), so its status and
   * dashboard show the leader's rounds, model and privacy spent; once its
   * engine has run, another node leading makes its state stale.
   */
  private follow(): void {
    if (this.closed || this.stale) return;
    this.followTimer = setTimeout(() => {
      // Each node's selectable participants go to the directory; the leader reads the others' (rounds across nodes).
      void Promise.all([this.catchUp(), this.member?.publishDirectory(), this.refreshRemote(), this.syncParticipantRows()])
        .catch(() => undefined) // Redis unreachable: the status says so; try again next time
        .finally(() => this.follow());
    }, FOLLOW_INTERVAL_MS);
  }

  /** The leader's view of the other nodes (async mode: also the buffer's upkeep). */
  private refreshRemote(): Promise<void> {
    return this.asyncLeader ? this.asyncLeader.refresh() : this.leaderRounds.refresh();
  }

  /** This node's participant rows to Redis, the other live nodes' from it; dashboards hear when the others' changed. */
  private async syncParticipantRows(): Promise<void> {
    const wiring = this.wiring;
    if (!wiring) return;
    const own = ownParticipantRows(wiring.engine.memberView().participants, this.node.nodeId);
    if (await this.participantRows.sync(own, this.node.status().nodes)) wiring.statusChanged();
  }

  /**
   * One catch-up at a time (the follow timer and a round announcement both
   * ask): each runs after the one before, so an older load never lands last;
   * each runs itself, so an announcement sees the head as of its own call.
   */
  private catchUp(): Promise<void> {
    const next = this.catchingUp.catch(() => undefined).then(() => this.catchUpOnce());
    this.catchingUp = next;
    return next;
  }

  private async catchUpOnce(): Promise<void> {
    const engine = this.wiring?.engine;
    if (!engine || this.node.isLeader) return;
    if (this.ranInTerm !== undefined) {
      const leader = this.node.lease.leader;
      if (leader !== undefined && leader !== this.node.nodeId) this.becomeStale(`node ${leader} leads the federation now`);
      return;
    }
    if (engine.control !== 'awaiting-start') return;
    const head = await this.store.head();
    if (head === undefined || JSON.stringify(head) === JSON.stringify(this.knownHead)) return;
    // Only the round records after the ones it holds: a long federation's history is read once, not at every round.
    const stored = await this.store.load(engine.knownHistory);
    if (!stored || this.ranInTerm !== undefined || !headIsNewer(stored.head, this.knownHead)) return;
    this.knownHead = stored.head;
    const { resume, lastStartedRound, historyFrom } = this.takeUp(stored, false);
    engine.adoptResume(resume, lastStartedRound, historyFrom);
  }

  /**
   * Redis answers again: a round the leader could not store while it was
   * away is held out of sight (the engine's storage pause); store it now,
   * so rounds resume without the operator.
   */
  private redisBack(): void {
    const engine = this.wiring?.engine;
    if (engine && this.node.isLeader && !this.stale && engine.status().storageFailure !== undefined) engine.resume();
  }

  /** `/api/cluster/leader`: a load balancer sends participants only to the node that leads. */
  leaderCheck(): { readonly leads: boolean; readonly self: string; readonly leader?: string } {
    return { leads: this.node.isLeader, self: this.node.nodeId, leader: this.node.lease.leader };
  }

  /** The engine's dashboard status with every live node's participants (none of the others' while Redis is unreachable) and the `cluster` field. */
  dashboardStatus(engine: RoundEngine): FederationStatus {
    const cluster = this.node.status();
    const nodes = this.node.redisReachable ? cluster.nodes : [];
    return { ...this.participantRows.merge(engine.dashboardStatus(), nodes), cluster };
  }

  /** The engine's onRoundStarting on a cluster: the round number (and its model, if Redis lacks that version) in Redis, fenced, before any participant hears of it. */
  async roundStarting(round: number, model: GlobalModel): Promise<void> {
    await this.store.markRoundStarted(this.leaderTerm(`round ${round} was not started`), round, model);
    this.knownHead = await this.store.head();
    // The selection sees the other nodes' participants as the directory holds them now (a failed read keeps the last one).
    await this.refreshRemote().catch(() => undefined);
  }

  /** The engine's onRoundCompleted on a cluster: the round whole in Redis, fenced, before anything shows it. */
  async roundCompleted(record: RoundRecord, model: GlobalModel): Promise<void> {
    const strategy = this.strategy.saveState ? { name: this.strategy.name, state: this.strategy.saveState() } : undefined;
    await this.store.commitRound(this.leaderTerm(`round ${record.round} was not stored`), record, model, strategy);
    this.knownHead = await this.store.head();
  }

  private leaderTerm(what: string): number {
    const term = this.node.lease.term;
    if (term === undefined) throw new Error(`this node no longer leads the cluster: ${what}`);
    return term;
  }

  private async roleChanged(role: LeaseRole): Promise<void> {
    const wiring = this.wiring;
    if (!wiring) return;
    const { engine } = wiring;
    clearTimeout(this.takeUpRetry);
    if (role.kind === 'follower') {
      if (this.ranInTerm !== undefined && !engine.isDone) engine.pause();
      return;
    }
    this.member?.stop(`node ${this.node.nodeId} now leads the cluster (term ${role.term})`);
    try {
      if (this.ranInTerm === undefined) {
        // Never ran: take the federation up as Redis holds it now (another leader may have moved it on since this node started).
        const stored = await this.store.load(engine.knownHistory);
        // Unchanged since this node took it up at start: its strategy state is loaded and charged already.
        if (stored && JSON.stringify(stored.head) !== JSON.stringify(this.knownHead)) {
          this.knownHead = stored.head;
          const { resume, lastStartedRound, historyFrom } = this.takeUp(stored);
          engine.adoptResume(resume, lastStartedRound, historyFrom);
        }
        this.ranInTerm = role.term;
        if (!wiring.manualStart) engine.start();
        return;
      }
      const head = await this.store.head();
      if (this.stale || (role.term !== this.ranInTerm && JSON.stringify(head) !== JSON.stringify(this.knownHead))) {
        this.becomeStale(`the federation moved on to round ${head?.round ?? 0} meanwhile`);
        return;
      }
      this.ranInTerm = role.term;
      engine.resume();
    } catch (error) {
      // The lease has its own connections: it can be won back before the federation's keys can be read. The engine
      // stays paused until they can (nothing ran), so try again, while this node leads in this term.
      this.log(`cluster: could not take up the federation from Redis: ${(error as Error).message}; trying again`);
      if (this.closed || this.stale) return;
      this.takeUpRetry = setTimeout(() => {
        if (this.node.lease.term === role.term) void this.roleChanged(role);
      }, TAKE_UP_RETRY_MS);
    }
  }

  /** This node's engine ran, lost the lease, and another node led meanwhile: it must never run again. */
  private becomeStale(why: string): void {
    if (this.stale) return;
    this.stale = true;
    // A stale node must not hold the lease: give it up and stop campaigning.
    void this.node.lease.stop(true);
    const reason = `node ${this.node.nodeId} lost the lease and ${why}: its state is stale`;
    this.log(`cluster: ${reason}`);
    this.wiring?.onStale?.(reason);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.asyncNode?.stop();
    if (this.followTimer) clearTimeout(this.followTimer);
    clearTimeout(this.takeUpRetry);
    // A clean shutdown: this node's participants leave the directory at once.
    await this.directory.leave().catch(() => undefined);
    await this.participantRows.leave().catch(() => undefined);
    return this.node.close();
  }
}

/** The server's socket.io server as the cluster's server-side events see it (the participants' server types none of its own). */
function clusterEvents(io: Server): ClusterEventServer {
  return io as unknown as ClusterEventServer;
}

/** `head` is further on than `known`: a later completed round, model version or started round. */
function headIsNewer(head: FederationHead, known: FederationHead | undefined): boolean {
  if (known === undefined) return true;
  if (head.round !== known.round) return head.round > known.round;
  if (head.modelVersion !== known.modelVersion) return head.modelVersion > known.modelVersion;
  return head.lastStartedRound > known.lastStartedRound;
}
