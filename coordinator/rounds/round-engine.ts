import type { RoundAggregator, Strategy } from '../../core/aggregation/strategy.ts';
import { ackError, ackOk, ErrorCode, ProtocolError, type Ack } from '../../core/protocol/errors.ts';
import type {
  ClientInfo,
  DeclineMessage,
  EvalMetrics,
  FederationDoneMessage,
  FitConfig,
  ProgressMessage,
  RoundEndMessage,
  RoundStartMessage,
  UpdateAccepted,
  UpdateMessage,
} from '../../core/protocol/messages.ts';
import type {
  FederationStatus,
  ParticipantState,
  ParticipantStatus,
  RoundPhase,
  RoundRecord,
  RoundSettings,
} from '../../core/protocol/status.ts';
import { sample, type UniformSource } from '../../core/random/prng.ts';
import { decodeFrame, encodeFrame, FrameKind } from '../../core/wire/frame.ts';
import type { Clock, TimerHandle } from './clock.ts';
import type { SecAggAccepted } from '../../core/protocol/messages.ts';
import type { SecAggRoundStats } from '../../core/protocol/status.ts';
import type { AdvertiseKeysMessage, MaskedInputMessage, SecAggResult, ShareKeysMessage, UnmaskResponseMessage } from '../../core/secagg/protocol.ts';
import { secAggConfigFor, SecureRound, type SecAggOutbound, type SecAggStep, type SecureRoundOutcome } from './secure-round.ts';

/** How the engine reaches participants; the socket.io server implements it. */
export interface RoundTransport {
  sendRoundStart(participantId: string, message: RoundStartMessage): void;
  broadcastRoundEnd(message: RoundEndMessage): void;
  broadcastDone(message: FederationDoneMessage): void;
  /** Something in `status()` changed (the server throttles pushes to dashboards). */
  statusChanged(): void;
  /** Secure aggregation: a step's output for one participant (needed with `settings.secureAggregation`). */
  sendSecAgg?(participantId: string, out: SecAggOutbound): void;
}

/** Tests only: what the coordinator holds during secure aggregation. */
export interface SecAggObserver {
  masked?(round: number, participantId: string, masked: Uint32Array): void;
  finished?(round: number, result: SecAggResult, contributors: readonly string[]): void;
}

export interface ModelEvaluator {
  evaluate(weights: Float32Array): Promise<EvalMetrics>;
}

/**
 * Called after every closed round, aggregated or skipped, with the global
 * model as it now is and before anyone hears of the round's end:
 * persistence hooks in here.
 */
export type RoundCompletedListener = (record: RoundRecord, model: GlobalModel, history: readonly RoundRecord[]) => Promise<void> | void;

/** Where a restarted coordinator picks up: the last checkpoint, and the last round number ever used. */
export interface ResumePoint {
  readonly round: number;
  readonly modelVersion: number;
  readonly weights: Float32Array;
  readonly history: readonly RoundRecord[];
}

export interface GlobalModel {
  readonly version: number;
  readonly weights: Float32Array;
  /** The weights encoded once as a frame, shared by every message that sends them. */
  readonly frame: ArrayBuffer;
}

export interface RoundEngineOptions {
  readonly settings: RoundSettings;
  readonly strategy: Strategy;
  readonly clock: Clock;
  readonly transport: RoundTransport;
  readonly evaluator: ModelEvaluator;
  readonly initialWeights: Float32Array;
  readonly random: UniformSource;
  readonly task: FederationStatus['task'];
  readonly onRoundCompleted?: RoundCompletedListener;
  /** Awaited before a round's participants hear of it (persists the round number). */
  readonly onRoundStarting?: (round: number) => Promise<void> | void;
  readonly resume?: ResumePoint;
  /** The last round number ever started (perhaps cut short by a crash); numbering continues after it. */
  readonly lastStartedRound?: number;
  /** Creates participant ids; random by default. */
  readonly newId?: () => string;
  readonly secaggObserver?: SecAggObserver;
}

interface ParticipantRecord {
  readonly id: string;
  info: ClientInfo;
  connected: boolean;
  state: ParticipantState;
  roundsContributed: number;
  progress?: number;
  lastLatencyMs?: number;
  epsilon?: number;
  declined?: string;
  /** Declined for good (its privacy budget is spent): never selected again, whatever else happens. */
  retired: boolean;
}

