import type { PrivacyReport } from '../../core/aggregation/strategy.ts';
import { clientDpAnnouncement } from '../../core/privacy/client-ledger.ts';
import { ackError, ackOk, ErrorCode, type Ack } from '../../core/protocol/errors.ts';
import type {
  ClientInfo,
  DeclineMessage,
  ProgressMessage,
  SecAggAccepted,
  UpdateAccepted,
  UpdateMessage,
} from '../../core/protocol/messages.ts';
import type {
  ControlAccepted,
  FederationControl,
  FederationStatus,
  AsyncSettings,
  RoundRecord,
  RoundSettings,
  SettingsChange,
  StorageFailure,
} from '../../core/protocol/status.ts';
import { applySettingsChange, settingsChangeProblem } from '../options/rules.ts';
import { AsyncPool } from './async-pool.ts';
import { closeIntoCandidate, endAfterRound, type ClosingHost, type RoundCandidate } from './closing.ts';
import type { CollectionHost, SecAggInput } from './collection.ts';
import { RoundDeadline } from './deadline.ts';
import { EngineEvents, type EngineEvent } from './engine-events.ts';
import {
  checkTransition,
  controlOf,
  controlRefusal,
  isPaused,
  openRoundOf,
  withPause,
  type AfterRound,
  type EngineState,
} from './engine-state.ts';
import { makeModel, type GlobalModel, type ResumePoint, type RoundEngineOptions } from './engine-types.ts';
import { deliveryKeyOf, type WithRemoteRounds } from './remote-rounds.ts';
import type { OpenRound } from './collection.ts';
import { settle, type RoundBasis } from './open-round.ts';
import { Intake } from './intake.ts';
import { Participants, type ParticipantRecord } from './participants.ts';
import type { SecAggStep } from './secure-round.ts';
import { hasOwnSelection } from './selection.ts';
import { prepareRound } from './round-opening.ts';
import { RoundSaving } from './round-saving.ts';
import { StorageHold } from './storage-hold.ts';
import { bestSummary, dashboardView, federationStatus, normsWithheld } from './status-view.ts';

export type {
  GlobalModel,
  ModelEvaluator,
  ResumePoint,
  RoundCompletedListener,
  RoundEngineOptions,
  RoundTransport,
  SecAggObserver,
} from './engine-types.ts';
export { weightsHash } from './engine-types.ts';
export { MAX_DEPARTED_PARTICIPANTS } from './participants.ts';
export { STATUS_PARTICIPANTS_LISTED, STATUS_TIMELINE_ROUNDS } from './status-view.ts';

/**
 * The round state machine. It knows nothing of sockets or wall time: the
 * transport carries its messages and the clock runs its deadlines, so tests
 * drive it with a controllable clock.
 *
 * Its state is one EngineState (engine-state.ts), changed only through
 * `to()`. A round selects up to `clientsPerRound` idle participants, collects
 * their input through the round's Collection (plain or secure, picked in
 * openRound) until each selected participant has answered, dropped out or
 * been rejected, or the deadline passes, and aggregates when at least
 * `minUpdates` arrived (closing.ts); otherwise the model stays as it was and
 * the round is recorded as skipped with the reason. A closed round is saved
 * before anything shows it; a save that fails for good pauses the federation.
 */
export class RoundEngine {
  private state: EngineState = { kind: 'awaiting-start', paused: false };
  private readonly participants: Participants;
  private model: GlobalModel;
  private lastRound = 0;
  private readonly history: RoundRecord[] = [];
  /** Settings as they now are: the operator may change some between rounds. */
  private settings: RoundSettings;
  private readonly startedAt: number;
  private readonly deadline = new RoundDeadline();
  /** The last storage failure, shown in the status (a round save, or the final report). */
  private readonly storageHold: StorageHold;
  /** Privacy as of the last saved round: the accountant is charged before the save, but shown only after it. */
  private shownPrivacy: PrivacyReport | undefined;
  private readonly events: EngineEvents;
  private readonly intake: Intake;
  private readonly saving: RoundSaving;
  /** Async mode (docs/async.md): the training slots and updates that outlive a version. */
  private readonly asyncPool: AsyncPool | undefined;
  private resolveDone!: (status: FederationStatus) => void;
  /** Resolves when the federation finishes (round limit or target accuracy). */
  readonly done: Promise<FederationStatus>;

