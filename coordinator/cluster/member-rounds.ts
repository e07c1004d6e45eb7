import { RoundDecoder } from '../../core/compression/round-decoder.ts';
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
  /** Taken once, at the leader's request: a repeated request gets the same. */
  contribution?: MemberContribution;
}

/** What a member needs of its coordinator. */
export interface MemberWiring {
  readonly engine: RoundEngine;
  readonly io: ClusterEventServer;
  readonly nodeId: string;
  readonly directory: ParticipantDirectory;
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
 * as a small `cluster:settled` report; at the leader's request the sum goes
 * to Redis as this node's partial (partial-requests.ts). The engine of a
 * member does not run rounds; this holds at most one round at a time.
 */
export class MemberRounds {
  private current: MemberRound | undefined;
  /** Today's intake, over the engine's registry, with this member's round as the open one. */
  readonly intake: Intake;
  private publishedDirectory: string | undefined;
  private readonly newest = new NewestRound();

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
    if (outcome === 'received' && !final && this.current?.open === round && this.current.secure) return;
    this.wiring.io.serverSideEmit('cluster:settled', {
      node: this.wiring.nodeId,
      term,
      round: round.round,
      participantId: id,
      outcome,
      reason,
      norm,
      code,
    });
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

  /** The leader closes the round: this node's sum and whose updates are in it, taken once. */
  partialOf(request: PartialRequest): MemberContribution | undefined {
    this.newest.heard(request.term, request.round);
    const round = this.current;
    if (!round || round.term !== request.term || round.open.round !== request.round) return undefined;
    this.end({ kind: 'stop', reason: 'the leader closed the round' });
    // A secure cohort gives only a decoded sum: none when it aborted or the leader closed first.
    if (round.contribution || round.secure) return round.contribution;
    const partial = round.open.aggregator.partial?.();
    if (!partial) return undefined;
    const contributors = [...round.open.settlements].filter(([, s]) => s.outcome === 'received').map(([id]) => id);
    round.contribution = { partial, contributors };
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
    for (const id of open.selected) {
      const settled = open.settlements.get(id);
      // Outcomes other than `received` went to the leader when they settled.
      if (settled !== undefined && settled.outcome !== 'received') continue;
      if (!inSum.has(id)) resettle(open, id, now, { outcome: 'dropped', reason });
      this.report(term, open, id, undefined, true);
    }
    const partial = open.aggregator.partial?.();
    if (partial && contributors.length > 0) round.contribution = { partial, contributors };
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