interface OpenRound {
  readonly round: number;
  readonly startedAt: number;
  readonly baseVersion: number;
  readonly selected: ReadonlySet<string>;
  readonly aggregator: RoundAggregator;
  readonly timer: TimerHandle;
  readonly settled: Set<string>;
  received: number;
  dropped: number;
  rejected: number;
  declined: number;
  bytesIn: number;
  readonly bytesOut: number;
  /** Rounds with secure aggregation. */
  readonly secure?: SecureRound;
  secureOutcome?: SecureRoundOutcome;
}

/**
 * The round state machine. It knows nothing of sockets or wall time: the
 * transport carries its messages and the clock runs its deadlines, so tests
 * drive it with a controllable clock.
 *
 * waiting -> training -> aggregating -> evaluating -> waiting ... -> done
 *
 * A round selects up to `clientsPerRound` idle participants at random,
 * collects updates until each selected participant has answered, dropped out
 * or been rejected, or the deadline passes, and aggregates when at least
 * `minUpdates` arrived; otherwise the model stays as it was and the round is
 * recorded as skipped with the reason.
 */
export class RoundEngine {
  private readonly participants = new Map<string, ParticipantRecord>();
  private model: GlobalModel;
  private phase: RoundPhase = 'waiting';
  private lastRound = 0;
  private open: OpenRound | undefined;
  private readonly history: RoundRecord[] = [];
  private readonly rejections: Record<string, number> = {};
  private started = false;
  private doneReason: string | undefined;
  private readonly startedAt: number;
  private idCounter = 0;
  /** A round number is being recorded; no other round may start meanwhile. */
  private starting = false;
  /** Latencies of recent updates, for the adaptive deadline. */
  private readonly recentLatencies: number[] = [];
  private resolveDone!: (status: FederationStatus) => void;
  /** Resolves when the federation finishes (round limit or target accuracy). */
  readonly done: Promise<FederationStatus>;

