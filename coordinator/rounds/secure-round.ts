import { ackError, ackOk, ErrorCode, type Ack } from '../../core/protocol/errors.ts';
import type { SecAggAccepted, SecAggRoundInfo, UpdatePrivacy } from '../../core/protocol/messages.ts';
import type { SecAggRoundStats, SecureAggregationSettings } from '../../core/protocol/status.ts';
import { SecAggAbortError, SecAggError } from '../../core/secagg/errors.ts';
import { effectiveDegree, ROUND_SEED_BYTES } from '../../core/secagg/graph.ts';
import {
  recommendedThreshold,
  SecAggServer,
  type AdvertiseKeysMessage,
  type ForwardedSharesMessage,
  type KeyDirectoryMessage,
  type UnmaskRequestMessage,
  type MaskedInputMessage,
  type SecAggConfig,
  type SecAggResult,
  type ShareKeysMessage,
  type UnmaskResponseMessage,
} from '../../core/secagg/protocol.ts';
import type { PackedMaskedInputMessage } from '../../core/secagg/messages.ts';
import { checkDecodedSum } from '../../core/secagg/sum-range.ts';
import { unpackMaskedInput } from '../../core/secagg/word-packing.ts';
import type { Clock, TimerHandle } from './clock.ts';

/**
 * The transport side of one secure aggregation round (core/secagg): it maps
 * the round's selected participants to indices 1..n, checks every message's
 * `from` against the sender's index (the core assumes an authenticated
 * channel), runs the four steps with their own deadlines, relays the core's
 * outputs, and reports the decoded sum or the abort.
 *
 * Every incoming message and every step close runs through one queue, so
 * the core state machine never sees interleaved async calls.
 */

export type SecAggStep = 'advertise' | 'shares' | 'masked' | 'unmask';

export type SecAggOutbound =
  | { readonly event: 'secagg:keys'; readonly message: KeyDirectoryMessage }
  | { readonly event: 'secagg:forwarded'; readonly message: ForwardedSharesMessage }
  | { readonly event: 'secagg:unmask-request'; readonly message: UnmaskRequestMessage };

export type SecureRoundOutcome =
  | { readonly ok: true; readonly result: SecAggResult; readonly contributors: readonly string[] }
  | { readonly ok: false; readonly reason: string };

export interface SecureRoundHost {
  readonly clock: Clock;
  send(participantId: string, out: SecAggOutbound): void;
  /** A participant is out of the round: 'timeout' (did not answer a step in time) or 'excluded' (a refused message). */
  out(participantId: string, why: 'timeout' | 'excluded'): void;
  /** A participant's message for a step was accepted. */
  accepted(participantId: string, step: SecAggStep): void;
  /** The round is over. Called once. */
  done(outcome: SecureRoundOutcome): void;
  /** Tests only: each accepted masked vector, as the coordinator stores it. */
  observeMasked?(participantId: string, masked: Uint32Array): void;
}

/** The per-round SecAgg parameters for n selected participants. */
export function secAggConfigFor(round: number, n: number, vectorLength: number, settings: SecureAggregationSettings): SecAggConfig {
  const roundSeed = new Uint8Array(ROUND_SEED_BYTES);
  crypto.getRandomValues(roundSeed);
  let threshold = settings.threshold ?? 0;
  if (n >= 3) {
    const k = effectiveDegree(n, settings.neighbours);
    threshold = Math.min(k + 1, Math.max(threshold, recommendedThreshold(n, settings.neighbours)));
  }
  return {
    round,
    participants: n,
    neighbours: settings.neighbours,
    threshold,
    roundSeed,
    vectorLength,
    quantization: { clipRange: settings.clipRange, quantizationRange: settings.quantizationRange },
    // Compressed encodings: b-bit words sized at start; a round with more participants than b holds is refused by the core.
    ...(settings.wordBits === undefined ? {} : { wordBits: settings.wordBits }),
    // int4: participants rotate their inputs with the round's seeded rotation (core/privacy/skellam-rotation.ts).
    ...(settings.rotated === true ? { rotated: true } : {}),
    // A cluster's cohort minimum k: participants refuse to unmask fewer survivors (core/secagg/client.ts).
    ...(settings.minCohort === undefined ? {} : { minSurvivors: settings.minCohort }),
  };
}

