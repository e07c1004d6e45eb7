import { io, type Socket } from 'socket.io-client';
import { privatizeUpdate } from '../privacy/update-privacy.ts';
import { SecureRandom } from '../random/prng.ts';
import type { Ack } from '../protocol/errors.ts';
import {
  PROTOCOL_VERSION,
  type ClientInfo,
  type ClientToServerEvents,
  type Binary,
  type FederationDoneMessage,
  type FrozenWeightsMessage,
  type JoinAccepted,
  type ProgressMessage,
  type RoundEndMessage,
  type RoundStartMessage,
  type SampleDpConfig,
  type ServerToClientEvents,
  type TaskSummary,
  type TrainMetrics,
  type UpdateAccepted,
  type UpdateEncodingName,
} from '../protocol/messages.ts';
import { ParticipantWeights, type FrozenSource, type FrozenWeightsStore } from '../model/fine-tune-weights.ts';
import { ErrorFeedback } from '../compression/error-feedback.ts';
import { frameBytes } from '../compression/update-codec.ts';
import type { PrivacyLedger } from '../privacy/ledger.ts';
import type { ClientLevelLedger } from '../privacy/client-ledger.ts';
import { TrainingAborted, type TrainProgress } from '../training/local-trainer.ts';
import type { RoundTrainer, RoundTrainResult } from './trainers.ts';
import { secureInput } from './secure-input.ts';
import { SecAggClient, type SecAggConfig, type UnmaskRequestMessage } from '../secagg/protocol.ts';
import type { SecAggAccepted, SecAggForwardedWire, SecAggKeysWire, SecAggRoundInfo } from '../protocol/messages.ts';
import {
  decodeForwarded,
  decodeKeys,
  encodeAdvertise,
  encodeMasked,
  encodeShares,
  encodeUnmask,
  toBytes,
} from '../protocol/secagg-wire.ts';

/**
 * The participant side of the protocol, shared by browser tabs (inside the
 * training worker) and Node participants: join, train when selected, clip
 * and noise the update if the round asks, send it, and rejoin by itself
 * after a dropped connection.
 */

export type ParticipantSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export type ParticipantStatus = 'connecting' | 'waiting' | 'downloading' | 'training' | 'uploading' | 'done' | 'disconnected';

export type ParticipantEvent =
  | { readonly type: 'status'; readonly status: ParticipantStatus; readonly detail?: string }
  | {
      readonly type: 'joined';
      readonly participantId: string;
      readonly task: TaskSummary;
      readonly modelVersion: number;
      readonly round: number;
    }
  /** `epoch` epochs done of `epochs`; `batch` batches done of the current epoch's `batches`. */
  | {
      readonly type: 'progress';
      readonly round: number;
      readonly epoch: number;
      readonly epochs: number;
      readonly batch: number;
      readonly batches: number;
      readonly fraction: number;
    }
  | {
      readonly type: 'uploaded';
      readonly round: number;
      readonly metrics: TrainMetrics;
      readonly bytes: number;
      readonly clipped: boolean;
      readonly noised: boolean;
      /** How the update was encoded (plain rounds; absent for masked updates), and its size as float32 for comparison. */
      readonly encoding?: UpdateEncodingName;
      readonly float32Bytes?: number;
      /** True when the update went out masked with secure aggregation. */
      readonly masked?: boolean;
      /** With `masked`: the bits per masked word (32, or fewer under a compressed --update-encoding). */
      readonly wordBits?: number;
      /** With `masked`: the values masked, the model's or (rotated rounds: Skellam, int4) the rotation's padded length. */
      readonly vectorLength?: number;
    }
  | { readonly type: 'rejected'; readonly round: number; readonly code: string; readonly message: string }
  /**
   * Secure aggregation progress: 'masked' means the masked update was
   * accepted (the coordinator will only ever see it inside the sum).
   */
  | {
      readonly type: 'secagg';
      readonly round: number;
      readonly step: 'advertised' | 'shared' | 'masked' | 'unmasked';
      readonly index: number;
      readonly participants: number;
      readonly neighbours?: number | 'all';
      readonly threshold?: number;
    }
  /** `accountant`: which accountant the ledger's ε came from (core/privacy/epsilon.ts). */
  | {
      readonly type: 'privacy';
      readonly epsilon: number;
      readonly delta: number;
      readonly budget?: number;
      readonly exhausted: boolean;
      readonly accountant?: 'pld' | 'rdp';
    }
  /** This participant's own client-level ε (its ledger, charged from each round's announced (q, z)). */
  | {
      readonly type: 'client-privacy';
      readonly epsilon: number;
      readonly delta: number;
      readonly budget?: number;
      readonly exhausted: boolean;
      readonly accountant?: 'pld' | 'rdp';
    }
  | { readonly type: 'declined'; readonly round: number; readonly reason: string }
  /** A fine-tuning task's frozen weights are ready: from this device's cache, or downloaded once. */
  | { readonly type: 'frozen-weights'; readonly hash: string; readonly source: FrozenSource }
  | { readonly type: 'round-end'; readonly message: RoundEndMessage }
  | { readonly type: 'done'; readonly message: FederationDoneMessage }
  | { readonly type: 'error'; readonly message: string };

