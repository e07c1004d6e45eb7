import { stalenessWeighted } from '../../core/aggregation/staleness.ts';
import type { RoundAggregator } from '../../core/aggregation/strategy.ts';
import { RoundDecoder } from '../../core/compression/round-decoder.ts';
import { ackError, ackOk, ErrorCode, ProtocolError, type Ack } from '../../core/protocol/errors.ts';
import type { DeclineMessage, ProgressMessage, RoundStartMessage, UpdateAccepted, UpdateMessage } from '../../core/protocol/messages.ts';
import type { AsyncSettings } from '../../core/protocol/status.ts';
import { checkAsyncUpload } from '../rounds/async-upload.ts';
import type { TimerHandle } from '../rounds/clock.ts';
import type { GlobalModel } from '../rounds/engine-types.ts';
import type { ParticipantRecord } from '../rounds/participants.ts';
import type { RoundEngine } from '../rounds/round-engine.ts';
import type { ParticipantEngine } from '../socket/participant-events.ts';
import type { AsyncVersionAnnouncement } from './async-events.ts';
import type { BufferSeats, Generation } from './async-seats.ts';
import type { TrainingSlots } from './async-slots.ts';
import type { PartialRequest } from './cluster-events.ts';
import type { MemberContribution } from './partial-requests.ts';
import { isBefore } from './newest-round.ts';

/** How often a node asks for slots while its participants wait (another node's slot may have gone free). */
const GRANT_INTERVAL_MS = 250;

/** The version open now, as this node knows it, with its model ready to send. */
interface OpenVersion extends AsyncVersionAnnouncement {
  readonly model: GlobalModel;
}

/** A participant of this node training now. */
interface Slot {
  readonly round: number;
  readonly baseVersion: number;
  readonly startedAt: number;
  readonly timer: TimerHandle;
}

/** An update this node took in, decoded, waiting for a seat. */
interface TakenUpdate {
  readonly record: ParticipantRecord;
  readonly baseVersion: number;
  readonly numExamples: number;
  readonly update: Float32Array;
  /** l2Norm(update), computed while decoding it (ClientResult.norm). */
  readonly norm: number;
  /** Its upload's size on the wire. */
  readonly bytes: number;
  /** Its place in the federation-wide order of waiting updates, once a claim made it wait. */
  ticket?: string;
}

/** This node's part of one buffer generation: the sum of its seated updates, whose they are, and their upload bytes. */
interface GenerationPart {
  readonly generation: Generation;
  readonly aggregator: RoundAggregator;
  readonly contributors: string[];
  bytesIn: number;
}

/** What a node needs of its coordinator and the cluster. */
export interface AsyncNodeWiring {
  readonly engine: RoundEngine;
  readonly nodeId: string;
  readonly settings: AsyncSettings;
  readonly seats: BufferSeats;
  readonly slots: TrainingSlots;
  /** The model of `version` as this node sends it (fetched from Redis once per version, the strategy's state caught up first). */
  readonly model: (version: number) => Promise<GlobalModel>;
  /** Sends round:start to a participant on this node; false when none holds that id now. */
  readonly send: (participantId: string, message: RoundStartMessage) => boolean;
  /** This node took seat K of `generation`: the leader makes the version. */
  readonly filled: (generation: Generation) => void;
  readonly log: (line: string) => void;
}

/**
 * Async mode on a cluster, one node's side (docs/async.md "Cluster mode"),
 * the leader's included: its own participants get federation-wide training
 * slots (TrainingSlots) and the newest version's model; their updates are
 * checked and decoded here, claim a seat in the federation's buffer
 * generation (BufferSeats), and go, weighted by their staleness as in one
 * process, into this node's partial of that generation, which the leader
 * asks for when it makes the version (partial-requests.ts). An update that
 * finds the generation full (or, under client-level DP, its participant
 * seated already) waits here for the next. Uploads never leave this node.
 */
