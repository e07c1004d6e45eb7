import type { EvalMetrics } from '../../core/protocol/messages.ts';
import type { RoundRecord } from '../../core/protocol/status.ts';

/**
 * The best model of a run, by the held-out test metrics: higher accuracy,
 * and on equal accuracy lower loss. Derived from the history alone, so it is
 * exactly as durable as the history (the checkpoint), and the same after a
 * restart.
 */

export function isBetter(candidate: EvalMetrics, best: EvalMetrics): boolean {
  return candidate.accuracy > best.accuracy || (candidate.accuracy === best.accuracy && candidate.loss < best.loss);
}

/** The aggregated round with the best metrics (the earliest of equals), if any round was evaluated. */
export function bestRound(history: readonly RoundRecord[]): RoundRecord | undefined {
  let best: RoundRecord | undefined;
  for (const r of history) {
    if (r.outcome !== 'aggregated' || !r.metrics) continue;
    if (!best || isBetter(r.metrics, best.metrics!)) best = r;
  }
  return best;
}

/** Evaluated rounds since the best one: what early stopping compares with its patience. */
export function roundsWithoutImprovement(history: readonly RoundRecord[]): number {
  const best = bestRound(history);
  if (!best) return 0;
  return history.filter((r) => r.round > best.round && r.outcome === 'aggregated' && r.metrics).length;
}
