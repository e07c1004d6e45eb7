import type { RoundRecord } from '../core/protocol/status.ts';
import type { NodeParticipant } from '../test/helpers/node-participants.ts';

/**
 * `bench/async.ts --trace`: where a run's wall-clock time goes, timed from
 * the participants' side of their sockets (what they receive and send, on
 * the coordinator's clock, Date.now) and from the round records (when each
 * round opened, when its last update was taken, when it was evaluated).
 */

type Seen =
  | { readonly at: number; readonly kind: 'start'; readonly round: number; readonly version: number }
  | { readonly at: number; readonly kind: 'update'; readonly round: number; readonly baseVersion: number }
  | { readonly at: number; readonly kind: 'end'; readonly round: number };

/** Records every participant's round:start, round:end and update, with the time. */
export class SocketTrace {
  private readonly seen: Seen[][] = [];

  constructor(participants: readonly NodeParticipant[]) {
    participants.forEach((p, k) => {
      const mine: Seen[] = [];
      this.seen[k] = mine;
      p.participant.socket.onAny((event: string, message: { round: number; model?: { version: number } }) => {
        if (event === 'round:start')
          mine.push({ at: Date.now(), kind: 'start', round: message.round, version: message.model?.version ?? -1 });
        if (event === 'round:end') mine.push({ at: Date.now(), kind: 'end', round: message.round });
      });
      p.participant.socket.onAnyOutgoing((event: string, message: { round: number; baseVersion: number }) => {
        if (event === 'update') mine.push({ at: Date.now(), kind: 'update', round: message.round, baseVersion: message.baseVersion });
      });
    });
  }

  /**
   * Lines describing the run up to `until` (ms, Date.now): the cycles of the
   * participants in `devices` (one local run and the wait for the next
   * model), and each round's steps on the coordinator.
   */
  summary(history: readonly RoundRecord[], devices: readonly number[], until: number): string[] {
    const mean = (xs: readonly number[]) => (xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length);
    const ms = (x: number) => (Number.isNaN(x) ? '–' : `${Math.round(x)} ms`);
    const training: number[] = [];
    const waits: number[] = [];
    let sameBase = 0;
    let handOuts = 0;
    for (const k of devices) {
      const mine = this.seen[k] ?? [];
      let lastStart: Extract<Seen, { kind: 'start' }> | undefined;
      let lastUpdate: Extract<Seen, { kind: 'update' }> | undefined;
      for (const e of mine) {
        if (e.at > until) break;
        if (e.kind === 'start') {
          if (lastUpdate) {
            waits.push(e.at - lastUpdate.at);
            handOuts++;
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
    const waited = waits.filter((w) => w >= 50);
    const counted = history.filter((r) => r.startedAt + r.durationMs <= until);
    // A version filled by updates held while the one before was made closes as it opens, before any slot is handed out.
    const noHandOut = counted.filter((r) => !firstStart.has(r.round)).length;
    return [
      `  local runs of these devices: ${training.length}, mean ${ms(mean(training))} (round:start received to update sent)`,
      `  wait after an update for the next round:start: mean ${ms(mean(waits))} over ${waits.length}; ${waited.length} waited ≥ 50 ms (mean ${ms(mean(waited))}); ${sameBase} of ${handOuts} were handed the version they had just trained from`,
      `  per round: last update taken → evaluated (aggregate, evaluate) mean ${ms(mean(evaluate))}; → round:end received (save, publish) ${ms(mean(save))}; → next round's first round:start (start saved, opened) ${ms(mean(open))}; ${counted.length} rounds, ${noHandOut} of them handed out no model`,
    ];
  }
}
