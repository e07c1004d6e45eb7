import type { RoundSettings } from '../../core/protocol/status.ts';

/** The adaptive deadline never drops below this, however fast participants were. */
const MIN_ADAPTIVE_DEADLINE_MS = 5000;
/** Latencies kept for the adaptive deadline. */
const LATENCIES_KEPT = 100;

/** A round's deadline: fixed, or adapted to how long participants took lately (3 × the p90, within bounds). */
export class RoundDeadline {
  /** Latencies of recent updates. */
  private readonly recent: number[] = [];

  /** One participant's time from round start to its input. */
  record(ms: number): void {
    this.recent.push(ms);
    if (this.recent.length > LATENCIES_KEPT) this.recent.shift();
  }

  /** The deadline of the next round under `settings`. */
  nextMs({ roundTimeoutMs, adaptiveDeadline }: RoundSettings): number {
    if (!adaptiveDeadline || this.recent.length < 5) return roundTimeoutMs;
    const sorted = [...this.recent].sort((a, b) => a - b);
    const p90 = sorted[Math.min(sorted.length - 1, Math.floor(0.9 * sorted.length))]!;
    return Math.min(roundTimeoutMs, Math.max(MIN_ADAPTIVE_DEADLINE_MS, 3 * p90));
  }
}