  constructor(private readonly options: RoundEngineOptions) {
    const resume = options.resume;
    this.model = resume ? makeModel(resume.modelVersion, resume.weights) : makeModel(0, options.initialWeights);
    if (resume) this.history.push(...resume.history);
    // A round started but never finished before a crash keeps its number: the next one comes after it.
    this.lastRound = Math.max(resume?.round ?? 0, options.lastStartedRound ?? 0);
    this.startedAt = options.clock.now();
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  get globalModel(): GlobalModel {
    return this.model;
  }

  get currentRound(): number {
    return this.open?.round ?? this.lastRound;
  }

  get isDone(): boolean {
    return this.phase === 'done';
  }

  /** Starts running rounds as soon as enough participants are connected. */
  start(): void {
    this.started = true;
    this.maybeStartRound();
  }

  /** Stops for good: closes the open round without aggregating and finishes. */
  stop(reason = 'stopped by the operator'): void {
    if (this.open) {
      this.open.secure?.abort(reason);
      this.options.clock.clear(this.open.timer);
      if (this.phase === 'training') this.open.aggregator.abandon?.();
      this.open = undefined;
    }
    this.finish(reason);
  }

  /** A participant joined or rejoined. Returns its id (the old one when it is known). */
  join(info: ClientInfo, requestedId?: string): string {
    const existing = requestedId === undefined ? undefined : this.participants.get(requestedId);
    let record: ParticipantRecord;
    if (existing) {
      record = existing;
      record.info = info;
      record.connected = true;
      // A participant that dropped out of the open round stays out of it.
      if (!this.open?.selected.has(record.id)) record.state = 'idle';
    } else {
      record = { id: this.options.newId?.() ?? this.makeId(), info, connected: true, state: 'idle', roundsContributed: 0, retired: false };
      this.participants.set(record.id, record);
    }
    this.options.transport.statusChanged();
    // Deferred: the participant must get its join answer before any round:start.
    this.options.clock.setTimer(0, () => this.maybeStartRound());
    return record.id;
  }

  /** A participant's connection closed. If it was selected and had not answered, it drops out of the round. */
  leave(participantId: string): void {
    const record = this.participants.get(participantId);
    if (!record) return;
    record.connected = false;
    record.progress = undefined;
    const open = this.open;
    if (open?.secure) {
      if (open.selected.has(participantId) && !open.settled.has(participantId)) {
        open.settled.add(participantId);
        open.dropped++;
        record.state = 'dropped';
      }
      open.secure.leave(participantId);
    } else if (open && open.selected.has(participantId) && !open.settled.has(participantId)) {
      open.settled.add(participantId);
      open.dropped++;
      record.state = 'dropped';
      this.closeRoundIfSettled();
    }
    this.options.transport.statusChanged();
  }

  /**
   * A secure aggregation message from a selected participant. Never throws:
   * a message the core refuses excludes its sender from the round.
   */
  async submitSecAgg(
    participantId: string,
    step: SecAggStep,
    message: AdvertiseKeysMessage | ShareKeysMessage | MaskedInputMessage | UnmaskResponseMessage,
  ): Promise<Ack<SecAggAccepted>> {
    const record = this.participants.get(participantId);
    if (!record) return this.rejected(ackError(ErrorCode.NotJoined, 'join before sending secure aggregation messages'));
    if (this.phase === 'done') return this.rejected(ackError(ErrorCode.FederationDone, `the federation has finished: ${this.doneReason}`));
    const open = this.open;
    if (!open?.secure || open.round !== message.round || this.phase !== 'training') {
      return this.rejected(ackError(ErrorCode.WrongRound, `secure aggregation message for round ${message.round} refused: no such round is open`));
    }
    const result = await open.secure.submit(participantId, step, message);
    if (!result.ok) {
      this.rejected(result);
      this.options.transport.statusChanged();
    } else if (step === 'masked') {
      // The masked vector is what replaces the update on the wire: count its bytes as the round's input.
      open.bytesIn += (message as MaskedInputMessage).masked.byteLength;
    }
    return result;
  }

  /** Validates and accumulates one update. Never throws on bad input: it answers with a coded error. */
  submitUpdate(participantId: string, message: UpdateMessage): Ack<UpdateAccepted> {
    const result = this.acceptUpdate(participantId, message);
    if (!result.ok) {
      this.rejections[result.error.code] = (this.rejections[result.error.code] ?? 0) + 1;
      this.options.transport.statusChanged();
    }
    return result;
  }

  /**
   * A selected participant will not train this round (its privacy budget is
   * spent, say). The round stops waiting for it; with `final` it is never
   * selected again.
   */
  decline(participantId: string, message: DeclineMessage): Ack<{ readonly round: number }> {
    const record = this.participants.get(participantId);
    if (!record) return this.rejected(ackError(ErrorCode.NotJoined, 'join before declining rounds'));
    // A participant that will never train again retires whatever the state of the round.
    if (message.final) {
      record.retired = true;
      record.declined = message.reason;
    }
    this.options.transport.statusChanged();
    if (this.phase === 'done') return this.rejected(ackError(ErrorCode.FederationDone, `the federation has finished: ${this.doneReason}`));
    const open = this.open;
    if (!open || open.round !== message.round || this.phase !== 'training') {
      return this.rejected(ackError(ErrorCode.WrongRound, `round ${message.round} is not collecting answers`));
    }
    if (!open.selected.has(participantId)) return this.rejected(ackError(ErrorCode.NotSelected, `not selected for round ${open.round}`));
    if (open.settled.has(participantId)) return this.rejected(ackError(ErrorCode.NotSelected, `no longer part of round ${open.round} (${record.state})`));
    open.settled.add(participantId);
    open.declined++;
    record.state = 'declined';
    record.declined = message.reason;
    record.progress = undefined;
    this.options.transport.statusChanged();
    if (open.secure) open.secure.leave(participantId);
    else this.closeRoundIfSettled();
    return ackOk({ round: open.round });
  }

  private rejected<T>(result: Ack<T>): Ack<T> {
    if (!result.ok) this.rejections[result.error.code] = (this.rejections[result.error.code] ?? 0) + 1;
    return result;
  }

  /** Takes a selected participant out of the open round (its request was unusable), so the round need not wait for it. */
  excludeFromOpenRound(participantId: string): void {
    const record = this.participants.get(participantId);
    const open = this.open;
    if (!record || !open || this.phase !== 'training' || !open.selected.has(participantId)) return;
    if (open.secure) {
      open.secure.exclude(participantId);
      return;
    }
    if (open.settled.has(participantId)) return;
    this.excludeFromRound(record, open, ackOk(undefined));
  }

  /** Records a participant's training progress for the dashboard. Ignored unless it is training in the open round. */
  reportProgress(participantId: string, message: ProgressMessage): void {
    const record = this.participants.get(participantId);
    const open = this.open;
    if (!record || !open || message.round !== open.round || !open.selected.has(participantId) || open.settled.has(participantId)) return;
    record.state = 'training';
    record.progress = message.fraction;
    this.options.transport.statusChanged();
  }

  /** Counts a request rejected before it reached the engine (bad payload, unknown event). */
  countRejection(code: ErrorCode): void {
    this.rejections[code] = (this.rejections[code] ?? 0) + 1;
    this.options.transport.statusChanged();
  }

  status(): FederationStatus {
    const participants: ParticipantStatus[] = [];
    for (const p of this.participants.values()) {
      participants.push({
        id: p.id,
        connected: p.connected,
        backend: p.info.backend,
        adapter: p.info.adapter,
        platform: p.info.platform,
        numExamples: p.info.numExamples,
        state: p.retired ? 'retired' : p.state,
        roundsContributed: p.roundsContributed,
        progress: p.progress,
        lastLatencyMs: p.lastLatencyMs,
        epsilon: p.epsilon,
        declined: p.declined,
      });
    }
    return {
      task: this.options.task,
      strategy: this.options.strategy.name,
      settings: this.options.settings,
      round: this.currentRound,
      phase: this.phase,
      modelVersion: this.model.version,
      done: this.phase === 'done',
      doneReason: this.doneReason,
      waitingFor: this.waitingFor(),
      privacy: this.options.strategy.privacy?.(),
      participants,
      history: [...this.history],
      rejections: { ...this.rejections },
      startedAt: this.startedAt,
    };
  }

  private makeId(): string {
    this.idCounter++;
    const suffix = Math.floor(this.options.random.next() * 0x100000000).toString(16).padStart(8, '0');
    return `p${this.idCounter}-${suffix}`;
  }

  private eligible(): ParticipantRecord[] {
    return [...this.participants.values()].filter((p) => p.connected && !p.retired && p.state !== 'dropped' && !this.open?.selected.has(p.id));
  }

  private waitingFor(): string | undefined {
    if (this.phase !== 'waiting') return undefined;
    if (!this.started) return 'the federation to be started';
    const have = this.eligible().length;
    const need = this.options.settings.minClients;
    if (have < need) return `participants: ${have} available (connected, not retired), at least ${need} needed`;
    return undefined;
  }

  private maybeStartRound(): void {
    if (!this.started || this.phase !== 'waiting' || this.open || this.starting) return;
    if (this.eligible().length < this.options.settings.minClients) {
      this.options.transport.statusChanged();
      return;
    }
    const permitted = this.options.strategy.canStartRound?.() ?? { ok: true };
    if (!permitted.ok) {
      this.finish(permitted.reason);
      return;
    }
    const round = this.lastRound + 1;
    const persist = this.options.onRoundStarting;
    if (!persist) {
      this.openRound(round);
      return;
    }
    this.starting = true;
    Promise.resolve(persist(round)).then(
      () => {
        this.starting = false;
        this.openRound(round);
      },
      (error: unknown) => {
        this.starting = false;
        console.error(`round ${round}: could not record its start, retrying in 1 s:`, error);
        this.options.clock.setTimer(1000, () => this.maybeStartRound());
      },
    );
  }

  /** The deadline of the next round: fixed, or adapted to how long participants took lately. */
  private roundDeadlineMs(): number {
    const { roundTimeoutMs, adaptiveDeadline } = this.options.settings;
    if (!adaptiveDeadline || this.recentLatencies.length < 5) return roundTimeoutMs;
    const sorted = [...this.recentLatencies].sort((a, b) => a - b);
    const p90 = sorted[Math.min(sorted.length - 1, Math.floor(0.9 * sorted.length))]!;
    return Math.min(roundTimeoutMs, Math.max(MIN_ADAPTIVE_DEADLINE_MS, 3 * p90));
  }

  private openRound(round: number): void {
    if (!this.started || this.phase !== 'waiting' || this.open) return;
    const { settings, strategy, clock, transport } = this.options;
    const candidates = this.eligible();
    if (candidates.length < settings.minClients) {
      // Everyone left while the round number was being recorded: that number is used up.
      this.lastRound = round;
      transport.statusChanged();
      return;
    }
    // Over-selection: ask a few more than needed, so dropouts still leave enough updates.
    const wanted = Math.ceil(settings.clientsPerRound * (1 + (settings.overSelect ?? 0)));
    const chosen = strategy.select ? strategy.select(candidates, wanted, this.options.random) : sample(candidates, wanted, this.options.random);
    const fit: FitConfig = strategy.configureFit(round, settings.fit);
    const startedAt = clock.now();
    const model = this.model;
    const secureSettings = settings.secureAggregation;
    // With secure aggregation each step has its own deadline; the round's timer is only a safety net.
    const deadlineMs = secureSettings ? settings.roundTimeoutMs + 3 * secureSettings.stepTimeoutMs + 1000 : this.roundDeadlineMs();
    const timer = clock.setTimer(deadlineMs, () => this.onDeadline(round));
    const secure = secureSettings
      ? new SecureRound(
          secAggConfigFor(round, chosen.length, model.weights.length, secureSettings),
          chosen.map((p) => p.id),
          this.secureHost(round),
          { stepMs: secureSettings.stepTimeoutMs, maskedMs: settings.roundTimeoutMs },
        )
      : undefined;
    this.open = {
      secure,
      round,
      startedAt,
      baseVersion: model.version,
      selected: new Set(chosen.map((p) => p.id)),
      aggregator: strategy.beginRound({ round, globalWeights: model.weights }),
      timer,
      settled: new Set(),
      received: 0,
      dropped: 0,
      rejected: 0,
      declined: 0,
      bytesIn: 0,
      bytesOut: model.frame.byteLength * chosen.length,
    };
    this.phase = 'training';
    const message: RoundStartMessage = {
      round,
      model: { version: model.version, weights: model.frame },
      config: fit,
      deadline: startedAt + deadlineMs,
    };
    for (const p of chosen) {
      p.state = 'selected';
      p.progress = 0;
      transport.sendRoundStart(p.id, secure ? { ...message, secagg: secure.roundInfo(p.id) } : message);
    }
    transport.statusChanged();
    // Sampling may select nobody; such a round closes at once (a secure round aborts by itself).
    if (!secure) this.closeRoundIfSettled();
  }

  /** How a SecureRound reaches participants and reports back to the open round. */
  private secureHost(round: number): ConstructorParameters<typeof SecureRound>[2] {
    const current = () => (this.open?.round === round && this.phase === 'training' ? this.open : undefined);
    return {
      clock: this.options.clock,
      send: (participantId, out) => {
        if (!this.options.transport.sendSecAgg) throw new Error('this transport cannot carry secure aggregation');
        this.options.transport.sendSecAgg(participantId, out);
      },
      out: (participantId, why) => {
        const open = current();
        const record = this.participants.get(participantId);
        if (!open || !record || open.settled.has(participantId)) return;
        open.settled.add(participantId);
        if (why === 'timeout') open.dropped++;
        else open.rejected++;
        record.state = 'dropped';
        record.progress = undefined;
        this.options.transport.statusChanged();
      },
      accepted: (participantId, step) => {
        const open = current();
        const record = this.participants.get(participantId);
        if (!open || !record) return;
        if (step === 'masked') {
          record.state = 'uploaded';
          record.progress = undefined;
          record.lastLatencyMs = this.options.clock.now() - open.startedAt;
        }
        this.options.transport.statusChanged();
      },
      observeMasked: this.options.secaggObserver?.masked ? (participantId, masked) => this.options.secaggObserver!.masked!(round, participantId, masked) : undefined,
      done: (outcome) => {
        const open = current();
        if (!open) return;
        open.secureOutcome = outcome;
        if (outcome.ok) this.options.secaggObserver?.finished?.(round, outcome.result, outcome.contributors);
        this.phase = 'aggregating';
        this.options.clock.setTimer(0, () => void this.closeRound(open));
      },
    };
  }

  private acceptUpdate(participantId: string, message: UpdateMessage): Ack<UpdateAccepted> {
    const record = this.participants.get(participantId);
    if (!record) return ackError(ErrorCode.NotJoined, 'join before sending updates');
    if (this.phase === 'done') return ackError(ErrorCode.FederationDone, `the federation has finished: ${this.doneReason}`);
    const open = this.open;
    if (!open || message.round !== open.round || this.phase !== 'training') {
      const current = open && this.phase === 'training' ? `round ${open.round} is collecting updates` : 'no round is collecting updates';
      return ackError(ErrorCode.WrongRound, `update for round ${message.round} refused: ${current}`);
    }
    if (!open.selected.has(participantId)) return ackError(ErrorCode.NotSelected, `not selected for round ${open.round}`);
    if (open.secure) {
      open.secure.exclude(participantId);
      return ackError(ErrorCode.NotSelected, `round ${open.round} uses secure aggregation: plain updates are refused (send secagg:masked)`);
    }
    if (open.settled.has(participantId)) {
      return record.state === 'uploaded'
        ? ackError(ErrorCode.DuplicateUpdate, `an update for round ${open.round} was already received`)
        : ackError(ErrorCode.NotSelected, `no longer part of round ${open.round} (${record.state})`);
    }
    if (message.baseVersion !== open.baseVersion) {
      return this.excludeFromRound(record, open, ackError(ErrorCode.StaleModel, `update trained from model ${message.baseVersion}, round ${open.round} uses model ${open.baseVersion}`));
    }
    let update: Float32Array;
    try {
      update = decodeFrame(message.update, { kind: FrameKind.Update, expectedCount: this.model.weights.length });
    } catch (error) {
      if (error instanceof ProtocolError) return this.excludeFromRound(record, open, ackError(error.code, error.message));
      throw error;
    }
    try {
      open.aggregator.add({ participantId, numExamples: message.numExamples, update });
    } catch (error) {
      if (error instanceof ProtocolError) return this.excludeFromRound(record, open, ackError(error.code, error.message));
      throw error;
    }
    open.settled.add(participantId);
    open.received++;
    open.bytesIn += message.update.byteLength;
    record.state = 'uploaded';
    record.progress = undefined;
    record.roundsContributed++;
    record.lastLatencyMs = this.options.clock.now() - open.startedAt;
    this.recentLatencies.push(record.lastLatencyMs);
    if (this.recentLatencies.length > 100) this.recentLatencies.shift();
    if (message.epsilon !== undefined) record.epsilon = message.epsilon;
    const received = open.received;
    this.options.transport.statusChanged();
    this.closeRoundIfSettled();
    return ackOk({ round: message.round, received });
  }

  /** A selected participant whose update is unusable is out of this round, so the round need not wait for it. */
  private excludeFromRound<T>(record: ParticipantRecord, open: OpenRound, result: Ack<T>): Ack<T> {
    open.settled.add(record.id);
    open.rejected++;
    record.state = 'dropped';
    record.progress = undefined;
    this.closeRoundIfSettled();
    return result;
  }

  private closeRoundIfSettled(): void {
    const open = this.open;
    if (open && this.phase === 'training' && open.settled.size >= open.selected.size) {
      // Closing evaluates the model; the last sender's acknowledgement must not wait for that.
      this.phase = 'aggregating';
      this.options.clock.setTimer(0, () => void this.closeRound(open));
    }
  }

  private onDeadline(round: number): void {
    const open = this.open;
    if (!open || open.round !== round || this.phase !== 'training') return;
    if (open.secure) {
      open.secure.abort(`the round deadline passed`);
      return;
    }
    for (const id of open.selected) {
      if (open.settled.has(id)) continue;
      open.settled.add(id);
      open.dropped++;
      const record = this.participants.get(id);
      if (record) {
        record.state = 'dropped';
        record.progress = undefined;
      }
    }
    void this.closeRound(open);
  }

  private async closeRound(open: OpenRound): Promise<void> {
    if (this.open !== open || this.isDone) return; // stopped before the deferred close ran
    const { clock, settings, transport, evaluator } = this.options;
    clock.clear(open.timer);
    this.phase = 'aggregating';
    transport.statusChanged();
    const base = {
      round: open.round,
      selected: open.selected.size,
      received: open.received,
      dropped: open.dropped,
      rejected: open.rejected,
      declined: open.declined,
      bytesIn: open.bytesIn,
      bytesOut: open.bytesOut,
      startedAt: open.startedAt,
    };
    let record: RoundRecord;
    let secagg: SecAggRoundStats | undefined;
    let secureFailure: string | undefined;
    if (open.secure) {
      secagg = open.secure.stats;
      const outcome = open.secureOutcome;
      if (outcome?.ok) {
        if (!open.aggregator.addSum) throw new Error(`strategy ${this.options.strategy.name} cannot aggregate a secure sum`);
        // The decoded sum of the contributors' clipped (and, with distributed DP, noised) updates; each counts once.
        open.aggregator.addSum(outcome.result.sum, outcome.contributors.length);
        open.received = outcome.contributors.length;
        base.received = open.received;
        for (const id of outcome.contributors) {
          const p = this.participants.get(id);
          if (p) p.roundsContributed++;
        }
      } else {
        secureFailure = outcome?.reason ?? 'secure aggregation did not finish';
      }
    }
    const enough = secureFailure === undefined && (open.received >= settings.minUpdates || this.options.strategy.releasesEveryRound === true);
    const weights = enough ? open.aggregator.finish() : null;
    if (!enough) open.aggregator.abandon?.();
    if (weights === null) {
      const reason =
        secureFailure !== undefined
          ? `${secureFailure}; the model is unchanged`
          : `only ${open.received} of at least ${settings.minUpdates} updates arrived (${open.dropped} dropped, ${open.rejected} rejected, ${open.declined} declined); the model is unchanged`;
      record = { ...base, outcome: 'skipped', reason, modelVersion: this.model.version, durationMs: clock.now() - open.startedAt, privacy: this.options.strategy.privacy?.(), secagg };
    } else {
      this.phase = 'evaluating';
      transport.statusChanged();
      let metrics: EvalMetrics | undefined;
      try {
        metrics = await evaluator.evaluate(weights);
      } catch (error) {
        console.error(`round ${open.round}: evaluation failed:`, error);
      }
      if (this.open !== open) return; // stopped while evaluating
      this.model = makeModel(this.model.version + 1, weights);
      record = {
        ...base,
        outcome: 'aggregated',
        modelVersion: this.model.version,
        metrics,
        durationMs: clock.now() - open.startedAt,
        privacy: this.options.strategy.privacy?.(),
        secagg,
      };
    }
    this.open = undefined;
    this.lastRound = open.round;
    this.history.push(record);
    for (const id of open.selected) {
      const p = this.participants.get(id);
      if (p && p.connected) p.state = 'idle';
      if (p) p.progress = undefined;
    }
    if (this.options.onRoundCompleted) {
      try {
        await this.options.onRoundCompleted(record, this.model, this.history);
      } catch (error) {
        console.error(`round ${open.round}: saving the checkpoint failed:`, error);
      }
      // Stopped while saving: federation:done has gone out, nothing more may follow it.
      if (this.isDone) return;
    }
    transport.broadcastRoundEnd({
      round: record.round,
      outcome: record.outcome,
      reason: record.reason,
      modelVersion: record.modelVersion,
      metrics: record.metrics,
    });
    const target = settings.targetAccuracy;
    if (target !== undefined && record.metrics && record.metrics.accuracy >= target) {
      this.finish(`target accuracy ${target} reached in round ${record.round} (accuracy ${record.metrics.accuracy.toFixed(4)})`);
    } else if (record.round >= settings.rounds) {
      this.finish(`completed ${settings.rounds} rounds`);
    } else {
      this.phase = 'waiting';
      transport.statusChanged();
      // Start the next round from a fresh stack, after the messages above went out.
      clock.setTimer(0, () => this.maybeStartRound());
    }
  }

  private finish(reason: string): void {
    if (this.phase === 'done') return;
    this.phase = 'done';
    this.doneReason = reason;
    const last = this.history.at(-1);
    this.options.transport.broadcastDone({ reason, round: this.lastRound, metrics: last?.metrics });
    this.options.transport.statusChanged();
    this.resolveDone(this.status());
  }
}

/** The adaptive deadline never drops below this, however fast participants were. */
const MIN_ADAPTIVE_DEADLINE_MS = 5000;

function makeModel(version: number, weights: Float32Array): GlobalModel {
  return { version, weights, frame: encodeFrame(FrameKind.Weights, weights) };
}