export interface ParticipantOptions {
  /** Coordinator URL, e.g. "http://localhost:8080". */
  readonly url: string;
  readonly client: Omit<ClientInfo, 'numExamples'>;
  readonly trainer: RoundTrainer;
  /** This dataset's privacy ledger; needed when the task trains with DP-SGD. */
  readonly ledger?: PrivacyLedger;
  /** This participant's own client-level DP ledger: it refuses rounds once spent, whatever the coordinator says. */
  readonly clientLedger?: ClientLevelLedger;
  readonly onEvent?: (event: ParticipantEvent) => void;
  /** Extra socket.io handshake auth (tokens). */
  readonly auth?: Record<string, string>;
  /** socket.io transports (default WebSocket only); long-polling reaches a cluster of workers only through sticky routing (docs/cluster.md). */
  readonly transports?: readonly ('polling' | 'websocket')[];
  /** First delay before reconnecting after a dropped connection (default 1 s, backing off to 5 s). */
  readonly reconnectionDelayMs?: number;
  /** Longest delay between reconnection attempts (default 5 s). Tests that restart the coordinator often set it low (docs/test-time.md). */
  readonly reconnectionDelayMaxMs?: number;
  /** How long to wait for the coordinator's acknowledgement of a request (default 60 s). */
  readonly ackTimeoutMs?: number;
  /** Where a fine-tuning task's frozen weights are kept between visits (absent: downloaded once per session). */
  readonly frozenStore?: FrozenWeightsStore;
  /**
   * Carry what compression lost from one update into the next (default true;
   * docs/compression.md). False only to measure what error feedback buys.
   */
  readonly errorFeedback?: boolean;
  /** Tests only: the plain update of a secure aggregation round, before clipping, noise and masking. */
  readonly onPlainUpdate?: (round: number, update: Float32Array) => void;
}

export class Participant {
  readonly socket: ParticipantSocket;
  private participantId: string | undefined;
  private rejoinSecret: string | undefined;
  private task: TaskSummary | undefined;
  /** The round being trained, so a round:end for it aborts the work. */
  private activeRound = 0;
  /** The active round is an async one (docs/async.md): its round:end does not end its training. */
  private activeAsync = false;
  private abortedRound = 0;
  private finished = false;
  /** The chain of rounds, run one after another. */
  private rounds: Promise<void> = Promise.resolve();
  private pinnedSampleDp: SampleDpConfig | undefined;
  private pinnedNoiseMultiplier: number | undefined;
  private pinnedSkellamShare: number | undefined;
  /** Secure aggregation messages from the coordinator, by event, for the round they name. */
  /** The residual of compressed updates (client-side error feedback), and the CSPRNG their rounding draws from. */
  private readonly feedback = new ErrorFeedback();
  private readonly rounding = new SecureRandom();
  private readonly secaggInbox = new Map<string, { round: number; message: unknown }>();
  private secaggWaiter: { event: string; round: number; resolve: (m: unknown) => void; reject: (e: Error) => void } | undefined;
  private readonly weights: ParticipantWeights;