const STEP_ORDER: readonly SecAggStep[] = ['advertise', 'shares', 'masked', 'unmask'];

export class SecureRound {
  readonly indexOf = new Map<string, number>();
  readonly idOf = new Map<number, string>();
  private step: SecAggStep | 'finished' = 'advertise';
  /** Who has yet to answer the open step. */
  private waiting: Set<string>;
  /** Out for good: left, timed out or excluded. */
  private readonly gone = new Set<string>();
  private queue: Promise<unknown> = Promise.resolve();
  private timer: TimerHandle | undefined;
  private readonly server: Promise<SecAggServer>;
  private readonly counts = { advertised: 0, shared: 0, masked: 0, unmasked: 0, dropoutsRecovered: 0, excluded: 0 };
  private abortedReason: string | undefined;
  private sumRefused = false;

  constructor(
    readonly config: SecAggConfig,
    participantIds: readonly string[],
    private readonly host: SecureRoundHost,
    private readonly timeouts: { readonly stepMs: number; readonly maskedMs: number },
    /** The round's client-side clipping and noise: the decoded sum is checked against them (core/secagg/sum-range.ts). */
    private readonly privacy?: UpdatePrivacy,
    /** B when the participants send their updates rotated (Skellam rounds): the decoded sum is checked in the rotated basis. */
    private readonly rotationBlock?: number,
    /** k on a cluster (docs/cluster.md): a sum of fewer masked inputs is never unmasked, whatever t allows. */
    private readonly minSurvivors?: number,
  ) {
    participantIds.forEach((id, i) => {
      this.indexOf.set(id, i + 1);
      this.idOf.set(i + 1, id);
    });
    this.waiting = new Set(participantIds);
    this.server = SecAggServer.create(config);
    // A config the core refuses (fewer than 3 selected, say) aborts the round at once.
    this.server.catch((error: unknown) => this.enqueue(async () => this.finishAborted(error, 'setup')));
    this.timer = host.clock.setTimer(timeouts.stepMs, () => this.onTimeout('advertise'));
  }

  /** What round:start tells participant `id`. */
  roundInfo(id: string): SecAggRoundInfo {
    const { config } = this;
    return {
      index: this.indexOf.get(id)!,
      config: { ...config, roundSeed: config.roundSeed.slice(), quantization: { ...config.quantization } },
    };
  }

  get stats(): SecAggRoundStats {
    return {
      participants: this.config.participants,
      neighbours: this.config.neighbours,
      threshold: this.config.threshold,
      ...this.counts,
      aborted: this.abortedReason,
      ...(this.sumRefused ? { sumRefused: true } : {}),
    };
  }

  /** Resolves once every message and step close queued so far has run (the engine's idle()). */
  async settled(): Promise<void> {
    let queued: Promise<unknown>;
    do {
      queued = this.queue;
      await queued;
    } while (queued !== this.queue);
  }

  get finished(): boolean {
    return this.step === 'finished';
  }