export class AsyncNode {
  private current: OpenVersion | undefined;
  private readonly slots = new Map<string, Slot>();
  /** Updates waiting for the next generation: their participants get no new slot meanwhile. */
  private held: TakenUpdate[] = [];
  private readonly parts = new Map<string, GenerationPart>();
  /** Generations whose partial the leader took: a seat in one of them that this node hears of only now holds a lost update. */
  private readonly taken = new Map<string, Generation>();
  /** Out of the current version (a declined slot, a refused update): they get a slot again from the next, as in one process. */
  private readonly outOfVersion = new Set<string>();
  /** A term whose leader is gone (a claim in it was fenced): updates wait for the next leader's announcement rather than claim in it. */
  private deposedTerm: number | undefined;
  /** Updates whose seat claim is under way (neither seated nor held yet). */
  private claiming = 0;
  private granting = false;
  private retrying = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly wiring: AsyncNodeWiring) {
    this.timer = setInterval(() => {
      void this.retryHeld();
      void this.grantSlots();
    }, GRANT_INTERVAL_MS);
  }

  private get view() {
    return this.wiring.engine.memberView();
  }

  /** The leader opened a version: its model goes to this node's participants from now on; held updates claim seats in it. */
  async versionOpened(announcement: AsyncVersionAnnouncement): Promise<void> {
    const known = this.current;
    if (known && !isBefore(known, announcement)) return;
    let model: GlobalModel;
    try {
      model = await this.wiring.model(announcement.modelVersion);
    } catch (error) {
      // Redis keeps only the newest version: a node that heard of this one late finds the next committed already, and the
      // leader announces that one when it opens it (and again at each refresh). Meanwhile the version known here stays.
      this.wiring.log(`cluster: async version ${announcement.round} skipped: ${(error as Error).message}`);
      return;
    }
    const latest = this.current;
    if (latest && !isBefore(latest, announcement)) return;
    this.current = { ...announcement, model };
    this.outOfVersion.clear();
    for (const [key, generation] of this.taken) if (isBefore(generation, announcement)) this.taken.delete(key);
    // The leader asks for a version's partials before it opens the next: an older generation's part here is never asked
    // for (a deposed leader's, or one whose request missed this node), so its model-sized sum goes and its updates are lost.
    for (const [key, part] of this.parts)
      if (isBefore(part.generation, announcement)) {
        this.wiring.log(
          `cluster: async version ${part.generation.round} of term ${part.generation.term} closed without this node's partial: its ${part.contributors.length} updates are lost`,
        );
        this.parts.delete(key);
      }
    await this.retryHeld();
    void this.grantSlots();
  }

  /** The updates waiting here claim again, in the order they came. */
  private async retryHeld(): Promise<void> {
    if (this.retrying || this.held.length === 0) return;
    this.retrying = true;
    try {
      const waiting = this.held;
      this.held = [];
      for (const taken of waiting) await this.place(taken);
    } finally {
      this.retrying = false;
    }
  }

  /** An update from a participant training in a slot here: checked and acknowledged; its seat is claimed next. */
  submitUpdate(id: string, message: UpdateMessage): Ack<UpdateAccepted> {
    const record = this.view.participants.get(id);
    if (!record) return ackError(ErrorCode.NotJoined, 'join before update');
    const upload = checkAsyncUpload(this.slots.get(id), message, {
      appliesTo: this.current?.modelVersion,
      maxStaleness: this.wiring.settings.maxStaleness,
      encoding: this.view.settings.updateEncoding ?? 'float32',
      updateLength: this.wiring.engine.globalModel.updateLength,
    });
    if (upload.kind !== 'no-slot') this.release(id);
    switch (upload.kind) {
      case 'no-slot':
        return upload.refusal;
      case 'unusable':
        this.outOfVersion.add(id);
        return upload.refusal;
      case 'too-stale':
        this.freeToTrain();
        return upload.refusal;
      case 'usable':
        break;
      default:
        throw new Error(`unknown upload check ${upload satisfies never}`);
    }
    record.state = 'uploaded';
    record.progress = undefined;
    if (message.epsilon !== undefined) record.epsilon = message.epsilon;
    record.lastLatencyMs = this.view.options.clock.now() - upload.slot.startedAt;
    const taken: TakenUpdate = {
      record,
      baseVersion: message.baseVersion,
      numExamples: message.numExamples,
      update: upload.update,
      norm: upload.norm,
      bytes: message.update.byteLength,
    };
    void this.place(taken);
    this.view.options.transport.statusChanged();
    // Taken in: its seat (or its wait for the next generation) is this node's to settle; `received` counts what this node
    // holds for the buffer now: its part of the open generation, the updates claiming a seat (this one) and those waiting.
    return ackOk({ round: message.round, received: this.holding() });
  }

  /**
   * A seat for an update, in the generation open now: seated, it goes into
   * this node's partial; a full generation (or a participant seated already
   * under client-level DP) keeps it for the next; too stale, refused and
   * counted (it was acknowledged already).
   */
  private async place(taken: TakenUpdate): Promise<void> {
    const open = this.current;
    if (!open || open.term === this.deposedTerm) {
      this.hold(taken);
      return;
    }
    this.claiming++;
    try {
      await this.claimSeat(taken, open);
    } finally {
      this.claiming--;
    }
  }

  /** The updates this node holds for the buffer: seated in the open generation's part, claiming a seat, or waiting. */
  private holding(): number {
    const open = this.current;
    const part = open && this.parts.get(keyOf(open));
    return (part?.contributors.length ?? 0) + this.claiming + this.held.length;
  }

  private async claimSeat(taken: TakenUpdate, open: OpenVersion): Promise<void> {
    const { record } = taken;
    const generation = { term: open.term, round: open.round };
    const { settings } = this.wiring;
    let claim: Awaited<ReturnType<BufferSeats['claim']>>;
    try {
      claim = await this.wiring.seats.claim({
        generation,
        participantId: record.id,
        node: this.wiring.nodeId,
        baseVersion: taken.baseVersion,
        bufferSize: settings.bufferSize,
        maxStaleness: settings.maxStaleness,
        oncePerParticipant: this.view.options.strategy.traits.participation === 'private',
        ticket: taken.ticket,
      });
    } catch (error) {
      this.wiring.log(`cluster: could not claim a buffer seat (Redis): ${(error as Error).message}; the update waits`);
      this.hold(taken);
      return;
    }
    switch (claim.kind) {
      case 'seat':
        this.seated(generation, open, taken, claim.staleness);
        if (claim.full) this.wiring.filled(generation);
        break;
      case 'full':
      case 'duplicate':
      case 'closed':
        // It waits with its ticket and claims again (at each grant tick, and when a version is announced): updates that
        // waited longer, on any node, take the free seats first.
        taken.ticket = claim.ticket;
        this.hold(taken);
        return;
      case 'stale':
        this.refuseAcknowledged(
          record,
          ErrorCode.UpdateTooStale,
          `staleness ${claim.staleness} against version ${claim.generationVersion}`,
        );
        break;
      case 'ahead':
        this.refuseAcknowledged(record, ErrorCode.StaleModel, `base version ${taken.baseVersion} is newer than ${claim.generationVersion}`);
        break;
      case 'fenced':
        // It took no seat, so no generation lost it: it waits for the next leader's version, whose claim checks its staleness.
        this.wiring.log(
          `cluster: the leader of term ${generation.term} is gone: ${record.id}'s update waits for the next leader's version`,
        );
        this.deposedTerm = generation.term;
        this.hold(taken);
        return;
      default:
        throw new Error(`unknown seat claim ${claim satisfies never as string}`);
    }
    this.freeToTrain();
  }

  private seated(generation: Generation, open: OpenVersion, taken: TakenUpdate, staleness: number): void {
    const key = keyOf(generation);
    const current = this.current;
    if (this.taken.has(key) || (current && isBefore(generation, current))) {
      this.wiring.log(
        `cluster: ${taken.record.id}'s seat in version ${generation.round} came after its partial went to the leader: its update is lost`,
      );
      return;
    }
    let part = this.parts.get(key);
    if (!part) {
      const { strategy } = this.view.options;
      const decoder = new RoundDecoder(open.model.updateLength, open.config.compression, strategy);
      part = {
        generation,
        aggregator: decoder.beginRound(strategy, {
          round: generation.round,
          globalWeights: open.model.weights,
          claimedExamples: open.claimedExamples,
        }),
        contributors: [],
        bytesIn: 0,
      };
      this.parts.set(key, part);
    }
    try {
      part.aggregator.add(
        stalenessWeighted(
          { participantId: taken.record.id, numExamples: taken.numExamples, update: taken.update, norm: taken.norm },
          staleness,
          this.wiring.settings.stalenessExponent,
        ),
      );
    } catch (error) {
      // Its seat stays taken and empty: the version holds fewer than K updates, never more.
      if (error instanceof ProtocolError) {
        this.refuseAcknowledged(taken.record, error.code, error.message);
        return;
      }
      throw error;
    }
    part.contributors.push(taken.record.id);
    part.bytesIn += taken.bytes;
    taken.record.roundsContributed++;
    if (!this.slots.has(taken.record.id) && taken.record.connected) taken.record.state = 'idle';
  }

  /** The leader makes the version of this generation: this node's sum and whose updates are in it, taken once. */
  partialOf(request: PartialRequest): MemberContribution | undefined {
    const key = keyOf(request);
    const part = this.parts.get(key);
    this.taken.set(key, request);
    if (!part) return undefined;
    this.parts.delete(key);
    const partial = part.aggregator.partial?.();
    return partial && { partial, contributors: part.contributors, bytesIn: part.bytesIn };
  }

  decline(id: string, message: DeclineMessage): Ack<{ readonly round: number }> {
    const slot = this.slots.get(id);
    if (!slot || slot.round !== message.round) return ackError(ErrorCode.NotSelected, `no training slot for round ${message.round}`);
    this.release(id);
    const record = this.view.participants.get(id);
    if (record) {
      record.declined = message.reason;
      record.state = 'declined';
      if (message.final) record.retired = true;
    }
    this.outOfVersion.add(id);
    this.view.options.transport.statusChanged();
    return ackOk({ round: message.round });
  }

  progress(id: string, message: ProgressMessage): void {
    const record = this.view.participants.get(id);
    if (!record || this.slots.get(id)?.round !== message.round) return;
    record.state = 'training';
    record.progress = message.fraction;
    this.view.options.transport.statusChanged();
  }

  /** The participant left this node: its slot and its place in the queue go (an update it left waiting still takes its seat, as in one process). */
  left(id: string): void {
    this.release(id);
    void this.wiring.slots.leave(id).catch((error: Error) => this.wiring.log(`cluster: could not free ${id}'s slot: ${error.message}`));
  }

  /** The federation finished, or this node shuts down. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    for (const id of [...this.slots.keys()]) this.release(id);
  }

  /**
   * Queues this node's idle participants for slots and starts those the
   * federation grants, in one script: every idle participant is named each
   * time, so a queue place the leader purged is restored at the next tick.
   */
  private async grantSlots(): Promise<void> {
    const open = this.current;
    if (this.granting || this.stopped || !open || this.wiring.engine.isDone) return;
    this.granting = true;
    try {
      const holding = new Set(this.held.map((h) => h.record.id));
      const busy = (id: string) => this.slots.has(id) || holding.has(id) || this.outOfVersion.has(id);
      const waiting = this.view.participants.eligible(busy).map((record) => record.id);
      if (waiting.length === 0) return;
      const slotMs = this.view.settings.roundTimeoutMs;
      // Undefined: the federation finished (the leader said so in Redis); nothing is handed out, and a leader that resumes it opens slots again.
      const granted = await this.wiring.slots.grant(this.wiring.settings.concurrency, slotMs, waiting);
      if (this.stopped) {
        // Stopped while Redis answered: no training (nor its timer) starts on a node shutting down.
        for (const id of granted ?? []) void this.wiring.slots.release(id).catch(() => undefined);
        return;
      }
      for (const id of granted ?? []) this.start(id, this.current ?? open, slotMs);
    } catch (error) {
      this.wiring.log(`cluster: async slots unavailable (Redis): ${(error as Error).message}`);
    } finally {
      this.granting = false;
    }
  }

  private start(id: string, open: OpenVersion, slotMs: number): void {
    const { clock } = this.view.options;
    const record = this.view.participants.get(id);
    const now = clock.now();
    const message: RoundStartMessage = {
      round: open.round,
      model: { version: open.model.version, weights: open.model.frame, frozenHash: open.model.frozenHash },
      config: open.config,
      deadline: now + slotMs,
      mode: 'async',
    };
    if (!record?.connected || !this.wiring.send(id, message)) {
      void this.wiring.slots.release(id).catch(() => undefined);
      return;
    }
    // Only a statistic (the version's bytesOut): a failed count must not stop the training it counts.
    void this.wiring.seats.countSent(open.term, open.model.frame.byteLength).catch(() => undefined);
    const timer = clock.setTimer(slotMs, () => {
      if (this.slots.get(id)?.round !== open.round) return;
      this.release(id);
      if (record.connected) record.state = 'idle';
      this.freeToTrain();
    });
    this.slots.set(id, { round: open.round, baseVersion: open.model.version, startedAt: now, timer });
    record.state = 'selected';
    record.progress = 0;
    record.declined = undefined;
    this.view.options.transport.statusChanged();
  }

  private release(id: string): void {
    const slot = this.slots.get(id);
    if (!slot) return;
    this.view.options.clock.clear(slot.timer);
    this.slots.delete(id);
    void this.wiring.slots.release(id).catch((error: Error) => this.wiring.log(`cluster: could not free ${id}'s slot: ${error.message}`));
  }

  /** A participant is free to train again: it queues at once, and gets a slot when the federation has one for it. */
  private freeToTrain(): void {
    void this.grantSlots();
  }

  private hold(taken: TakenUpdate): void {
    this.held.push(taken);
  }

  /** A refusal of an update that was acknowledged already: counted in the status's rejections, not answered. */
  private refuseAcknowledged(record: ParticipantRecord, code: ErrorCode, reason: string): void {
    this.wiring.engine.countRejection(code);
    this.wiring.log(`cluster: ${record.id}'s update refused after it was taken in: ${code}: ${reason}`);
  }
}

/** A generation's key in this node's maps. */
function keyOf(generation: Generation): string {
  return `${generation.term}:${generation.round}`;
}

/** The participants' messages on a node in async mode: updates, declines, progress and leaving go to its async intake; joining to the engine. */
export function routeToAsyncNode(engine: RoundEngine, node: AsyncNode): ParticipantEngine {
  return {
    countRejection: (code) => engine.countRejection(code),
    excludeFromOpenRound: (id) => engine.excludeFromOpenRound(id),
    submitSecAgg: (id, step, message) => engine.submitSecAgg(id, step, message),
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
    submitUpdate: (id, message) => node.submitUpdate(id, message),
    decline: (id, message) => node.decline(id, message),
    reportProgress: (id, message) => node.progress(id, message),
    leave: (id) => {
      node.left(id);
      engine.leave(id);
    },
  };
}