  constructor(private readonly options: ParticipantOptions) {
    this.weights = new ParticipantWeights(options.frozenStore, (hash) => this.downloadFrozen(hash));
    this.socket = io(options.url, {
      autoConnect: false,
      transports: [...(options.transports ?? ['websocket'])],
      reconnectionDelay: options.reconnectionDelayMs ?? 1000,
      reconnectionDelayMax: options.reconnectionDelayMaxMs ?? 5000,
      auth: options.auth ?? {},
    });
    this.socket.on('connect', () => void this.join());
    this.socket.on('disconnect', (reason) => this.emit({ type: 'status', status: 'disconnected', detail: reason }));
    this.socket.on('connect_error', (error) => {
      this.emit({ type: 'status', status: 'connecting', detail: error.message });
      // A refusal by the coordinator (UNAUTHORIZED, TOO_MANY_CONNECTIONS: err.data.code) is not retried by socket.io.
      if (!this.socket.active) this.emit({ type: 'error', message: `connection refused: ${error.message}` });
    });
    // One round at a time: a round that starts while the last one is still stopping waits for it, so
    // two trainings never share the model and the ledger check sees every earlier charge.
    this.socket.on('round:start', (message) => {
      this.rounds = this.rounds.then(() => this.onRoundStart(message)).catch(() => undefined);
    });
    this.socket.on('round:end', (message) => this.onRoundEnd(message));
    for (const event of ['secagg:keys', 'secagg:forwarded', 'secagg:unmask-request'] as const) {
      this.socket.on(event, (message: { round: number }) => this.deliverSecAgg(event, message));
    }
    this.socket.on('disconnect', () => {
      this.failSecAggWait(new TrainingAborted());
      this.options.clientLedger?.disconnected();
    });
    this.socket.on('federation:done', (message) => {
      this.finished = true;
      this.emit({ type: 'done', message });
      this.emit({ type: 'status', status: 'done', detail: message.reason });
    });
  }

  private get ackTimeoutMs(): number {
    return this.options.ackTimeoutMs ?? 60_000;
  }

  get id(): string | undefined {
    return this.participantId;
  }

  start(): void {
    const ledger = this.options.ledger;
    if (ledger) this.emitPrivacy(ledger.epsilon, false);
    this.emit({ type: 'status', status: 'connecting' });
    this.socket.connect();
  }

  stop(): void {
    this.abortedRound = this.activeRound;
    this.socket.disconnect();
  }

  private emitPrivacy(epsilon: number, exhausted: boolean): void {
    const ledger = this.options.ledger!;
    this.emit({
      type: 'privacy',
      epsilon,
      delta: ledger.delta,
      budget: ledger.epsilonBudget,
      exhausted,
      accountant: ledger.accounted.accountant,
    });
  }

  /**
   * A coordinator may not weaken privacy after a participant joined: DP-SGD
   * settings are pinned from the task summary of the first join, and a
   * participant's own noise in distributed mode from the first round that
   * asked for it. Returns why a round asks for less, if it does.
   */
  private weakerPrivacy(config: RoundStartMessage['config'], secagg: RoundStartMessage['secagg']): string | undefined {
    const pinned = this.pinnedSampleDp;
    const dp = config.sampleDp;
    if (pinned && dp && (dp.noiseMultiplier < pinned.noiseMultiplier || dp.clipNorm > pinned.clipNorm)) {
      return `the round asks for weaker DP-SGD (σ ${dp.noiseMultiplier}, C ${dp.clipNorm}) than the task this participant joined (σ ${pinned.noiseMultiplier}, C ${pinned.clipNorm})`;
    }
    const privacy = config.privacy;
    if (privacy?.skellamVariance !== undefined) {
      // Integer noise exists only inside the secure sum: without it the update would leave un-noised.
      if (!secagg) return 'the round asks for Skellam noise without secure aggregation';
      const { clipRange, quantizationRange } = secagg.config.quantization;
      // √μ_i in units of the clip norm on the grid: the participant's share may not shrink.
      const share = Math.sqrt(privacy.skellamVariance) / (privacy.clipNorm / ((2 * clipRange) / quantizationRange));
      this.pinnedSkellamShare ??= share;
      if (!(share >= this.pinnedSkellamShare * (1 - 1e-9))) {
        return `the round asks for a smaller Skellam noise share per clip norm (${share}) than this participant first added (${this.pinnedSkellamShare})`;
      }
    }
    if (privacy && privacy.noiseStd > 0) {
      const multiplier = privacy.noiseStd / privacy.clipNorm;
      this.pinnedNoiseMultiplier ??= multiplier;
      if (multiplier < this.pinnedNoiseMultiplier * (1 - 1e-9)) {
        return `the round asks for less noise per clip norm (${multiplier}) than this participant first added (${this.pinnedNoiseMultiplier})`;
      }
    }
    return undefined;
  }

