import { RoundDecoder } from '../../core/compression/round-decoder.ts';
import type { PartialReply, SettledReport } from './cluster-events.ts';
import type { PartialExchange } from './partial-exchange.ts';
import { storeContribution } from './partial-requests.ts';
import type { RoundStartMessage } from '../../core/protocol/messages.ts';
import type { CollectionHost, Interruption, OpenRound } from '../rounds/collection.ts';
import { makeModel, type GlobalModel } from '../rounds/engine-types.ts';
import type { EngineState } from '../rounds/engine-state.ts';
import { Intake } from '../rounds/intake.ts';
import { settle, type RoundBasis } from '../rounds/open-round.ts';
import { plainCollection } from '../rounds/plain-collection.ts';
import { resettle } from '../rounds/remote-rounds.ts';
import { secureCollection } from '../rounds/secure-collection.ts';
import type { RoundEngine } from '../rounds/round-engine.ts';
import { normsWithheld } from '../rounds/status-view.ts';
import type { ParticipantEngine } from '../socket/participant-events.ts';
import type { ClusterEventServer, PartialRequest } from './cluster-events.ts';
import { NewestRound } from './newest-round.ts';
import type { ParticipantDirectory } from './participant-directory.ts';
import type { MemberContribution } from './partial-requests.ts';
import type { HeardRound } from './round-announce.ts';

/** A leader's round as this member collects it. */
interface MemberRound {
  readonly term: number;
  readonly open: OpenRound;
  readonly host: CollectionHost;
  /** Secure aggregation: this node's cohort is a secure sum of its own, and `received` is reported only once it is decoded. */
  readonly secure: boolean;
  collecting: boolean;
  /** Taken once, when the partial is first stored: a retried write stores the same. */
  contribution?: MemberContribution;
  /** This node's sum is final (every participant selected here settled, or the cohort's sum is decoded): its partial is stored before the leader asks. */
  early?: Promise<void>;
}

/** The partial this node stored (or is storing) last: a repeated request of that round gets the same reply. */
interface StoredPartial {
  readonly term: number;
  readonly round: number;
  readonly reply: Promise<PartialReply>;
}

/** What a member needs of its coordinator. */
export interface MemberWiring {
  readonly engine: RoundEngine;
  readonly io: ClusterEventServer;
  readonly nodeId: string;
  readonly directory: ParticipantDirectory;
  /** Where this node's partial of a round goes (Redis, once per term, round and node). */
  readonly exchange: PartialExchange;
  /** Sends round:start to a participant on this node; false when none holds that id now. */
  readonly send: (participantId: string, message: RoundStartMessage) => boolean;
  /** This node holds the lease now: it runs its own rounds, and no leader's round is collected here. */
  readonly leads: () => boolean;
  readonly log: (line: string) => void;
}

/**
 * A member node's side of the leader's rounds (docs/cluster.md): its own
 * selected participants' updates are validated, decoded and summed here,
 * with the engine's own intake checks (Intake, admit) and plain collection,
 * into the strategy's round aggregator; each settlement goes to the leader
 * as a small `cluster:settled` report. The sum goes to Redis as this
 * node's partial (partial-requests.ts) as soon as it is final (every
 * participant selected here settled), before the leader asks, or at the
 * leader's close request, whichever comes first; once stored, the round
 * (its aggregator: O(model)) is let go. The engine of a member does not run
 * rounds; this holds at most one round at a time.
 *
 * Ordering, so that the leader rarely has to ask and no update is lost or
 * counted twice: collection stops before the sum is taken, so the stored sum
 * holds every update this node accepted and nothing after it (a later
 * update of the round goes to the engine, which refuses it: WRONG_ROUND, no
 * round is collecting updates; every participant had settled here, so none
 * was waited for). The leader hears `cluster:stored` before the settlement
 * report that completed this node's part (reports are held until the write
 * is done, and the adapter delivers one node's events in order), so when
 * that report closes the leader's round it reads the partial without a
 * request. A failed write is not announced: the leader's request at close
 * writes it again (SET NX keeps it one partial).
 */
export class MemberRounds {
  private current: MemberRound | undefined;
  /** Today's intake, over the engine's registry, with this member's round as the open one. */
  readonly intake: Intake;
  private publishedDirectory: string | undefined;
  private readonly newest = new NewestRound();
  private stored: StoredPartial | undefined;

