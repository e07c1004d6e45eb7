import { createHash } from 'node:crypto';
import { guardAggregate } from '../../core/aggregation/aggregate-guard.ts';
import { DpFedAvg } from '../../core/aggregation/dp-fedavg.ts';
import { TrimmedMean } from '../../core/aggregation/robust.ts';
import type { RoundAggregator, Strategy } from '../../core/aggregation/strategy.ts';
import { findStrategy } from '../../core/aggregation/wrapper.ts';
import { clientDpAnnouncement } from '../../core/privacy/client-ledger.ts';
import { l2Norm } from '../../core/privacy/update-privacy.ts';
import { maxParticipants } from '../../core/secagg/quantize.ts';
import { countSumRejections } from '../../core/secagg/sum-range.ts';
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
  ControlAccepted,
  FederationControl,
  FederationStatus,
  ParticipantState,
  ParticipantStatus,
  RoundParticipantOutcome,
  RoundParticipantRecord,
  RoundPhase,
  RoundRecord,
  RoundSettings,
  SettingsChange,
  UpdateNormStats,
} from '../../core/protocol/status.ts';
import type { UniformSource } from '../../core/random/prng.ts';
import { decodeFrame, encodeFrame, FrameKind } from '../../core/wire/frame.ts';
import type { Clock, TimerHandle } from './clock.ts';
import type { SecAggAccepted } from '../../core/protocol/messages.ts';
import type { PrivacyReport } from '../../core/aggregation/strategy.ts';
import type { SecAggRoundStats, StorageFailure } from '../../core/protocol/status.ts';
import { bestRound, roundsWithoutImprovement } from './best-round.ts';
import { saveWithRetry, storageFailureText, type RetryPolicy, type SaveOutcome } from './durable-commit.ts';
import type { AdvertiseKeysMessage, MaskedInputMessage, SecAggResult, ShareKeysMessage, UnmaskResponseMessage } from '../../core/secagg/protocol.ts';
import { secAggConfigFor, SecureRound, type SecAggOutbound, type SecAggStep, type SecureRoundOutcome } from './secure-round.ts';
import { DepartedParticipants } from './participant-registry.ts';
import { quorumMet } from './quorum.ts';
import { DeliveryRecord, hasOwnSelection, weightedSample } from './selection.ts';

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
 * Called after every closed round, aggregated or skipped, with the round's
 * model and the history including the round, before anything shows them
 * (status, downloads, round:end): persistence hooks in here. A throw means
 * not saved: it is retried, then the federation pauses (durable-commit.ts).
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
  /** SHA-256 (hex) of the weights' bytes, as weights.bin stores them. */
  readonly hash: string;
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
  /** Failed saves: how often to retry before pausing (durable-commit.ts DEFAULT_RETRY). */
  readonly saveRetry?: RetryPolicy;
  /** Where save failures are reported (console.error by default). */
  readonly logError?: (line: string) => void;
  /** A participant that left is forgotten after this long (participant-registry.ts); default 120 s. */
  readonly participantGraceMs?: number;
  /** Called when a participant's record is forgotten (the server drops its rejoin secret). */
  readonly onParticipantForgotten?: (participantId: string) => void;
}

/** Departed participants kept at most, whatever their grace: bounds memory and the status under churn. */
export const MAX_DEPARTED_PARTICIPANTS = 1000;
/** Participants listed one by one in the dashboard status; the rest are counted (participantTotals). */
export const STATUS_PARTICIPANTS_LISTED = 200;

/** A closed round whose record and model exist but are not saved yet: nothing outside the engine sees them. */
interface RoundCandidate {
  readonly open: OpenRound;
  readonly record: RoundRecord;
  readonly model: GlobalModel;
}

/** What a paused-on-storage-failure federation still has to save before it may go on. */
type UnsavedState = { readonly kind: 'round'; readonly candidate: RoundCandidate } | { readonly kind: 'round-start'; readonly round: number };

interface ParticipantRecord {
  readonly id: string;
  /** Whose delivery record it builds (selection.ts): its credential, or its id. */
  readonly deliveryKey: string;
  info: ClientInfo;
  connected: boolean;
  state: ParticipantState;
  roundsContributed: number;
  progress?: number;
  lastLatencyMs?: number;
  epsilon?: number;
  declined?: string;
  lastUpdateNorm?: number;
  /** Declined for good (its privacy budget is spent): never selected again, whatever else happens. */
  retired: boolean;
}

/** How a selected participant's part in the open round ended, and when. */
interface Settlement {
  readonly outcome: RoundParticipantOutcome;
  readonly at: number;
  readonly reason?: string;
  readonly norm?: number;
}