  /**
   * Whether this participant trains the round. It declines a round that
   * weakens privacy, a DP-SGD round it cannot account for, a plain round when
   * it trains only privately, and a round whose DP-SGD steps would take its
   * ledger's ε past the budget; the coordinator is told why.
   */
  private async admitRound(message: RoundStartMessage): Promise<boolean> {
    const weaker = this.weakerPrivacy(message.config, message.secagg);
    if (weaker) return this.decline(message.round, weaker, false);
    const dp = message.config.sampleDp;
    const { trainer, ledger } = this.options;
    if (!dp) {
      if (!trainer.differentiallyPrivate) return true;
      // A private participant never releases a non-private update; it sits this round out.
      return this.decline(message.round, 'this participant trains only with DP-SGD, and the round does not ask for it', false);
    }
    // The causes below are permanent, so the participant retires from later rounds too.
    if (!trainer.differentiallyPrivate)
      return this.decline(message.round, 'the round asks for DP-SGD and this participant has no private trainer', true);
    if (!ledger) return this.decline(message.round, 'the round asks for DP-SGD and this participant keeps no privacy ledger', true);
    // Another tab may have charged the same dataset since this one last looked.
    await ledger.refresh();
    const check = ledger.check(trainer.plannedPrivacySteps!(message.config)!);
    if (check.allowed) return true;
    this.emitPrivacy(ledger.epsilon, true);
    return this.decline(message.round, budgetSpent(ledger.epsilon, check.projectedEpsilon, ledger.epsilonBudget), true);
  }

  /** Tells the page and the coordinator that this participant sits `round` out (`final`: and every later one). */
  private async decline(round: number, reason: string, final: boolean): Promise<false> {
    this.emit({ type: 'declined', round, reason });
    await this.socket.timeout(this.ackTimeoutMs).emitWithAck('decline', { round, reason, final });
    return false;
  }

  /** Trains the round from `weights`. Progress goes to the page, and to the coordinator only outside DP rounds. */
  private trainRound(message: RoundStartMessage, weights: Float32Array): Promise<RoundTrainResult> {
    const round = message.round;
    const progressOnWire = !isPrivateRound(message.config);
    this.emit({ type: 'status', status: 'training', detail: `round ${round}` });
    return this.options.trainer.train(weights, message.config, {
      shouldAbort: () => this.abortedRound === round || !this.socket.connected,
      onProgress: (p) => {
        this.emit({ type: 'progress', round, ...p });
        if (progressOnWire && this.socket.connected) this.socket.emit('progress', wireProgress(round, p));
      },
    });
  }

  /**
   * Charges (and persists) what a DP-SGD round spent, before its update
   * leaves: a crash in between can only overcount. Returns the new ε
   * (undefined for a round without DP-SGD), or 'refused' when another tab
   * spent the budget meanwhile: the round is declined and nothing is sent.
   */
  private async chargePrivacy(round: number, result: RoundTrainResult): Promise<number | undefined | 'refused'> {
    if (!result.privacySpent) return undefined;
    const ledger = this.options.ledger!;
    const charge = await ledger.charge(result.privacySpent);
    this.emitPrivacy(charge.epsilon, !charge.charged);
    if (charge.charged) return charge.epsilon;
    await this.decline(round, budgetSpent(charge.epsilon, charge.projectedEpsilon, ledger.epsilonBudget), true);
    return 'refused';
  }

  private emit(event: ParticipantEvent): void {
    this.options.onEvent?.(event);
  }

  private async join(): Promise<void> {
    try {
      await this.requestJoin();
    } catch (error) {
      this.emit({ type: 'error', message: `join failed: ${error instanceof Error ? error.message : String(error)}` });
    }
  }