  /** One participant's message for `step`; never throws. */
  submit(
    participantId: string,
    step: SecAggStep,
    message: AdvertiseKeysMessage | ShareKeysMessage | MaskedInputMessage | PackedMaskedInputMessage | UnmaskResponseMessage,
  ): Promise<Ack<SecAggAccepted>> {
    const index = this.indexOf.get(participantId);
    if (index === undefined) return Promise.resolve(ackError(ErrorCode.NotSelected, `not selected for round ${this.config.round}`));
    if (this.gone.has(participantId))
      return Promise.resolve(ackError(ErrorCode.NotSelected, `no longer part of round ${this.config.round}`));
    if (message.from !== index) {
      this.exclude(participantId);
      return Promise.resolve(
        ackError(
          ErrorCode.SecAggRejected,
          `unknown-participant: from ${message.from} is not your index ${index} in round ${this.config.round}`,
        ),
      );
    }
    return this.enqueue(async (): Promise<Ack<SecAggAccepted>> => {
      if (this.gone.has(participantId)) return ackError(ErrorCode.NotSelected, `no longer part of round ${this.config.round}`);
      if (this.step === 'finished') return ackError(ErrorCode.SecAggRejected, `late: round ${this.config.round} is over`);
      try {
        const server = await this.server;
        switch (step) {
          case 'advertise':
            await server.receiveAdvertise(message as AdvertiseKeysMessage);
            break;
          case 'shares':
            server.receiveShareKeys(message as ShareKeysMessage);
            break;
          case 'masked': {
            // From the wire the words come packed b bits each: unpacking refuses a wrong length or padding.
            const input = 'packed' in message ? unpackMaskedInput(message, this.config) : (message as MaskedInputMessage);
            server.receiveMaskedInput(input);
            this.host.observeMasked?.(participantId, input.masked);
            break;
          }
          case 'unmask':
            server.receiveUnmask(message as UnmaskResponseMessage);
            break;
        }
      } catch (error) {
        if (!(error instanceof SecAggError)) throw error;
        this.exclude(participantId);
        return ackError(ErrorCode.SecAggRejected, `${error.code}: ${error.message}`);
      }
      // Counted as accepted, so a round that aborts at the step's close still records who advertised.
      if (step === 'advertise') this.counts.advertised++;
      if (step === 'unmask') this.counts.unmasked++;
      this.host.accepted(participantId, step);
      this.waiting.delete(participantId);
      if (this.waiting.size === 0 && this.step === step) await this.closeStep();
      return ackOk({ round: this.config.round });
    });
  }

  /** The participant's connection closed (or it declined): the round stops waiting for it. */
  leave(participantId: string): void {
    if (!this.indexOf.has(participantId) || this.gone.has(participantId)) return;
    this.gone.add(participantId);
    this.stopWaitingFor(participantId);
  }

  /** A refused message: the sender is out of the round. */
  exclude(participantId: string): void {
    if (!this.indexOf.has(participantId) || this.gone.has(participantId)) return;
    this.gone.add(participantId);
    this.counts.excluded++;
    this.host.out(participantId, 'excluded');
    this.stopWaitingFor(participantId);
  }

  /**
   * Ends the round now (the engine's safety deadline, a stop): nothing is
   * revealed. `reason` is recorded as the cause: it is not the core's abort.
   */
  abort(reason: string): void {
    void this.enqueue(async () => {
      if (this.step === 'finished') return;
      (await this.server.catch(() => undefined))?.abort();
      this.finishAborted(reason, this.step);
    });
  }

  private stopWaitingFor(participantId: string): void {
    if (!this.waiting.delete(participantId)) return;
    const step = this.step;
    if (this.waiting.size === 0 && step !== 'finished') {
      void this.enqueue(async () => {
        if (this.step === step && this.waiting.size === 0) await this.closeStep();
      });
    }
  }

  private onTimeout(step: SecAggStep): void {
    void this.enqueue(async () => {
      if (this.step !== step) return;
      for (const id of this.waiting) {
        this.gone.add(id);
        this.host.out(id, 'timeout');
      }
      this.waiting.clear();
      await this.closeStep();
    });
  }

  private enqueue<T>(op: () => Promise<T>): Promise<T> {
    const next = this.queue.then(op);
    this.queue = next.catch((error: unknown) => {
      console.error(`secure aggregation round ${this.config.round}:`, error);
    });
    return next;
  }