interface OpenRound {
  readonly round: number;
  readonly startedAt: number;
  readonly baseVersion: number;
  readonly selected: ReadonlySet<string>;
  readonly aggregator: RoundAggregator;
  readonly timer: TimerHandle;
  /** Plain updates accepted so far (the acknowledgement reports it); the round's tallies come from `settlements`. */
  received: number;
  bytesIn: number;
  readonly bytesOut: number;
  /** Rounds with secure aggregation. */
  readonly secure?: SecureRound;
  secureOutcome?: SecureRoundOutcome;
  readonly fit: FitConfig;
  readonly clientsPerRound: number;
  readonly deadlineMs: number;
  /** Per selected participant who is out of the waiting: how its part ended (the round's timeline). */
  readonly settlements: Map<string, Settlement>;
  readonly rejectionCodes: Record<string, number>;
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
  /** Pause: the open round finishes, no new one opens until resume. */
  private paused = false;
  /** The operator stopped the federation; it finishes once the open round is closed. */
  private stopReason: string | undefined;
  /** Settings as they now are: the operator may change some between rounds. */
  private settings: RoundSettings;
  private doneReason: string | undefined;
  private readonly startedAt: number;
  private idCounter = 0;
  /** A round number is being recorded; no other round may start meanwhile. */
  private starting = false;
  /** Who delivered when selected (selection.ts). */
  private readonly deliveries = new DeliveryRecord();
  private readonly departed: DepartedParticipants;
  /** Contributors whose records were forgotten after they left (they stay in the round history). */
  private departedContributors = 0;
  /** Latencies of recent updates, for the adaptive deadline. */
  private readonly recentLatencies: number[] = [];
  /** Saving failed after its retries: the federation is paused until the operator resumes and the save succeeds. */
  private unsaved: UnsavedState | undefined;
  private storageFailure: StorageFailure | undefined;
  /** The operator's resume is retrying the save: a second resume waits for it. */
  private retryingSave = false;
  /** Privacy as of the last saved round: the accountant is charged before the save, but shown only after it. */
  private shownPrivacy: PrivacyReport | undefined;
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
    this.settings = options.settings;
    this.shownPrivacy = options.strategy.privacy?.();
    this.departed = new DepartedParticipants(options.participantGraceMs ?? 120_000, MAX_DEPARTED_PARTICIPANTS);
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

  get control(): FederationControl {
    if (this.phase === 'done' || this.stopReason !== undefined) return 'stopped';
    if (!this.started) return 'awaiting-start';
    return this.paused ? 'paused' : 'running';
  }

  /**
   * An operator's control action. `stop` resolves once the federation has
   * finished (the open round closed, checkpointed and announced).
   */
  async applyControl(action: 'start' | 'pause' | 'resume' | 'stop'): Promise<Ack<ControlAccepted>> {
    const control = this.control;
    // Operator refusals are answered, not counted with the participants' rejected requests.
    const refuse = (why: string) => ackError<ControlAccepted>(ErrorCode.ControlNotAllowed, `cannot ${action}: ${why}`);
    if (control === 'stopped') return refuse(`the federation has stopped${this.doneReason ? ` (${this.doneReason})` : ''}`);
    switch (action) {
      case 'start':
        if (control !== 'awaiting-start') return refuse(`it has already started (${control})`);
        this.start();
        this.options.transport.statusChanged();
        break;
      case 'pause':
        if (control !== 'running') return refuse(control === 'paused' ? 'it is already paused' : 'it has not started yet');
        this.pause();
        break;
      case 'resume':
        if (control !== 'paused') return refuse(control === 'running' ? 'it is not paused' : 'it has not started yet (use start)');
        if (this.unsaved) {
          const failure = await this.retryUnsaved();
          if (failure) return refuse(failure);
          break;
        }
        this.resume();
        break;
      case 'stop':
        await this.stop('stopped by the operator');
        return ackOk({ control: this.control, doneReason: this.doneReason });
    }
    return ackOk({ control: this.control });
  }

  /** The open round finishes normally; no new round opens until resume(). */
  pause(): void {
    if (this.phase === 'done') return;
    this.paused = true;
    this.options.transport.statusChanged();
  }

  resume(): void {
    if (!this.paused) return;
    if (this.unsaved) {
      void this.retryUnsaved();
      return;
    }
    this.paused = false;
    this.options.transport.statusChanged();
    this.maybeStartRound();
  }

  /**
   * Stops for good, closing the open round cleanly: the updates that arrived
   * are aggregated if there are enough (else the round is skipped), the
   * round is checkpointed and announced, then federation:done goes out.
   * A secure round still collecting cannot be decoded: it aborts (skipped).
   */
  stop(reason = 'stopped by the operator'): Promise<FederationStatus> {
    if (this.phase === 'done' || this.stopReason !== undefined) return this.done;
    if (this.unsaved?.kind === 'round') reason += `; round ${this.unsaved.candidate.record.round} could not be saved, so it was never shown or counted`;
    this.stopReason = reason;
    const open = this.open;
    if (!open) {
      this.finish(reason);
    } else if (this.phase === 'training') {
      if (open.secure) {
        open.secure.abort(reason);
      } else {
        this.dropUnsettled(open, reason);
        void this.closeRound(open);
      }
    }
    // Otherwise the round is aggregating or evaluating: closeRound finishes the federation after it.
    this.options.transport.statusChanged();
    return this.done;
  }

  /** Shutdown: abandons the open round without recording it (it keeps its number) and finishes at once. */
  abort(reason: string): void {
    if (this.open) {
      this.open.secure?.abort(reason);
      this.options.clock.clear(this.open.timer);
      if (this.phase === 'training') this.open.aggregator.abandon?.();
      this.open = undefined;
    }
    this.finish(reason);
  }