  private async requestJoin(): Promise<void> {
    const result: Ack<JoinAccepted> = await this.socket.timeout(this.ackTimeoutMs).emitWithAck('join', {
      protocolVersion: PROTOCOL_VERSION,
      participantId: this.participantId,
      rejoinSecret: this.rejoinSecret,
      client: { ...this.options.client, numExamples: this.options.trainer.numExamples },
    });
    if (!result.ok) {
      this.emit({ type: 'error', message: `join refused: ${result.error.code}: ${result.error.message}` });
      return;
    }
    const accepted = result.value;
    this.participantId = accepted.participantId;
    this.rejoinSecret = accepted.rejoinSecret;
    this.task = accepted.task;
    this.pinnedSampleDp ??= accepted.task.sampleDp;
    this.emit({
      type: 'joined',
      participantId: accepted.participantId,
      task: accepted.task,
      modelVersion: accepted.model.version,
      round: accepted.round,
    });
    if (!this.finished) this.emit({ type: 'status', status: 'waiting' });
    this.prepareFrozen(accepted.task);
  }

  /** Fetches a fine-tuning task's frozen weights right after joining, so the first round need not wait for them. */
  private prepareFrozen(task: TaskSummary): void {
    const hash = task.fineTune?.frozenHash;
    if (hash === undefined) return;
    this.weights.prepare(task).then(
      (source) => source && this.emit({ type: 'frozen-weights', hash, source }),
      (error: unknown) =>
        this.emit({ type: 'error', message: `frozen weights: ${error instanceof Error ? error.message : String(error)}` }),
    );
  }

  private async downloadFrozen(hash: string): Promise<Binary> {
    const result: Ack<FrozenWeightsMessage> = await this.socket.timeout(this.ackTimeoutMs).emitWithAck('model:frozen', { hash });
    if (!result.ok) throw new Error(`${result.error.code}: ${result.error.message}`);
    return result.value.weights;
  }

  private deliverSecAgg(event: string, message: { round: number }): void {
    const waiter = this.secaggWaiter;
    if (waiter && waiter.event === event && waiter.round === message.round) {
      this.secaggWaiter = undefined;
      waiter.resolve(message);
      return;
    }
    this.secaggInbox.set(event, { round: message.round, message });
  }

  private failSecAggWait(error: Error): void {
    const waiter = this.secaggWaiter;
    this.secaggWaiter = undefined;
    waiter?.reject(error);
  }

  /** The coordinator's next secagg message of this kind for this round; rejects when the round ends or the connection drops. */
  private nextSecAgg<T>(event: string, round: number): Promise<T> {
    const held = this.secaggInbox.get(event);
    this.secaggInbox.delete(event);
    if (held && held.round === round) return Promise.resolve(held.message as T);
    if (!this.socket.connected || this.abortedRound === round) return Promise.reject(new TrainingAborted());
    return new Promise<T>((resolve, reject) => {
      this.secaggWaiter = { event, round, resolve: (m) => resolve(m as T), reject };
    });
  }

  private async sendSecAgg(
    event: 'secagg:advertise' | 'secagg:shares' | 'secagg:masked' | 'secagg:unmask',
    message: unknown,
  ): Promise<void> {
    const timed = this.socket.timeout(this.ackTimeoutMs);
    const emit = timed.emitWithAck.bind(timed) as (event: string, message: unknown) => Promise<Ack<SecAggAccepted>>;
    const ack = await emit(event, message);
    if (!ack.ok) throw new SecAggRefused(ack.error.code, ack.error.message);
  }

  private onRoundEnd(message: RoundEndMessage): void {
    if (message.round === this.activeRound && !this.activeAsync) {
      this.abortedRound = message.round;
      this.failSecAggWait(new TrainingAborted());
    }
    this.emit({ type: 'round-end', message });
    const clientLedger = this.options.clientLedger;
    if (clientLedger) {
      // In the rounds chain, so a round's start and the previous round's charge never interleave.
      this.rounds = this.rounds
        .then(async () => {
          const charge = await clientLedger.roundEnded(message.round, message.clientDp);
          if (charge.kind !== 'not-charged') this.emitClientPrivacy(clientLedger);
        })
        .catch((error: unknown) =>
          this.emit({ type: 'error', message: `client-level ledger: ${error instanceof Error ? error.message : String(error)}` }),
        );
    }
  }

