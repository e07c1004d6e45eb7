import type { RoundRecord } from '../core/protocol/status.ts';
import type { NodeParticipant } from '../test/helpers/node-participants.ts';

/**
 * `bench/async.ts --trace`: where a run's wall-clock time goes, timed from
 * the participants' side of their sockets (what they receive and send, on
 * the coordinator's clock, Date.now) and from the round records (when each
 * round opened, when its last update was taken, when it was evaluated).
 */

/** What `SocketTrace.breakdown` measures, in ms. */
export interface TraceBreakdown {
  readonly training: number[];
  readonly waits: number[];
  readonly sameBase: number;
  readonly evaluate: number[];
  readonly save: number[];
  readonly open: number[];
  readonly rounds: number;
  /** Versions filled as they opened: every update taken within FILLED_AT_OPEN_MS of the version's start. */
  readonly filledAtOpen: number;
}

/**
 * Updates held while the version before was made are taken when the next
 * version opens (async-pool.ts): a version whose every update was taken this
 * soon after its start was filled by held updates and closed as it opened.
 * An update trained on a device and sent over the socket takes far longer.
 */
export const FILLED_AT_OPEN_MS = 5;

export type Seen =
  | { readonly at: number; readonly kind: 'start'; readonly round: number; readonly version: number }
  | { readonly at: number; readonly kind: 'update'; readonly round: number; readonly baseVersion: number }
  | { readonly at: number; readonly kind: 'end'; readonly round: number };

/** Every participant's round:start, round:end and update, with the time. */
export class SocketTrace {
  private readonly seen: Seen[][] = [];

  /** Records what participant k's socket receives and sends from now on. */
  static of(participants: readonly NodeParticipant[]): SocketTrace {
    const trace = new SocketTrace();
    participants.forEach((p, k) => {
      p.participant.socket.onAny((event: string, message: { round: number; model?: { version: number } }) => {
        if (event === 'round:start')
          trace.record(k, { at: Date.now(), kind: 'start', round: message.round, version: message.model?.version ?? -1 });
        if (event === 'round:end') trace.record(k, { at: Date.now(), kind: 'end', round: message.round });
      });
      p.participant.socket.onAnyOutgoing((event: string, message: { round: number; baseVersion: number }) => {
        if (event === 'update') trace.record(k, { at: Date.now(), kind: 'update', round: message.round, baseVersion: message.baseVersion });
      });
    });
    return trace;
  }

  /** Participant k saw (or sent) `e`; in time order per participant. */
  record(k: number, e: Seen): void {
    const seen = this.seen[k] ?? [];
    seen.push(e);
    this.seen[k] = seen;
  }

  /** Lines describing the run up to `until` (ms, Date.now), from `breakdown`. */
  summary(history: readonly RoundRecord[], devices: readonly number[], until: number): string[] {
    const mean = (xs: readonly number[]) => (xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length);
    const ms = (x: number) => (Number.isNaN(x) ? '–' : `${Math.round(x)} ms`);
    const b = this.breakdown(history, devices, until);
    const waited = b.waits.filter((w) => w >= 50);
    return [
      `  local runs of these devices: ${b.training.length}, mean ${ms(mean(b.training))} (round:start received to update sent)`,
      `  wait after an update for the next round:start: mean ${ms(mean(b.waits))} over ${b.waits.length}; ${waited.length} waited ≥ 50 ms (mean ${ms(mean(waited))}); ${b.sameBase} of ${b.waits.length} were handed the version they had just trained from`,
      `  per round: last update taken → evaluated (aggregate, evaluate) mean ${ms(mean(b.evaluate))}; → round:end received (save, publish) ${ms(mean(b.save))}; → next round's first round:start (start saved, opened) ${ms(mean(b.open))}; ${b.rounds} rounds, ${b.filledAtOpen} of them filled as they opened (by updates held while the one before was made)`,
    ];
  }

  /**
   * Up to `until`: each local run of the participants in `devices`
   * (round:start received to update sent) and each wait after an update for
   * the next round:start, how many of those hand-outs were of the version the
   * update was trained from; and per round, the time from its last update
   * taken to its evaluation, from there to the first round:end received
   * (saved and published), and from there to the next round's first
   * round:start (its start saved, opened).
   */
  breakdown(history: readonly RoundRecord[], devices: readonly number[], until: number): TraceBreakdown {
    const training: number[] = [];
    const waits: number[] = [];
    let sameBase = 0;
    for (const k of devices) {
      const mine = this.seen[k] ?? [];
      let lastStart: Extract<Seen, { kind: 'start' }> | undefined;
      let lastUpdate: Extract<Seen, { kind: 'update' }> | undefined;
      for (const e of mine) {
        if (e.at > until) break;
        if (e.kind === 'start') {
          if (lastUpdate) {
            waits.push(e.at - lastUpdate.at);
            if (e.version === lastUpdate.baseVersion) sameBase++;
          }
          lastStart = e;
          lastUpdate = undefined;
        } else if (e.kind === 'update' && lastStart) {
          training.push(e.at - lastStart.at);
          lastUpdate = e;
        }
      }
    }
    const firstEnd = new Map<number, number>();
    const firstStart = new Map<number, number>();
    for (const mine of this.seen) {
      for (const e of mine ?? []) {
        if (e.kind === 'end' && !(e.at >= (firstEnd.get(e.round) ?? Infinity))) firstEnd.set(e.round, e.at);
        if (e.kind === 'start' && !(e.at >= (firstStart.get(e.round) ?? Infinity))) firstStart.set(e.round, e.at);
      }
    }
    const evaluate: number[] = [];
    const save: number[] = [];
    const open: number[] = [];
    for (const record of history) {
      const evaluated = record.startedAt + record.durationMs;
      if (evaluated > until) break;
      const received = record.participants?.filter((p) => p.outcome === 'received').map((p) => p.durationMs) ?? [];
      if (received.length > 0) evaluate.push(evaluated - (record.startedAt + Math.max(...received)));
      const published = firstEnd.get(record.round);
      if (published !== undefined) save.push(published - evaluated);
      const next = firstStart.get(record.round + 1);
      if (published !== undefined && next !== undefined) open.push(next - published);
    }
    const counted = history.filter((r) => r.startedAt + r.durationMs <= until);
    // Read from the round records, not the sockets: since async-pool.ts hands the model just published to idle
    // participants, such a version has round:starts too.
    const filledAtOpen = counted.filter((r) => {
      const received = r.participants?.filter((p) => p.outcome === 'received') ?? [];
      return received.length > 0 && received.every((p) => p.durationMs <= FILLED_AT_OPEN_MS);
    }).length;
    return { training, waits, sameBase, evaluate, save, open, rounds: counted.length, filledAtOpen };
  }
}