  /**
   * Changes round settings from the next round on. Checked with the rules of
   * the command-line flags, and refused where the change would make a
   * privacy or secure-aggregation guarantee false; nothing changes then.
   */
  updateSettings(change: SettingsChange): Ack<RoundSettings> {
    const problem = this.settingsProblem(change);
    if (problem !== undefined) return ackError(ErrorCode.InvalidSetting, problem);
    if (this.phase === 'done') return ackError(ErrorCode.ControlNotAllowed, `the federation has finished: ${this.doneReason}`);
    const s = this.settings;
    this.settings = {
      ...s,
      clientsPerRound: change.clientsPerRound ?? s.clientsPerRound,
      roundTimeoutMs: change.roundTimeoutMs ?? s.roundTimeoutMs,
      fit: {
        ...s.fit,
        epochs: change.epochs ?? s.fit.epochs,
        batchSize: change.batchSize ?? s.fit.batchSize,
        learningRate: change.learningRate ?? s.fit.learningRate,
      },
    };
    this.options.transport.statusChanged();
    return ackOk(this.settings);
  }

  private settingsProblem(change: SettingsChange): string | undefined {
    const s = this.settings;
    const positiveInt = (key: keyof SettingsChange, max: number) => {
      const v = change[key];
      if (v !== undefined && !(Number.isInteger(v) && v >= 1 && v <= max)) return `${key} must be an integer in [1, ${max}], got ${v}`;
      return undefined;
    };
    const range =
      positiveInt('clientsPerRound', 100_000) ??
      positiveInt('epochs', 1000) ??
      positiveInt('batchSize', 100_000) ??
      (change.learningRate !== undefined && !(change.learningRate > 0 && change.learningRate <= 100) ? `learningRate must be in (0, 100], got ${change.learningRate}` : undefined) ??
      // At least a second; at most a day (a timer longer than 2^31 ms would fire at once).
      (change.roundTimeoutMs !== undefined && !(change.roundTimeoutMs >= 1000 && change.roundTimeoutMs <= 86_400_000)
        ? `roundTimeoutMs must be between 1000 (1 s) and 86400000 (24 h), got ${change.roundTimeoutMs}`
        : undefined);
    if (range) return range;
    const cpr = change.clientsPerRound;
    const clientDp = findStrategy(this.options.strategy, DpFedAvg);
    const sampleDp = s.fit.sampleDp;
    if (cpr !== undefined && cpr !== s.clientsPerRound) {
      if (cpr < s.minUpdates) return `clientsPerRound (${cpr}) must be at least minUpdates (${s.minUpdates}), as --clients-per-round must be at least --min-updates`;
      if (clientDp) {
        // DP-FedAvg samples each participant with probability q and divides by the fixed m: a count per round is not its to change.
        return 'clientsPerRound cannot change under client-level DP: participants are sampled independently with --client-sample-rate, and the privacy accounting depends on that rate and on --expected-clients, not on a count';
      }
      const trimmed = findStrategy(this.options.strategy, TrimmedMean);
      if (trimmed && trimmed.trimCount(cpr) === 0) {
        const beta = trimmed.trimFraction;
        const need = beta > 0 ? `⌊${beta} × n⌋ ≥ 1 needs at least ⌈1/${beta}⌉ = ${fewestToTrim(trimmed)} clients per round` : 'a trim fraction of 0 trims nothing at any size';
        return `clientsPerRound ${cpr} would make trimmed-mean trim nothing (a plain mean, no robustness): ${need}`;
      }
      const secure = s.secureAggregation;
      if (secure) {
        const selected = Math.ceil(cpr * (1 + (s.overSelect ?? 0)));
        const max = maxParticipants({ clipRange: secure.clipRange, quantizationRange: secure.quantizationRange });
        if (selected > max) return `clientsPerRound ${cpr} (${selected} selected with over-selection) could overflow the mod-2^32 secure sum with quantization range ${secure.quantizationRange}: at most ${max}`;
        if (selected < 3) return `clientsPerRound ${cpr} would select ${selected} participant(s): a secure sum of fewer than three updates reveals them to each other`;
      }
    }
    if (sampleDp) {
      // DP-SGD's ε per round grows with the steps (epochs × n / B): what participants joined for must not change under them.
      if (change.epochs !== undefined && change.epochs !== s.fit.epochs) {
        return `epochs cannot change under DP-SGD: each round costs every participant epochs × n/B noisy steps of its privacy budget, and participants joined for ${s.fit.epochs}`;
      }
      if (change.batchSize !== undefined && change.batchSize !== s.fit.batchSize) {
        return `batchSize cannot change under DP-SGD: batches are Poisson-sampled at the task's expected batch size ${sampleDp.expectedBatchSize}, which sets the sampling rate the accounting uses`;
      }
    }
    return undefined;
  }

  /** Individual update norms may be shown, unless client-level DP or secure aggregation must keep them hidden. */
  private get normsWithheld(): string | undefined {
    if (this.settings.secureAggregation) return 'secure aggregation: the coordinator never sees an individual update';
    if (findStrategy(this.options.strategy, DpFedAvg)) return 'client-level DP: an individual update norm is not covered by the privacy guarantee';
    return undefined;
  }