  private emitClientPrivacy(clientLedger: ClientLevelLedger): void {
    const { ledger } = clientLedger;
    this.emit({
      type: 'client-privacy',
      epsilon: ledger.epsilon,
      delta: ledger.delta,
      budget: ledger.epsilonBudget,
      exhausted: clientLedger.exhausted,
      accountant: ledger.accounted.accountant,
    });
  }

  /** Under client-level DP, charges this participant's own ledger for a round it was selected in, or refuses the round. */
  private async admitClientLevel(message: RoundStartMessage): Promise<boolean> {
    const announced = message.config.clientDp;
    const clientLedger = this.options.clientLedger;
    if (!announced || !clientLedger) return true;
    // Skellam noise is known only by an RDP bound, whatever the announcement says: the ledger must not read it as a Gaussian's PLD.
    const skellam = message.config.privacy?.skellamVariance !== undefined;
    const charge = await clientLedger.admit(message.round, skellam ? { ...announced, rdpOnly: true } : announced);
    this.emitClientPrivacy(clientLedger);
    if (charge.kind !== 'refused') return true;
    return this.decline(
      message.round,
      `client-level privacy budget spent: this round would take this participant's own ε from ${charge.epsilon.toFixed(3)} to ${charge.projectedEpsilon.toFixed(3)}, above its budget of ${clientLedger.ledger.epsilonBudget}`,
      true,
    );
  }

  /**
   * A round with secure aggregation (core/secagg): advertise keys, share the
   * secrets, train, then clip, noise (the round's FitConfig.privacy, once),
   * quantise and mask the update and send it; finally answer the unmasking
   * request. The coordinator never sees the update on its own.
   */
  private async secureRound(task: TaskSummary, message: RoundStartMessage, info: SecAggRoundInfo, weights: Float32Array): Promise<void> {
    const round = message.round;
    const config: SecAggConfig = { ...info.config, roundSeed: toBytes(info.config.roundSeed) };
    const client = await SecAggClient.create(config, info.index);
    const step = (name: 'advertised' | 'shared' | 'masked' | 'unmasked') =>
      this.emit({
        type: 'secagg',
        round,
        step: name,
        index: info.index,
        participants: config.participants,
        neighbours: config.neighbours,
        threshold: config.threshold,
      });
    try {
      await this.sendSecAgg('secagg:advertise', encodeAdvertise(client.advertise()));
      step('advertised');
      const directory = decodeKeys(await this.nextSecAgg<SecAggKeysWire>('secagg:keys', round));
      await this.sendSecAgg('secagg:shares', encodeShares(await client.shareKeys(directory)));
      step('shared');
      const forwarded = decodeForwarded(await this.nextSecAgg<SecAggForwardedWire>('secagg:forwarded', round));
      const result = await this.trainRound(message, weights);
      const update = await this.weights.uploadValues(task, result.update);
      this.options.onPlainUpdate?.(round, update);
      const privacy = message.config.privacy;
      // Clip, noise and (Skellam, int4) rotate as the round asks (secure-input.ts).
      const prepared = secureInput(update, privacy, config);
      const masked = await client.maskInput(forwarded, prepared.input, prepared.options);
      if ((await this.chargePrivacy(round, result)) === 'refused') {
        client.abort();
        return;
      }
      this.emit({ type: 'status', status: 'uploading', detail: `round ${round}` });
      const wire = encodeMasked(masked, config);
      const bytes = toBytes(wire.masked);
      await this.sendSecAgg('secagg:masked', wire);
      step('masked');
      this.emit({
        type: 'uploaded',
        round,
        metrics: result.metrics,
        bytes: bytes.byteLength,
        clipped: prepared.clipped(),
        noised: (privacy?.noiseStd ?? 0) > 0 || (privacy?.skellamVariance ?? 0) > 0,
        masked: true,
        wordBits: config.wordBits ?? 32,
        vectorLength: config.vectorLength,
      });
      const request = await this.nextSecAgg<UnmaskRequestMessage>('secagg:unmask-request', round);
      await this.sendSecAgg('secagg:unmask', encodeUnmask(await client.unmask(request)));
      step('unmasked');
    } catch (error) {
      client.abort();
      throw error;
    }
  }