  constructor(private readonly wiring: MemberWiring) {
    const { options, participants, rejections } = wiring.engine.memberView();
    this.intake = new Intake({
      clock: options.clock,
      // This node's status (and /metrics) counts its own participants' refused updates.
      rejections,
      participants,
      state: () => this.state(),
      inOpenRound: (id) => this.holds(id),
      forgetDeparted: () => {},
      statusChanged: () => options.transport.statusChanged(),
      // A member never starts rounds: the leader does.
      startSoon: () => {},
    });
  }

  /** Participant `id` is selected in the round this member is collecting: its messages go to this member's intake. */
  holds(id: string): boolean {
    // A node that became leader mid-round never hears its own close of that round: its participants are its engine's.
    return this.current?.collecting === true && !this.wiring.leads() && this.current.open.selected.has(id);
  }

  /** This node took the lease: the round it collected for the old leader ends, and its participants are selectable again. */
  stop(reason: string): void {
    this.end({ kind: 'stop', reason });
  }

  /** The round as the intake's admission checks see it. */
  private state(): EngineState {
    const round = this.current;
    return round?.collecting ? { kind: 'collecting', round: round.open, after: { kind: 'continue' } } : { kind: 'idle' };
  }

  /** The model of `version` as this node sends it (its model encoding, fine-tuning). */
  modelOf(version: number, weights: Float32Array): GlobalModel {
    const { options, settings } = this.wiring.engine.memberView();
    return makeModel(version, weights, { fineTune: options.fineTune, encoding: settings.modelEncoding });
  }

  /** The leader announced a round: ready its collection here before any round:start goes out. */
  open(announcement: HeardRound, model: GlobalModel): void {
    const { engine, nodeId } = this.wiring;
    const { options, participants, settings } = engine.memberView();
    const { clock, strategy } = options;
    const mine = announcement.selected[nodeId] ?? [];
    // Refused (answerRoundAnnouncements acks the reason): the leader closed this round already, or a newer one is open.
    if (!this.newest.isNewer(announcement.term, announcement.round))
      throw new Error(`round ${announcement.round} of term ${announcement.term} is closed or superseded here`);
    this.newest.heard(announcement.term, announcement.round);
    this.end({ kind: 'stop', reason: `the leader opened round ${announcement.round}` });
    const decoder = new RoundDecoder(model.updateLength, announcement.config.compression, strategy);
    const startedAt = clock.now();
    const deadlineMs = Math.max(0, announcement.deadline - startedAt);
    const basis: RoundBasis = {
      round: announcement.round,
      startedAt,
      baseVersion: model.version,
      selected: new Set(mine),
      aggregator: decoder.beginRound(strategy, {
        round: announcement.round,
        globalWeights: model.weights,
        claimedExamples: announcement.claimedExamples,
      }),
      decoder,
      timer: clock.setTimer(deadlineMs, () => this.end({ kind: 'deadline' })),
      bytesIn: 0,
      bytesOut: model.frame.byteLength * mine.length,
      fit: announcement.config,
      clientsPerRound: settings.clientsPerRound,
      deadlineMs,
      settlements: new Map(),
      rejectionCodes: {},
    };
    const host: CollectionHost = {
      clock,
      options,
      settings,
      model,
      participant: (id) => participants.get(id),
      collecting: (round) => this.current?.open === round && this.current.collecting,
      settle: (round, id, outcome, reason, norm, code) => {
        settle(round, id, clock.now(), outcome, reason, norm, code);
        this.report(announcement.term, round, id, code);
      },
      // The leader decides when a plain round closes: a member only collects until it asks for the partial or the deadline passes.
      // A secure cohort is done when its sum is decoded or it aborted: then its outcomes go to the leader.
      closeSoon: () => {
        if (this.current?.open === open && this.current.secure) this.cohortDone(this.current);
      },
      closeNow: () => {},
      statusChanged: () => options.transport.statusChanged(),
      normsWithheld: () => normsWithheld(settings, strategy),
      recordLatency: () => {},
      // No quorum of its own here: the leader's applies to the whole round.
      ownSelection: true,
      neverDelivered: () => false,
    };
    const secure = settings.secureAggregation;
    const method = secure ? secureCollection(secure, settings.roundTimeoutMs) : plainCollection;
    const open: OpenRound = Object.assign(basis, { collection: method.create(host, basis, mine) });
    this.current = { term: announcement.term, open, host, secure: secure !== undefined, collecting: true };
    for (const id of mine) {
      const record = participants.get(id);
      if (record === undefined) continue;
      record.state = 'selected';
      record.progress = 0;
    }
  }