  /** A participant joined or rejoined. Returns its id (the old one when it is known). */
  join(info: ClientInfo, requestedId?: string, credential?: string): string {
    this.forgetDeparted();
    const existing = requestedId === undefined ? undefined : this.participants.get(requestedId);
    let record: ParticipantRecord;
    if (existing) {
      record = existing;
      this.departed.returned(record.id);
      record.info = info;
      record.connected = true;
      // A participant that dropped out of the open round stays out of it.
      if (!this.open?.selected.has(record.id)) record.state = 'idle';
    } else {
      const id = this.options.newId?.() ?? this.makeId();
      record = { id, deliveryKey: credential ?? id, info, connected: true, state: 'idle', roundsContributed: 0, retired: false };
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
    this.departed.left(participantId, this.options.clock.now());
    this.forgetDeparted();
    const open = this.open;
    if (open && open.selected.has(participantId) && !open.settlements.has(participantId)) {
      record.state = 'dropped';
      this.settle(open, participantId, 'dropped', 'disconnected');
      if (!open.secure) this.closeRoundIfSettled();
    }
    open?.secure?.leave(participantId);
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
    if (open.secure && open.settlements.get(participantId)?.outcome === 'received') {
      // Its masked input is in the sum, so it stays a contributor; the round just stops waiting for its unmasking answer.
      open.secure.leave(participantId);
      return ackOk({ round: open.round });
    }
    if (open.settlements.has(participantId)) return this.rejected(ackError(ErrorCode.NotSelected, `no longer part of round ${open.round} (${record.state})`));
    this.settle(open, participantId, 'declined', message.reason);
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
    if (open.settlements.has(participantId)) return;
    this.excludeFromRound(record, open, ackOk(undefined));
  }

  /** Records a participant's training progress for the dashboard. Ignored unless it is training in the open round. */
  reportProgress(participantId: string, message: ProgressMessage): void {
    const record = this.participants.get(participantId);
    const open = this.open;
    if (!record || !open || message.round !== open.round || !open.selected.has(participantId) || open.settlements.has(participantId)) return;
    record.state = 'training';
    record.progress = message.fraction;
    this.options.transport.statusChanged();
  }

  /** A save outside the rounds failed for good (the final report): status and dashboard say so. */
  reportStorageFailure(failure: StorageFailure): void {
    this.storageFailure = failure;
    this.options.transport.statusChanged();
  }

  /** Counts a request rejected before it reached the engine (bad payload, unknown event). */
  countRejection(code: ErrorCode): void {
    this.rejections[code] = (this.rejections[code] ?? 0) + 1;
    this.options.transport.statusChanged();
  }

  /**
   * What dashboards are pushed and `/api/status` returns: `status()` with
   * per-participant timelines only for the last STATUS_TIMELINE_ROUNDS
   * rounds (older rounds keep their counts). One record per selected
   * participant per round would otherwise grow the push without bound.
   */
  dashboardStatus(): FederationStatus {
    this.forgetDeparted();
    const status = this.status();
    const firstKept = status.history.length - STATUS_TIMELINE_ROUNDS;
    // Connected participants first; the list is cut at STATUS_PARTICIPANTS_LISTED, participantTotals counts them all.
    const connected = status.participants.filter((p) => p.connected);
    const listed = connected.length >= STATUS_PARTICIPANTS_LISTED ? connected.slice(0, STATUS_PARTICIPANTS_LISTED) : connected.concat(status.participants.filter((p) => !p.connected).slice(0, STATUS_PARTICIPANTS_LISTED - connected.length));
    return {
      ...status,
      participants: listed,
      participantTotals: { ...status.participantTotals!, listed: listed.length },
      history: status.history.map((r, i) => (i >= firstKept ? r : withoutTimeline(r))),
    };
  }

  /** The whole state, every round's timeline included: for the run report, the CSV and the final result. */
  status(): FederationStatus {
    const participants: ParticipantStatus[] = [];
    for (const p of this.participants.values()) {
      participants.push({
        id: p.id,
        connected: p.connected,
        backend: p.info.backend,
        adapter: p.info.adapter,
        threads: p.info.threads,
        platform: p.info.platform,
        numExamples: p.info.numExamples,
        state: p.retired ? 'retired' : p.state,
        roundsContributed: p.roundsContributed,
        progress: p.progress,
        lastLatencyMs: p.lastLatencyMs,
        epsilon: p.epsilon,
        declined: p.declined,
        lastUpdateNorm: p.lastUpdateNorm,
      });
    }
    const withheld = this.normsWithheld;
    return {
      task: this.options.task,
      strategy: this.options.strategy.name,
      settings: this.settings,
      control: this.control,
      updateNormsShown: withheld === undefined,
      updateNormsWithheld: withheld,
      round: this.currentRound,
      phase: this.phase,
      modelVersion: this.model.version,
      modelHash: this.model.hash,
      done: this.phase === 'done',
      doneReason: this.doneReason,
      waitingFor: this.waitingFor(),
      privacy: this.shownPrivacy,
      participants,
      participantTotals: {
        known: participants.length,
        connected: participants.filter((p) => p.connected).length,
        listed: participants.length,
        departedContributors: this.departedContributors,
      },
      history: [...this.history],
      rejections: { ...this.rejections },
      secureSumRejections: this.settings.secureAggregation ? countSumRejections(this.history) : undefined,
      startedAt: this.startedAt,
      best: this.bestSummary(),
      ...(this.storageFailure ? { storageFailure: this.storageFailure } : {}),
    };
  }

  private bestSummary(): FederationStatus['best'] {
    const best = bestRound(this.history);
    if (!best?.metrics) return undefined;
    return { round: best.round, modelVersion: best.modelVersion, modelHash: best.modelHash, metrics: best.metrics, roundsSince: roundsWithoutImprovement(this.history) };
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
    if (!this.started) return 'the operator to start the federation';
    if (this.storageFailure) return `the operator to resume once the folder is writable again: ${storageFailureText(this.storageFailure)}`;
    if (this.paused) return 'the operator to resume (paused)';
    const have = this.eligible().length;
    const need = this.settings.minClients;
    if (have < need) return `participants: ${have} available (connected, not retired), at least ${need} needed`;
    return undefined;
  }

  private maybeStartRound(): void {
    if (!this.started || this.paused || this.stopReason !== undefined || this.phase !== 'waiting' || this.open || this.starting) return;
    if (this.eligible().length < this.settings.minClients) {
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
    void this.saveDurably(`the start of round ${round} (started.json)`, () => persist(round)).then((outcome) => {
      this.starting = false;
      if (this.isDone) return;
      if (outcome.ok) this.openRound(round);
      else this.holdUnsaved({ kind: 'round-start', round }, outcome.failure);
    });
  }

  /** One save, retried with backoff (durable-commit.ts); `attempts` 1 for the operator's own retry. */
  private saveDurably(what: string, save: () => Promise<void> | void, attempts?: number): Promise<SaveOutcome> {
    const { clock } = this.options;
    const policy = this.options.saveRetry;
    return saveWithRetry({
      what,
      save,
      wait: (ms) => new Promise((resolve) => clock.setTimer(ms, () => resolve())),
      now: () => clock.now(),
      policy: attempts === undefined ? policy : { firstDelayMs: 0, maxDelayMs: 0, ...policy, attempts },
      onRetry: (failure, delayMs) => this.logError(`${storageFailureText(failure)}; trying again in ${delayMs} ms`),
    });
  }

  private logError(line: string): void {
    (this.options.logError ?? console.error)(line);
  }

  /** Saves a closed round with its model and the history up to it. */
  private saveRound(candidate: RoundCandidate, attempts?: number): Promise<SaveOutcome> {
    const persist = this.options.onRoundCompleted;
    if (!persist) return Promise.resolve({ ok: true });
    const { record, model } = candidate;
    return this.saveDurably(`round ${record.round} (checkpoint, history, model files)`, () => persist(record, model, [...this.history, record]), attempts);
  }

  /**
   * A save failed for good: pause, say so (status, dashboard, log), and keep
   * what is unsaved out of sight until the operator's resume saves it.
   */
  private holdUnsaved(unsaved: UnsavedState, failure: StorageFailure): void {
    this.unsaved = unsaved;
    this.storageFailure = failure;
    this.paused = true;
    if (unsaved.kind === 'round') {
      if (this.open === unsaved.candidate.open) this.open = undefined;
      // Its number is used up (started.json has it) whether or not it is ever saved.
      this.lastRound = unsaved.candidate.record.round;
    }
    this.phase = 'waiting';
    const held = unsaved.kind === 'round' ? `round ${unsaved.candidate.record.round} is not shown or announced until it is saved` : `round ${unsaved.round} does not start until its number is saved`;
    this.logError(`${storageFailureText(failure)}. The federation is paused: ${held}. Make the folder writable, then resume.`);
    if (this.stopReason !== undefined) {
      this.finish(unsaved.kind === 'round' ? `${this.stopReason}; round ${unsaved.candidate.record.round} could not be saved, so it was never shown or counted` : this.stopReason);
      return;
    }
    this.options.transport.statusChanged();
  }

  /** The operator's resume after a storage failure: one more try; on success the federation goes on. Returns why not, if not. */
  private async retryUnsaved(): Promise<string | undefined> {
    const unsaved = this.unsaved;
    if (!unsaved) return undefined;
    if (this.retryingSave) return 'a retry of the failed save is already under way';
    this.retryingSave = true;
    let outcome: SaveOutcome;
    try {
      switch (unsaved.kind) {
        case 'round':
          outcome = await this.saveRound(unsaved.candidate, 1);
          break;
        case 'round-start': {
          const persist = this.options.onRoundStarting;
          outcome = persist ? await this.saveDurably(`the start of round ${unsaved.round} (started.json)`, () => persist(unsaved.round), 1) : { ok: true };
          break;
        }
        default:
          throw new Error(`unknown unsaved state ${(unsaved satisfies never) as string}`);
      }
    } finally {
      this.retryingSave = false;
    }
    if (this.isDone || this.unsaved !== unsaved) return 'the federation stopped meanwhile';
    if (!outcome.ok) {
      this.storageFailure = outcome.failure;
      this.logError(`resume refused: ${storageFailureText(outcome.failure)}`);
      this.options.transport.statusChanged();
      return `saving still fails: ${storageFailureText(outcome.failure)}`;
    }
    this.unsaved = undefined;
    this.storageFailure = undefined;
    this.paused = false;
    if (unsaved.kind === 'round') {
      this.publishRound(unsaved.candidate);
    } else {
      this.options.transport.statusChanged();
      this.openRound(unsaved.round);
    }
    return undefined;
  }

  /** The deadline of the next round: fixed, or adapted to how long participants took lately. */
  private roundDeadlineMs(): number {
    const { roundTimeoutMs, adaptiveDeadline } = this.settings;
    if (!adaptiveDeadline || this.recentLatencies.length < 5) return roundTimeoutMs;
    const sorted = [...this.recentLatencies].sort((a, b) => a - b);
    const p90 = sorted[Math.min(sorted.length - 1, Math.floor(0.9 * sorted.length))]!;
    return Math.min(roundTimeoutMs, Math.max(MIN_ADAPTIVE_DEADLINE_MS, 3 * p90));
  }

  private openRound(round: number): void {
    // Paused or stopped while the round number was being recorded: that number is used up.
    if (!this.started || this.phase !== 'waiting' || this.open) return;
    if (this.paused || this.stopReason !== undefined) {
      this.lastRound = round;
      this.options.transport.statusChanged();
      return;
    }
    const { strategy, clock, transport } = this.options;
    const settings = this.settings;
    const candidates = this.eligible();
    if (candidates.length < settings.minClients) {
      // Everyone left while the round number was being recorded: that number is used up.
      this.lastRound = round;
      transport.statusChanged();
      return;
    }
    // Over-selection: ask a few more than needed, so dropouts still leave enough updates.
    const wanted = Math.ceil(settings.clientsPerRound * (1 + (settings.overSelect ?? 0)));
    // A strategy's own selection (client-level DP samples independently) is kept as it is; otherwise reliability-weighted.
    const chosen = hasOwnSelection(strategy)
      ? strategy.select!(candidates, wanted, this.options.random)
      : weightedSample(candidates, wanted, (p) => this.deliveries.weight(p.deliveryKey), this.options.random);
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
          fit.privacy,
        )
      : undefined;
    this.open = {
      secure,
      round,
      startedAt,
      baseVersion: model.version,
      selected: new Set(chosen.map((p) => p.id)),
      aggregator: strategy.beginRound({ round, globalWeights: model.weights, claimedExamples: chosen.map((p) => p.info.numExamples) }),
      timer,
      received: 0,
      bytesIn: 0,
      bytesOut: model.frame.byteLength * chosen.length,
      fit,
      clientsPerRound: settings.clientsPerRound,
      deadlineMs,
      settlements: new Map(),
      rejectionCodes: {},
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
        if (!open || !record || open.settlements.has(participantId)) return;
        if (why === 'timeout') this.settle(open, participantId, 'dropped', 'missed a secure aggregation step deadline');
        else this.settle(open, participantId, 'rejected', `${ErrorCode.SecAggRejected}: excluded for a refused secure aggregation message`, undefined, ErrorCode.SecAggRejected);
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
          // Settled: its update is in the sum from now on, so a later disconnect or exclusion at
          // unmasking must not relabel it. Only an abort takes it out (roundDetails).
          this.settle(open, participantId, 'received');
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
    if (open.settlements.has(participantId)) {
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
    open.received++;
    open.bytesIn += message.update.byteLength;
    const norm = this.normsWithheld === undefined ? l2Norm(update) : undefined;
    this.settle(open, participantId, 'received', undefined, norm);
    if (norm !== undefined) record.lastUpdateNorm = norm;
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
    // Messages can quote an update's norm (UPDATE_TOO_LARGE): only the code where norms are withheld.
    const reason = result.ok ? 'its request could not be used' : this.normsWithheld === undefined ? `${result.error.code}: ${result.error.message}` : result.error.code;
    this.settle(open, record.id, 'rejected', reason, undefined, result.ok ? 'BAD_PAYLOAD' : result.error.code);
    record.state = 'dropped';
    record.progress = undefined;
    this.closeRoundIfSettled();
    return result;
  }

  private closeRoundIfSettled(): void {
    const open = this.open;
    if (!open || this.phase !== 'training') return;
    const quorum = open.secure || hasOwnSelection(this.options.strategy) ? undefined : this.quorumReason(open);
    if (quorum !== undefined) this.dropUnsettled(open, quorum);
    if (open.settlements.size >= open.selected.size) {
      // Closing evaluates the model; the last sender's acknowledgement must not wait for that.
      this.phase = 'aggregating';
      this.options.clock.setTimer(0, () => void this.closeRound(open));
    }
  }

  /** Why a plain round may close before everyone answered (quorum.ts), or undefined. */
  private quorumReason(open: OpenRound): string | undefined {
    return quorumMet({
      selected: open.selected.size,
      received: open.received,
      clientsPerRound: open.clientsPerRound,
      minUpdates: this.settings.minUpdates,
      outstanding: [...open.selected].filter((id) => !open.settlements.has(id)),
      neverDelivered: (id) => {
        const record = this.participants.get(id);
        return record !== undefined && this.deliveries.neverDelivered(record.deliveryKey);
      },
    });
  }

  /** Forgets the records of participants gone longer than the grace period (participant-registry.ts). */
  private forgetDeparted(): void {
    const forgotten = this.departed.expire(this.options.clock.now(), (id) => this.open?.selected.has(id) === true || this.participants.get(id)?.connected === true);
    for (const id of forgotten) {
      const record = this.participants.get(id);
      if (!record || record.connected) continue;
      this.participants.delete(id);
      if (record.roundsContributed > 0) this.departedContributors++;
      if (record.deliveryKey === id) this.deliveries.forget(id);
      this.options.onParticipantForgotten?.(id);
    }
  }

  private onDeadline(round: number): void {
    const open = this.open;
    if (!open || open.round !== round || this.phase !== 'training') return;
    if (open.secure) {
      open.secure.abort(`the round deadline passed`);
      return;
    }
    this.dropUnsettled(open, 'missed the deadline');
    void this.closeRound(open);
  }

  /** Everyone selected who has not answered is out of the round (deadline, stop). */
  private dropUnsettled(open: OpenRound, why: string): void {
    for (const id of open.selected) {
      if (open.settlements.has(id)) continue;
      this.settle(open, id, 'dropped', why);
      const record = this.participants.get(id);
      if (record) {
        record.state = 'dropped';
        record.progress = undefined;
      }
    }
  }

  private settle(open: OpenRound, id: string, outcome: RoundParticipantOutcome, reason?: string, norm?: number, code?: string): void {
    // An accepted update (or masked input) is in the round's sum: nothing that happens later undoes that.
    if (open.settlements.get(id)?.outcome === 'received') return;
    open.settlements.set(id, { outcome, at: this.options.clock.now(), reason, norm });
    if (code !== undefined) open.rejectionCodes[code] = (open.rejectionCodes[code] ?? 0) + 1;
  }

  /**
   * The timeline, rejection codes and norm distribution of a closing round.
   * Secure rounds pass the decoded sum's contributors (empty if it aborted):
   * they, and only they, are `received`, at the time of their masked input.
   */
  private roundDetails(open: OpenRound, contributors?: readonly string[]): Pick<RoundRecord, 'participants' | 'rejectionReasons' | 'updateNorms' | 'applied'> {
    const participants: RoundParticipantRecord[] = [];
    const finalAt = this.options.clock.now();
    const contributed = contributors ? new Set(contributors) : undefined;
    for (const id of open.selected) {
      const s = open.settlements.get(id);
      let outcome: RoundParticipantOutcome = s?.outcome ?? 'dropped';
      let reason = s ? s.reason : 'no answer before the round closed';
      if (contributed?.has(id)) {
        outcome = 'received';
        reason = undefined;
      } else if (contributed && outcome === 'received') {
        outcome = 'dropped';
        reason = contributed.size === 0 ? 'its masked input was never unmasked: the secure round aborted' : 'its masked input was not part of the decoded sum';
      }
      participants.push({
        id,
        outcome,
        durationMs: (s?.at ?? finalAt) - open.startedAt,
        ...(reason !== undefined ? { reason } : {}),
        ...(s?.norm !== undefined ? { updateNorm: s.norm } : {}),
      });
    }
    const norms = participants.flatMap((p) => (p.updateNorm === undefined ? [] : [p.updateNorm]));
    return {
      participants,
      rejectionReasons: { ...open.rejectionCodes },
      updateNorms: norms.length > 0 ? normStats(norms, open.fit) : undefined,
      applied: {
        clientsPerRound: open.clientsPerRound,
        epochs: open.fit.epochs,
        batchSize: open.fit.batchSize,
        learningRate: open.fit.learningRate,
        deadlineMs: open.deadlineMs,
      },
    };
  }

  private async closeRound(open: OpenRound): Promise<void> {
    if (this.open !== open || this.isDone) return; // stopped before the deferred close ran
    const { clock, transport, evaluator } = this.options;
    const settings = this.settings;
    clock.clear(open.timer);
    this.phase = 'aggregating';
    transport.statusChanged();
    let record: RoundRecord;
    let secagg: SecAggRoundStats | undefined;
    let secureFailure: string | undefined;
    let contributors: readonly string[] | undefined;
    if (open.secure) {
      secagg = open.secure.stats;
      const outcome = open.secureOutcome;
      contributors = outcome?.ok ? outcome.contributors : [];
      if (outcome?.ok) {
        if (!open.aggregator.addSum) throw new Error(`strategy ${this.options.strategy.name} cannot aggregate a secure sum`);
        // The decoded sum of the contributors' clipped (and, with distributed DP, noised) updates; each counts once.
        open.aggregator.addSum(outcome.result.sum, outcome.contributors.length);
        for (const id of outcome.contributors) {
          const p = this.participants.get(id);
          if (p) p.roundsContributed++;
        }
      } else {
        secureFailure = outcome?.reason ?? 'secure aggregation did not finish';
      }
    }
    const details = this.roundDetails(open, contributors);
    for (const p of details.participants!) {
      const key = this.participants.get(p.id)?.deliveryKey;
      if (key !== undefined) this.deliveries.record(key, p.outcome === 'declined' ? undefined : p.outcome === 'received');
    }
    // Counted from the timeline, the one record of how each selected participant's part ended.
    const count = (o: RoundParticipantOutcome) => details.participants!.filter((p) => p.outcome === o).length;
    const base = {
      round: open.round,
      selected: open.selected.size,
      received: count('received'),
      dropped: count('dropped'),
      rejected: count('rejected'),
      declined: count('declined'),
      bytesIn: open.bytesIn,
      bytesOut: open.bytesOut,
      startedAt: open.startedAt,
    };
    const enough = secureFailure === undefined && (base.received >= settings.minUpdates || this.options.strategy.releasesEveryRound === true);
    const weights = enough ? open.aggregator.finish() : null;
    if (!enough) open.aggregator.abandon?.();
    let candidate = this.model;
    if (weights === null) {
      const reason =
        secureFailure !== undefined
          ? `${secureFailure}; the model is unchanged`
          : `only ${base.received} of at least ${settings.minUpdates} updates arrived (${base.dropped} dropped, ${base.rejected} rejected, ${base.declined} declined); the model is unchanged`;
      record = {
        ...base,
        outcome: 'skipped',
        reason,
        modelVersion: this.model.version,
        modelHash: this.model.hash,
        durationMs: clock.now() - open.startedAt,
        privacy: this.options.strategy.privacy?.(),
        secagg,
        ...details,
      };
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
      candidate = makeModel(this.model.version + 1, weights);
      record = {
        ...base,
        outcome: 'aggregated',
        modelVersion: candidate.version,
        modelHash: candidate.hash,
        metrics,
        durationMs: clock.now() - open.startedAt,
        privacy: this.options.strategy.privacy?.(),
        secagg,
        ...details,
      };
    }
    // A non-finite or wildly out-of-line aggregate is not committed: the round becomes skipped, the model stays.
    ({ record, model: candidate } = guardAggregate(record, candidate, this.model, this.history));
    // The candidate: the round's record and model exist here and nowhere else. Checks on the aggregate
    // go before this line; from here it is saved first (retried), and shown only once saved.
    const round: RoundCandidate = { open, record, model: candidate };
    const saved = await this.saveRound(round);
    if (this.open !== open || this.isDone) return; // aborted while saving: nothing may follow federation:done
    if (saved.ok) this.publishRound(round);
    else this.holdUnsaved({ kind: 'round', candidate: round }, saved.failure);
  }

  /** A saved round becomes visible: status, downloads and joins get its model, then round:end goes out. */
  private publishRound({ open, record, model }: RoundCandidate): void {
    const { clock, transport } = this.options;
    const settings = this.settings;
    this.model = model;
    this.shownPrivacy = record.privacy ?? this.shownPrivacy;
    if (this.open === open) this.open = undefined;
    this.lastRound = Math.max(this.lastRound, open.round);
    this.history.push(record);
    for (const id of open.selected) {
      const p = this.participants.get(id);
      if (p && p.connected) p.state = 'idle';
      if (p) p.progress = undefined;
    }
    transport.broadcastRoundEnd({
      round: record.round,
      outcome: record.outcome,
      // Under client-level DP how many took part stays with the operator, and skip reasons quote counts.
      reason: findStrategy(this.options.strategy, DpFedAvg) ? undefined : record.reason,
      modelVersion: record.modelVersion,
      metrics: record.metrics,
      clientDp: clientDpAnnouncement(record.privacy),
    });
    const target = settings.targetAccuracy;
    const patience = settings.earlyStoppingPatience;
    const best = patience === undefined ? undefined : this.bestSummary();
    if (this.stopReason !== undefined) {
      this.finish(this.stopReason);
    } else if (target !== undefined && record.metrics && record.metrics.accuracy >= target) {
      this.finish(`target accuracy ${target} reached in round ${record.round} (accuracy ${record.metrics.accuracy.toFixed(4)})`);
    } else if (patience !== undefined && best && best.roundsSince >= patience) {
      this.finish(
        `early stopping: no better test accuracy in the ${best.roundsSince} evaluated rounds since round ${best.round} ` +
          `(patience ${patience}; best accuracy ${best.metrics.accuracy.toFixed(4)}, kept in best/)`,
      );
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
    // A round charged but never saved (stopped while paused on a storage failure) still counts in the final figure.
    this.shownPrivacy = this.options.strategy.privacy?.() ?? this.shownPrivacy;
    const last = this.history.at(-1);
    this.options.transport.broadcastDone({ reason, round: this.lastRound, metrics: last?.metrics });
    this.options.transport.statusChanged();
    this.resolveDone(this.status());
  }
}

/** The smallest n with ⌊β·n⌋ ≥ 1, i.e. ⌈1/β⌉, found with trimCount itself so float rounding agrees with what the round does. */
function fewestToTrim(trimmed: TrimmedMean): number {
  let n = Math.max(1, Math.floor(1 / trimmed.trimFraction) - 1);
  while (trimmed.trimCount(n) === 0) n++;
  return n;
}

/** Rounds whose per-participant timeline the dashboard status carries (the dashboard draws the last 5). */
export const STATUS_TIMELINE_ROUNDS = 10;

function withoutTimeline(record: RoundRecord): RoundRecord {
  if (record.participants === undefined) return record;
  const { participants: _dropped, ...rest } = record;
  return rest;
}

/** The adaptive deadline never drops below this, however fast participants were. */
const MIN_ADAPTIVE_DEADLINE_MS = 5000;

function makeModel(version: number, weights: Float32Array): GlobalModel {
  return { version, weights, hash: weightsHash(weights), frame: encodeFrame(FrameKind.Weights, weights) };
}

/** SHA-256 of float32 weights as little-endian bytes: the same digest as of the weights.bin they are saved to. */
export function weightsHash(weights: Float32Array): string {
  return createHash('sha256').update(new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength)).digest('hex');
}

/** Quantiles by linear interpolation between order statistics (type 7, as numpy's default). */
function quantile(sorted: readonly number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** Relative slack for "arrived at the clip norm": float32 rounding of a clipped update's norm. */
const CLIPPED_TOLERANCE = 1e-4;

function normStats(norms: readonly number[], fit: FitConfig): UpdateNormStats {
  const sorted = [...norms].sort((a, b) => a - b);
  const stats = { count: sorted.length, min: sorted[0]!, p25: quantile(sorted, 0.25), median: quantile(sorted, 0.5), p75: quantile(sorted, 0.75), max: sorted.at(-1)! };
  // Participants clipped to S and added no noise: an update at norm S was clipped (one below it was not).
  const privacy = fit.privacy;
  if (!privacy || privacy.noiseStd !== 0) return stats;
  const clipped = sorted.filter((n) => n >= privacy.clipNorm * (1 - CLIPPED_TOLERANCE)).length;
  return { ...stats, clipNorm: privacy.clipNorm, clippedFraction: clipped / sorted.length };
}