  private async onRoundStart(message: RoundStartMessage): Promise<void> {
    const task = this.task;
    if (!task) return;
    const round = message.round;
    this.activeRound = round;
    this.activeAsync = message.mode === 'async';
    try {
      if (!(await this.admitRound(message)) || !(await this.admitClientLevel(message))) return;
      this.emit({ type: 'status', status: 'downloading', detail: `round ${round}` });
      const weights = await this.weights.roundWeights(task, message.model);
      if (message.secagg) {
        await this.secureRound(task, message, message.secagg, weights);
        return;
      }
      const result = await this.trainRound(message, weights);
      // Fine-tuning: only the trainable values are clipped, noised and sent (the frozen ones did not move).
      const update = await this.weights.uploadValues(task, result.update);
      const privacy = message.config.privacy;
      const privatized = privacy ? privatizeUpdate(update, privacy) : undefined;
      // Compression comes after clipping and noise: post-processing of the released update (docs/compression.md).
      const compression = message.config.compression ?? { encoding: 'float32' };
      const encoded = this.feedback.encode(update, compression, this.rounding);
      const frame = encoded.frame;
      const epsilon = await this.chargePrivacy(round, result);
      if (epsilon === 'refused') return;
      // Stopped (or sent away by the server) while training: the socket will not reconnect, and an update emitted now would
      // only sit in its buffer, its acknowledgement timer keeping the process alive for ackTimeoutMs.
      if (!this.socket.active) return;
      this.emit({ type: 'status', status: 'uploading', detail: `round ${round}` });
      const ack: Ack<UpdateAccepted> = await this.socket.timeout(this.ackTimeoutMs).emitWithAck('update', {
        round,
        baseVersion: message.model.version,
        numExamples: result.numExamples,
        // Metrics and timing come from raw local data, outside any DP guarantee: under DP they stay here.
        metrics: isPrivateRound(message.config) ? undefined : result.metrics,
        trainMs: isPrivateRound(message.config) ? undefined : result.trainMs,
        update: frame,
        epsilon,
      });
      if (ack.ok) {
        if (this.options.errorFeedback ?? true) encoded.commit();
        this.emit({
          type: 'uploaded',
          round,
          metrics: result.metrics,
          bytes: frame.byteLength,
          clipped: privatized?.clipped ?? false,
          noised: (privacy?.noiseStd ?? 0) > 0,
          encoding: compression.encoding,
          float32Bytes: frameBytes('float32', update.length),
        });
      } else {
        this.emit({ type: 'rejected', round, code: ack.error.code, message: ack.error.message });
      }
    } catch (error) {
      if (error instanceof SecAggRefused) {
        this.emit({ type: 'rejected', round, code: error.code, message: error.message });
      } else if (!(error instanceof TrainingAborted)) {
        this.emit({ type: 'error', message: `round ${round}: ${error instanceof Error ? error.message : String(error)}` });
      }
    } finally {
      if (this.activeRound === round) this.activeRound = 0;
      if (this.secaggWaiter?.round === round) this.failSecAggWait(new TrainingAborted());
      if (!this.finished) this.emit({ type: 'status', status: this.socket.connected ? 'waiting' : 'disconnected' });
    }
  }
}

function budgetSpent(epsilon: number, projected: number, budget: number | undefined): string {
  return `privacy budget spent: this round would take ε from ${epsilon.toFixed(3)} to ${projected.toFixed(3)}, above the budget of ${budget}`;
}

/** The coordinator refused a secure aggregation message (its ack code and message). */
class SecAggRefused extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The wire `progress` message keeps its validated fields only; batch detail stays on the device. */
function wireProgress(round: number, p: TrainProgress): ProgressMessage {
  return { round, epoch: p.epoch, epochs: p.epochs, fraction: p.fraction };
}

/** A round under any differential privacy: nothing computed from raw local data may leave but the update. */
function isPrivateRound(config: RoundStartMessage['config']): boolean {
  return config.privacy !== undefined || config.sampleDp !== undefined;
}