  /**
   * Tells the leader how participant `id`'s part ended here (never its update).
   * In a secure cohort a masked input is `received` only once the cohort's sum
   * is decoded: that is reported by cohortDone (`final`), not on arrival.
   */
  private report(term: number, round: RoundBasis, id: string, code?: string, final = false): void {
    const settled = round.settlements.get(id);
    if (settled === undefined) return;
    const { outcome, reason, norm } = settled;
    const current = this.current?.open === round ? this.current : undefined;
    if (outcome === 'received' && !final && current?.secure) return;
    const report: SettledReport = { node: this.wiring.nodeId, term, round: round.round, participantId: id, outcome, reason, norm, code };
    // This report completes this node's part, or its partial is being stored: it goes after the partial and its notice.
    const early =
      current &&
      (current.early ?? (!current.secure && round.settlements.size >= round.selected.size ? this.storeEarly(current) : undefined));
    if (early) void early.then(() => this.wiring.io.serverSideEmit('cluster:settled', report));
    else this.wiring.io.serverSideEmit('cluster:settled', report);
  }

  /** A selected participant's connection closed: today's intake drops it from the round, and the leader hears of it. */
  leave(id: string): void {
    const round = this.current;
    this.intake.leave(id);
    if (round) this.report(round.term, round.open, id);
  }

  /** round:start to one of this node's selected participants; one no longer here is out of the round at once. */
  send(participantId: string, message: RoundStartMessage): boolean {
    const round = this.current;
    // A secure cohort's round:start carries the participant's SecAgg index and the cohort's config.
    const start =
      round?.collecting && round.open.selected.has(participantId) ? round.open.collection.roundStart(participantId, message) : message;
    if (this.wiring.send(participantId, start)) return true;
    if (round?.collecting && round.open.selected.has(participantId) && !round.open.settlements.has(participantId)) {
      round.host.settle(round.open, participantId, 'dropped', 'disconnected');
      round.open.collection.left(participantId, true);
    }
    return false;
  }

  /** The leader closes the round: this node's partial stored (already, or now) and whose updates are in it, or why none. */
  partialOf(request: PartialRequest): Promise<PartialReply> {
    this.newest.heard(request.term, request.round);
    if (this.stored?.term === request.term && this.stored.round === request.round) return this.stored.reply;
    const round = this.current;
    if (!round || round.term !== request.term || round.open.round !== request.round)
      return storeContribution(this.wiring.exchange, this.wiring.nodeId, request, undefined);
    return this.store(round, 'the leader closed the round');
  }

  /**
   * This node's sum is final: its partial goes to Redis now, on a fresh stack
   * (the last sender's acknowledgement goes first), and the leader hears it is
   * stored. Resolves once that is done (or failed): the reports held for it go
   * out then. Nothing is stored for a round a newer one replaced meanwhile.
   */
  private storeEarly(round: MemberRound): Promise<void> {
    round.early ??= new Promise<void>((resolve) => setImmediate(resolve)).then(async () => {
      if (this.current !== round) return;
      const reply = await this.store(round, 'every participant selected on this node has settled');
      // A failed write is not announced: the leader asks at close, and the write is tried again.
      if (reply.stored) this.wiring.io.serverSideEmit('cluster:stored', { ...reply, term: round.term, round: round.open.round });
    });
    return round.early;
  }

  /**
   * Writes this node's partial of `round` once: collection stops first (the
   * sum holds nothing that arrives after it is taken), the sum and its
   * contributors are taken, and written with SET NX. Once stored, the round
   * and its aggregator are let go. A repeated call gets the same reply; a
   * failed write is tried again by the next one.
   */
  private store(round: MemberRound, why: string): Promise<PartialReply> {
    const request = { term: round.term, round: round.open.round };
    if (this.stored?.term === request.term && this.stored.round === request.round) return this.stored.reply;
    this.end({ kind: 'stop', reason: why });
    const stored: StoredPartial = {
      ...request,
      reply: storeContribution(this.wiring.exchange, this.wiring.nodeId, request, this.contribution(round)).then((reply) => {
        if (!reply.stored) {
          if (this.stored === stored) this.stored = undefined;
        } else if (this.current === round) {
          // Stored: nothing of the round is needed here any more (the leader reads the partial from Redis).
          this.current = undefined;
        }
        return reply;
      }),
    };
    this.stored = stored;
    return stored.reply;
  }