  /** Closes the open step, sends its output and opens the next (skipping through steps nobody is left to answer). */
  private async closeStep(): Promise<void> {
    const step = this.step;
    if (step === 'finished') return;
    this.host.clock.clear(this.timer!);
    this.timer = undefined;
    let server: SecAggServer;
    try {
      server = await this.server;
    } catch (error) {
      this.finishAborted(error, step);
      return;
    }
    const live = (indices: Iterable<number>): Set<string> => {
      const out = new Set<string>();
      for (const i of indices) {
        const id = this.idOf.get(i)!;
        if (!this.gone.has(id)) out.add(id);
      }
      return out;
    };
    try {
      switch (step) {
        case 'advertise': {
          const directory = server.closeAdvertise();
          this.counts.advertised = directory.keys.length;
          const recipients = directory.keys.map((k) => k.index);
          this.open('shares', live(recipients), this.timeouts.stepMs);
          for (const id of this.waiting) this.host.send(id, { event: 'secagg:keys', message: directory });
          break;
        }
        case 'shares': {
          const forwarded = server.closeShareKeys();
          this.counts.shared = forwarded.length;
          this.open('masked', live(forwarded.map((f) => f.to)), this.timeouts.maskedMs);
          for (const f of forwarded) {
            const id = this.idOf.get(f.to)!;
            if (this.waiting.has(id)) this.host.send(id, { event: 'secagg:forwarded', message: f });
          }
          break;
        }
        case 'masked': {
          const request = server.closeMaskedInput();
          this.counts.masked = request.survivors.length;
          this.counts.dropoutsRecovered = request.dropped.length;
          // t may be below k (t is sized for recovering dropouts, not for the cohort): check before any unmask request goes out.
          if (this.minSurvivors !== undefined && request.survivors.length < this.minSurvivors) {
            server.abort();
            this.finishAborted(`cohort below k: ${request.survivors.length} masked inputs, at least ${this.minSurvivors} needed`, step);
            return;
          }
          this.open('unmask', live(request.survivors), this.timeouts.stepMs);
          for (const id of this.waiting) this.host.send(id, { event: 'secagg:unmask-request', message: request });
          break;
        }
        case 'unmask': {
          this.step = 'finished';
          const result = await server.finish();
          // Garbage inputs (random masked vectors or shares) decode to a sum no honest inputs can make: abort, keep the model.
          const check = checkDecodedSum(result.sum, {
            quantization: this.config.quantization,
            contributors: result.contributors.length,
            privacy: this.privacy,
            rotationBlock: this.rotationBlock,
          });
          if (!check.ok) {
            this.sumRefused = true;
            this.finishAborted(check.reason, 'finished');
            return;
          }
          this.host.done({ ok: true, result, contributors: result.contributors.map((i) => this.idOf.get(i)!) });
          return;
        }
      }
    } catch (error) {
      this.finishAborted(error, step);
      return;
    }
    // Everyone left during the step just closed: close the next one at once.
    if (this.waiting.size === 0 && this.step !== 'finished') await this.closeStep();
  }

  private open(step: SecAggStep, waiting: Set<string>, timeoutMs: number): void {
    this.step = step;
    this.waiting = waiting;
    this.timer = this.host.clock.setTimer(timeoutMs, () => this.onTimeout(step));
  }

  /** `cause` is an error the core or the setup threw, or the engine's own reason (a deadline, a stop). */
  private finishAborted(cause: unknown, step: SecAggStep | 'setup' | 'finished'): void {
    if (this.abortedReason !== undefined) return;
    if (this.timer) this.host.clock.clear(this.timer);
    this.timer = undefined;
    this.step = 'finished';
    const at = step === 'setup' ? 'setup' : step === 'finished' ? 'the end' : `step ${STEP_ORDER.indexOf(step)} (${step})`;
    this.abortedReason =
      typeof cause === 'string'
        ? `${cause} at ${at}`
        : `${abortLabel(cause)} at ${at}: ${cause instanceof Error ? cause.message : String(cause)}`;
    this.host.done({ ok: false, reason: `secure aggregation aborted: ${this.abortedReason}` });
  }
}

/** What kind of failure ended the round, from the error thrown. */
function abortLabel(error: unknown): string {
  if (error instanceof SecAggAbortError && error.code === 'too-few-survivors') return 'fewer than t survivors';
  if (error instanceof SecAggError) return `refused (${error.code})`;
  return 'failed';
}