  constructor(private readonly options: RoundEngineOptions & WithRemoteRounds) {
    const resume = options.resume;
    this.model = resume ? this.makeModel(resume.modelVersion, resume.weights) : this.makeModel(0, options.initialWeights);
    if (resume) this.history.push(...resume.history);
    // A round started but never finished before a crash keeps its number: the next one comes after it.
    this.lastRound = Math.max(resume?.round ?? 0, options.lastStartedRound ?? 0);
    this.startedAt = options.clock.now();
    this.settings = options.settings;
    this.shownPrivacy = options.strategy.privacy?.();
    this.participants = new Participants({
      graceMs: options.participantGraceMs ?? 120_000,
      random: options.random,
      newId: options.newId,
      onForgotten: options.onParticipantForgotten,
    });
    this.events = new EngineEvents(options.clock, (event) => this.onEvent(event));
    const asyncSettings = options.settings.mode === 'async' ? options.settings.async : undefined;
    this.asyncPool = asyncSettings && this.makeAsyncPool(asyncSettings);
    this.intake = new Intake({
      async: this.asyncPool,
      clock: options.clock,
      participants: this.participants,
      state: () => this.state,
      inOpenRound: (id) => this.inOpenRound(id),
      forgetDeparted: () => this.forgetDeparted(),
      statusChanged: () => options.transport.statusChanged(),
      startSoon: () => this.events.push({ kind: 'maybe-start' }),
    });
    this.saving = new RoundSaving(options);
    this.storageHold = new StorageHold({
      state: () => this.state,
      to: (next) => this.to(next),
      saving: this.saving,
      history: this.history,
      useRoundNumber: (round) => {
        this.lastRound = round;
      },
      finish: (reason) => this.finish(reason),
      publishRound: (candidate) => this.publishRound(candidate),
      openRound: (round) => this.openRound(round),
      statusChanged: () => options.transport.statusChanged(),
    });
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  private makeAsyncPool(settings: AsyncSettings): AsyncPool {
    return new AsyncPool({
      options: this.options,
      participants: this.participants,
      settings,
      slotTimeoutMs: () => this.settings.roundTimeoutMs,
      slotsElsewhere: this.options.remoteRounds?.handsOutAsyncSlots === true,
      state: () => this.state,
      model: () => this.model,
      statusChanged: () => this.options.transport.statusChanged(),
      countRejection: (code) => this.intake.count(code),
    });
  }

  get globalModel(): GlobalModel {
    return this.model;
  }

  get currentRound(): number {
    return openRoundOf(this.state)?.round ?? this.lastRound;
  }

  get isDone(): boolean {
    return this.state.kind === 'done';
  }

  get control(): FederationControl {
    return controlOf(this.state);
  }

  /**
   * Resolves once the queued events have run and the engine's async work has
   * settled (an evaluation, the open secure round's steps), so tests need not
   * spin the event loop. It does not move the clock (deadlines and retry
   * waits still need it to), and it does not wait for the host's saves
   * beyond a turn of the event loop: their I/O is outside the engine, and a
   * test may hold one on purpose.
   */
  async idle(): Promise<void> {
    for (;;) {
      this.events.drain();
      await this.events.inFlight();
      await openRoundOf(this.state)?.collection.settled();
      // Continuations of what just settled run before we look again.
      await new Promise((resolve) => setImmediate(resolve));
      if (!this.events.pending) return;
    }
  }

  /** The one place the state changes. */
  private to(next: EngineState): void {
    checkTransition(this.state, next);
    this.state = next;
  }

  private onEvent(event: EngineEvent): void {
    switch (event.kind) {
      case 'maybe-start':
        this.maybeStartRound();
        this.asyncPool?.dispatch(); // a participant joined: a free training slot may be its
        return;
      case 'close':
        void this.closeRound(event.round);
        return;
      default:
        throw new Error(`unknown engine event ${event satisfies never as string}`);
    }
  }

  /** The model as this engine sends it (fine-tuning: trainable values only; --model-encoding). */
  private makeModel(version: number, weights: Float32Array): GlobalModel {
    return makeModel(version, weights, { fineTune: this.options.fineTune, encoding: this.options.settings.modelEncoding });
  }

  /** The round records this engine holds: how many, and the last of them (a cluster follower reads only newer ones). */
  get knownHistory(): { readonly length: number; readonly last: RoundRecord | undefined } {
    return { length: this.history.length, last: this.history.at(-1) };
  }

  /**
   * A cluster node that becomes leader takes up the federation as the store
   * holds it (coordinator/cluster/): only before this engine ever ran, so no
   * round of its own is lost. Numbering continues after `lastStartedRound`.
   */
  adoptResume(resume: ResumePoint | undefined, lastStartedRound: number, historyFrom = 0): void {
    if (this.state.kind !== 'awaiting-start') throw new Error(`cannot adopt a stored federation once started (${this.state.kind})`);
    if (historyFrom > this.history.length)
      throw new Error(`the stored history goes on from record ${historyFrom}, but this engine holds ${this.history.length}`);
    if (resume) {
      this.model = this.makeModel(resume.modelVersion, resume.weights);
      // The first historyFrom records are the ones this engine holds (a follower catching up read only the rest).
      this.history.splice(historyFrom, this.history.length - historyFrom, ...resume.history);
    }
    this.lastRound = Math.max(resume?.round ?? 0, lastStartedRound, this.lastRound);
    this.shownPrivacy = this.options.strategy.privacy?.();
    this.options.transport.statusChanged();
  }

  /** Starts running rounds as soon as enough participants are connected. */
  start(): void {
    if (this.state.kind !== 'awaiting-start') return;
    this.to(this.state.paused ? { kind: 'idle', pause: { kind: 'operator' } } : { kind: 'idle' });
    this.maybeStartRound();
  }

  /**
   * An operator's control action. `stop` resolves once the federation has
   * finished (the open round closed, checkpointed and announced).
   */
  async applyControl(action: 'start' | 'pause' | 'resume' | 'stop'): Promise<Ack<ControlAccepted>> {
    // Operator refusals are answered, not counted with the participants' rejected requests.
    const refuse = (why: string) => ackError<ControlAccepted>(ErrorCode.ControlNotAllowed, `cannot ${action}: ${why}`);
    const refusal = controlRefusal(this.state, action);
    if (refusal !== undefined) return refuse(refusal);
    switch (action) {
      case 'start':
        this.start();
        this.options.transport.statusChanged();
        break;
      case 'pause':
        this.pause();
        break;
      case 'resume':
        if (this.storageHold.unsaved()) {
          const failure = await this.storageHold.retry();
          if (failure) return refuse(failure);
          break;
        }
        this.resume();
        break;
      case 'stop': {
        await this.stop('stopped by the operator');
        const state = this.state;
        return ackOk({ control: this.control, doneReason: state.kind === 'done' ? state.reason : undefined });
      }
      default:
        throw new Error(`unknown control action ${action satisfies never as string}`);
    }
    return ackOk({ control: this.control });
  }

  /** The open round finishes normally; no new round opens until resume(). */
  pause(): void {
    if (this.state.kind === 'done') return;
    this.to(withPause(this.state, true));
    this.options.transport.statusChanged();
  }

  resume(): void {
    if (!isPaused(this.state)) return;
    if (this.storageHold.unsaved()) {
      void this.storageHold.retry();
      return;
    }
    this.to(withPause(this.state, false));
    this.options.transport.statusChanged();
    this.maybeStartRound();
    this.asyncPool?.dispatch(); // a version still collecting hands out the slots the pause held back
  }

  /**
   * Stops for good, closing the open round cleanly: the updates that arrived
   * are aggregated if there are enough (else the round is skipped), the
   * round is checkpointed and announced, then federation:done goes out.
   * A secure round still collecting cannot be decoded: it aborts (skipped).
   */
  stop(reason = 'stopped by the operator'): Promise<FederationStatus> {
    const state = this.state;
    if (controlOf(state) === 'stopped') return this.done;
    const unsaved = this.storageHold.unsaved();
    if (unsaved?.kind === 'round')
      reason += `; round ${unsaved.candidate.record.round} could not be saved, so it was never shown or counted`;
    const stopping: AfterRound = { kind: 'stop', reason };
    switch (state.kind) {
      case 'awaiting-start':
      case 'idle':
      case 'starting':
        this.finish(reason);
        break;
      case 'collecting':
        this.to({ ...state, after: stopping });
        state.round.collection.interrupt({ kind: 'stop', reason });
        break;
      case 'closing':
        // Aggregating or evaluating: the federation finishes once the round is published.
        this.to({ ...state, after: stopping });
        break;
      case 'done':
        break;
      default:
        throw new Error(`unknown engine state ${state satisfies never as string}`);
    }
    this.options.transport.statusChanged();
    return this.done;
  }

  /** Shutdown: abandons the open round without recording it (it keeps its number) and finishes at once. */
  abort(reason: string): void {
    const state = this.state;
    const open = openRoundOf(state);
    if (open) {
      open.collection.abandon(reason);
      this.options.clock.clear(open.timer);
      if (state.kind === 'collecting') open.aggregator.abandon?.();
    }
    this.finish(reason);
  }

  /**
   * Changes round settings from the next round on. Checked with the rules of
   * the command-line flags, and refused where the change would make a
   * privacy or secure-aggregation guarantee false; nothing changes then.
   */
  updateSettings(change: SettingsChange): Ack<RoundSettings> {
    // The same rules as at start (coordinator/options/rules.ts), plus the strategy's own (its traits).
    const strategy = this.options.strategy;
    const problem = settingsChangeProblem(this.settings, change, {
      changeProblem: (c, current) => strategy.settingsChangeProblem?.(c, current),
    });
    if (problem !== undefined) return ackError(ErrorCode.InvalidSetting, problem);
    if (this.state.kind === 'done') return ackError(ErrorCode.ControlNotAllowed, `the federation has finished: ${this.state.reason}`);
    this.settings = applySettingsChange(this.settings, change);
    this.options.transport.statusChanged();
    return ackOk(this.settings);
  }

  /** A participant joined or rejoined. Returns its id (the old one when it is known). */
  join(info: ClientInfo, requestedId?: string, credential?: string): string {
    return this.intake.join(info, requestedId, credential);
  }

  /** A participant's connection closed. If it was selected and had not answered, it drops out of the round. */
  leave(participantId: string): void {
    this.intake.leave(participantId);
  }

  /** A secure aggregation message from a selected participant. Never throws: a refused message excludes its sender. */
  submitSecAgg(participantId: string, step: SecAggStep, message: SecAggInput): Promise<Ack<SecAggAccepted>> {
    return this.intake.submitSecAgg(participantId, step, message);
  }

  /** Validates and accumulates one update. Never throws on bad input: it answers with a coded error. */
  submitUpdate(participantId: string, message: UpdateMessage): Ack<UpdateAccepted> {
    return this.intake.submitUpdate(participantId, message);
  }

  /** A selected participant will not train this round; with `final` it is never selected again. */
  decline(participantId: string, message: DeclineMessage): Ack<{ readonly round: number }> {
    return this.intake.decline(participantId, message);
  }

  /** Takes a selected participant out of the open round (its request was unusable), so the round need not wait for it. */
  excludeFromOpenRound(participantId: string): void {
    this.intake.excludeFromOpenRound(participantId);
  }

  /** Records a participant's training progress for the dashboard. Ignored unless it is training in the open round. */
  reportProgress(participantId: string, message: ProgressMessage): void {
    this.intake.reportProgress(participantId, message);
  }

  /** A save outside the rounds failed for good (the final report): status and dashboard say so. */
  reportStorageFailure(failure: StorageFailure): void {
    this.storageHold.failure = failure;
    this.options.transport.statusChanged();
  }

  /** Counts a request rejected before it reached the engine (bad payload, unknown event). */
  countRejection(code: ErrorCode): void {
    this.intake.count(code);
    this.options.transport.statusChanged();
  }

  /** What dashboards are pushed and `/api/status` returns (status-view.ts): `status()` cut to a bounded size. */
  dashboardStatus(): FederationStatus {
    this.forgetDeparted();
    return dashboardView(this.status());
  }

  /** The whole state, every round's timeline included: for the run report, the CSV and the final result. */
  status(): FederationStatus {
    return federationStatus({
      options: this.options,
      state: this.state,
      settings: this.settings,
      round: this.currentRound,
      model: this.model,
      participants: this.participants,
      eligible: () => this.eligible().length,
      normsWithheld: normsWithheld(this.settings, this.options.strategy),
      privacy: this.shownPrivacy,
      history: this.history,
      rejections: this.intake.rejections,
      startedAt: this.startedAt,
      best: bestSummary(this.history),
      storageFailure: this.storageHold.failure,
    });
  }

  private inOpenRound(id: string): boolean {
    return openRoundOf(this.state)?.selected.has(id) === true;
  }

  private forgetDeparted(): void {
    this.participants.forgetDeparted(this.options.clock.now(), (id) => this.inOpenRound(id));
  }

  private eligible() {
    return this.participants.eligible((id) => this.inOpenRound(id));
  }

  private maybeStartRound(): void {
    const state = this.state;
    if (state.kind !== 'idle' || state.pause !== undefined) return;
    if (this.candidates().length < this.settings.minClients) {
      this.options.transport.statusChanged();
      return;
    }
    const permitted = this.options.strategy.canStartRound?.() ?? { ok: true };
    if (!permitted.ok) {
      this.finish(permitted.reason);
      return;
    }
    const round = this.lastRound + 1;
    if (!this.options.onRoundStarting) {
      this.openRound(round);
      return;
    }
    this.to({ kind: 'starting', round, paused: false });
    void this.saving.roundStart(round).then((outcome) => {
      const now = this.state;
      if (now.kind !== 'starting' || now.round !== round) return;
      if (outcome.ok) this.openRound(round);
      else this.storageHold.hold({ kind: 'round-start', round }, outcome.failure);
    });
  }

  /** Opens round `round` (its number saved, if saving is on): selects, picks the collection, sends round:start. */
  private openRound(round: number): void {
    const state = this.state;
    if (state.kind !== 'idle' && state.kind !== 'starting') return;
    const { transport } = this.options;
    const settings = this.settings;
    const candidates = this.candidates();
    const opening =
      isPaused(state) || candidates.length < settings.minClients
        ? undefined
        : prepareRound({
            round,
            options: this.options,
            settings,
            model: this.model,
            candidates,
            participants: this.participants,
            plainDeadlineMs: this.deadline.nextMs(settings),
            host: this.collectionHost(),
            onDeadline: () => this.onDeadline(round),
            asyncMethod: this.asyncPool?.method,
          });
    if (opening === undefined) {
      // Paused while the round number was being recorded, or everyone left meanwhile (or too few in cohorts of k): that number is used up.
      this.lastRound = round;
      this.to(isPaused(state) ? { kind: 'idle', pause: { kind: 'operator' } } : { kind: 'idle' });
      transport.statusChanged();
      return;
    }
    const { open, chosen, message } = opening;
    this.to({ kind: 'collecting', round: open, after: { kind: 'continue' } });
    for (const p of chosen) {
      p.state = 'selected';
      p.progress = 0;
      transport.sendRoundStart(p.id, open.collection.roundStart(p.id, message));
    }
    transport.statusChanged();
    open.collection.started();
    this.options.remoteRounds?.opened(open, chosen, message);
  }

  /** Who may be selected: this process's eligible participants, and on a cluster's leader the other nodes' (remote-rounds.ts). */
  private candidates(): readonly ParticipantRecord[] {
    const remote = this.options.remoteRounds?.candidates() ?? [];
    return remote.length === 0 ? this.eligible() : [...this.eligible(), ...remote];
  }

  /** Participants elsewhere became selectable (a cluster's directory): a round may start now. */
  candidatesChanged(): void {
    this.events.push({ kind: 'maybe-start' });
  }

  /** A cluster member collects its own participants' part of the leader's round with this registry and these options (coordinator/cluster/member-rounds.ts). */
  memberView(): {
    readonly options: RoundEngineOptions;
    readonly participants: Participants;
    readonly settings: RoundSettings;
    /** The status's refusals by code: the member's intake counts its participants' into them. */
    readonly rejections: Record<string, number>;
  } {
    return { options: this.options, participants: this.participants, settings: this.settings, rejections: this.intake.rejections };
  }

  /** What a round's collection may read and do (collection.ts). */
  private collectionHost(): CollectionHost {
    const engine = this;
    return {
      clock: this.options.clock,
      options: this.options,
      get settings() {
        return engine.settings;
      },
      get model() {
        return engine.model;
      },
      participant: (id) => this.participants.get(id),
      collecting: (round) => this.state.kind === 'collecting' && this.state.round === round,
      settle: (round, id, outcome, reason, norm, code, nodeFault) =>
        settle(round, id, this.options.clock.now(), outcome, reason, norm, code, nodeFault),
      closeSoon: (round) => this.closeSoon(round),
      closeNow: (round) => {
        const state = this.state;
        if (state.kind === 'collecting' && state.round === round) void this.closeRound(state.round);
      },
      statusChanged: () => this.options.transport.statusChanged(),
      normsWithheld: () => normsWithheld(this.settings, this.options.strategy),
      recordLatency: (ms) => this.deadline.record(ms),
      ownSelection: hasOwnSelection(this.options.strategy),
      neverDelivered: (id) => {
        const key = deliveryKeyOf(this.participants, this.options.remoteRounds, id);
        return key !== undefined && this.participants.deliveries.neverDelivered(key);
      },
    };
  }

  /** The collection is complete: the round closes on a fresh stack (the last sender's acknowledgement must not wait). */
  private closeSoon(round: RoundBasis): void {
    const state = this.state;
    if (state.kind !== 'collecting' || state.round !== round) return;
    this.to({ kind: 'closing', round: state.round, step: 'aggregating', after: state.after });
    this.events.push({ kind: 'close', round: state.round });
  }

  private onDeadline(round: number): void {
    const state = this.state;
    if (state.kind !== 'collecting' || state.round.round !== round) return;
    state.round.collection.interrupt({ kind: 'deadline' });
  }

  private async closeRound(open: OpenRound): Promise<void> {
    const state = this.state;
    // Stopped before the deferred close ran.
    if ((state.kind !== 'collecting' && state.kind !== 'closing') || state.round !== open) return;
    this.options.clock.clear(open.timer);
    this.to({ kind: 'closing', round: open, step: 'aggregating', after: state.after });
    this.options.transport.statusChanged();
    if (this.options.remoteRounds) {
      await this.events.track(this.options.remoteRounds.closing(open));
      if (!this.stillClosing(open)) return;
    }
    const candidate = await closeIntoCandidate(this.closingHost(), open);
    if (!candidate) return;
    const saved = await this.saving.round(candidate, this.history);
    if (!this.stillClosing(open)) return; // aborted while saving: nothing may follow federation:done
    if (saved.ok) this.publishRound(candidate);
    else this.storageHold.hold({ kind: 'round', candidate }, saved.failure);
  }

  private stillClosing(open: OpenRound): boolean {
    return this.state.kind === 'closing' && this.state.round === open;
  }

  private closingHost(): ClosingHost {
    return {
      options: this.options,
      settings: this.settings,
      model: this.model,
      history: this.history,
      participants: this.participants,
      deliveryKeyOf: (id) => deliveryKeyOf(this.participants, this.options.remoteRounds, id),
      stillClosing: (open) => this.stillClosing(open),
      evaluating: (open) => {
        const state = this.state;
        if (state.kind !== 'closing' || state.round !== open) return;
        this.to({ ...state, step: 'evaluating' });
        this.options.transport.statusChanged();
      },
      track: (work) => this.events.track(work),
    };
  }

  /** A saved round becomes visible: status, downloads and joins get its model, then round:end goes out. */
  private publishRound({ open, record, model }: RoundCandidate): void {
    const { transport } = this.options;
    const state = this.state;
    const after: AfterRound = state.kind === 'closing' ? state.after : { kind: 'continue' };
    this.model = model;
    this.shownPrivacy = record.privacy ?? this.shownPrivacy;
    this.lastRound = Math.max(this.lastRound, open.round);
    this.history.push(record);
    // The round is no longer open: status and selection see it closed from here.
    this.to(after.kind === 'pause' ? { kind: 'idle', pause: { kind: 'operator' } } : { kind: 'idle' });
    for (const id of open.selected) {
      const p = this.participants.get(id);
      if (this.asyncPool?.holds(id)) continue; // training again from a newer version
      if (p?.connected) p.state = 'idle';
      if (p) p.progress = undefined;
    }
    transport.broadcastRoundEnd({
      round: record.round,
      outcome: record.outcome,
      // Under client-level DP how many took part stays with the operator, and skip reasons quote counts.
      reason: this.options.strategy.traits.participation === 'private' ? undefined : record.reason,
      modelVersion: record.modelVersion,
      metrics: record.metrics,
      // Async: no sampling, so a version says nothing of those not in it; each charged its own runs (docs/async.md).
      clientDp: this.asyncPool ? undefined : clientDpAnnouncement(record.privacy),
    });
    const settings = this.settings;
    const end =
      after.kind === 'stop'
        ? after.reason
        : endAfterRound(record, settings, settings.earlyStoppingPatience === undefined ? undefined : bestSummary(this.history));
    if (end !== undefined) {
      this.finish(end);
      return;
    }
    transport.statusChanged();
    // Start the next round from a fresh stack, after the messages above went out.
    this.events.push({ kind: 'maybe-start' });
  }

  private finish(reason: string): void {
    if (this.state.kind === 'done') return;
    this.to({ kind: 'done', reason });
    this.asyncPool?.stop();
    // A round charged but never saved (stopped while paused on a storage failure) still counts in the final figure.
    this.shownPrivacy = this.options.strategy.privacy?.() ?? this.shownPrivacy;
    const last = this.history.at(-1);
    this.options.transport.broadcastDone({ reason, round: this.lastRound, metrics: last?.metrics });
    this.options.transport.statusChanged();
    this.resolveDone(this.status());
  }
}