  /** This node's sum and whose updates are in it, taken once (collection has stopped). */
  private contribution(round: MemberRound): MemberContribution | undefined {
    // A secure cohort gives only a decoded sum: none when it aborted or the leader closed first.
    if (round.contribution || round.secure) return round.contribution;
    const partial = round.open.aggregator.partial?.();
    if (!partial) return undefined;
    const contributors = [...round.open.settlements].filter(([, s]) => s.outcome === 'received').map(([id]) => id);
    round.contribution = { partial, contributors, bytesIn: round.open.bytesIn };
    return round.contribution;
  }

  /**
   * A secure cohort's sum is decoded, or the cohort aborted: the sum becomes
   * this node's partial, and each participant's final outcome goes to the
   * leader (a masked input outside the decoded sum counts as dropped).
   */
  private cohortDone(round: MemberRound): void {
    const { open, term } = round;
    const delivered = open.collection.deliver(open.aggregator);
    const contributors = delivered.ok ? (delivered.contributors ?? []) : [];
    const inSum = new Set(contributors);
    const reason = delivered.ok ? "its masked input was not part of its cohort's decoded sum" : delivered.reason;
    const now = this.wiring.engine.memberView().options.clock.now();
    const partial = open.aggregator.partial?.();
    // The decoded sum is final: it is stored now, and the outcomes below go to the leader after it (report holds them).
    if (partial && contributors.length > 0) {
      round.contribution = { partial, contributors, bytesIn: open.bytesIn };
      void this.storeEarly(round);
    }
    for (const id of open.selected) {
      const settled = open.settlements.get(id);
      // Outcomes other than `received` went to the leader when they settled.
      if (settled !== undefined && settled.outcome !== 'received') continue;
      if (!inSum.has(id)) resettle(open, id, now, { outcome: 'dropped', reason });
      this.report(term, open, id, undefined, true);
    }
    this.end({ kind: 'stop', reason: "its cohort's secure sum is done" });
  }

  /** Collection ends (the leader's close, the deadline, a newer round): whoever has not answered is dropped, and the rest are selectable again. */
  private end(cause: Interruption): void {
    const round = this.current;
    if (!round?.collecting) return;
    const { options, participants } = this.wiring.engine.memberView();
    options.clock.clear(round.open.timer);
    round.open.collection.interrupt(cause);
    round.collecting = false;
    for (const id of round.open.selected) {
      const record = participants.get(id);
      if (record === undefined) continue;
      if (record.connected) record.state = 'idle';
      record.progress = undefined;
    }
    options.transport.statusChanged();
    void this.publishDirectory();
  }

  /** This node's selectable participants in the directory, written only when they changed. */
  async publishDirectory(): Promise<void> {
    const { participants } = this.wiring.engine.memberView();
    const entries = participants
      .eligible((id) => this.holds(id))
      .map((p) => ({ id: p.id, numExamples: p.info.numExamples, deliveryKey: p.deliveryKey }));
    const text = JSON.stringify(entries);
    if (text === this.publishedDirectory) return;
    try {
      await this.wiring.directory.publish(entries);
      this.publishedDirectory = text;
    } catch (error) {
      this.wiring.log(`cluster: could not publish this node's participants: ${(error as Error).message}`);
    }
  }
}

/** The participants' messages on a cluster node: those of a participant selected in the leader's round go to this member's intake, the rest to the engine. */
export function routeToMemberRounds(engine: RoundEngine, member: MemberRounds): ParticipantEngine {
  return {
    countRejection: (code) => engine.countRejection(code),
    excludeFromOpenRound: (id) => (member.holds(id) ? member.intake.excludeFromOpenRound(id) : engine.excludeFromOpenRound(id)),
    submitSecAgg: (id, step, message) =>
      member.holds(id) ? member.intake.submitSecAgg(id, step, message) : engine.submitSecAgg(id, step, message),
    join: (info, requestedId, credential) => engine.join(info, requestedId, credential),
    get isDone() {
      return engine.isDone;
    },
    status: () => engine.status(),
    get globalModel() {
      return engine.globalModel;
    },
    get currentRound() {
      return engine.currentRound;
    },
    submitUpdate: (id, message) => (member.holds(id) ? member.intake.submitUpdate(id, message) : engine.submitUpdate(id, message)),
    decline: (id, message) => (member.holds(id) ? member.intake.decline(id, message) : engine.decline(id, message)),
    reportProgress: (id, message) => (member.holds(id) ? member.intake.reportProgress(id, message) : engine.reportProgress(id, message)),
    leave: (id) => (member.holds(id) ? member.leave(id) : engine.leave(id)),
  };
}
