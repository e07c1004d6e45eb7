import type { RoundRecord } from '../protocol/status.ts';

/**
 * The last check before a round's aggregate becomes the global model: it
 * must be finite, and its change to the model must be in line with the
 * changes committed recently. Whatever got past the per-update checks (a
 * flood of huge values under secure aggregation, a strategy's float32
 * overflow: FedAvg's finish() converts a float64 sum to float32 unchecked,
 * so finite 1e38 updates become ±Infinity) stops here: the round is
 * skipped, the model is kept, and the record says why.
 *
 * "In line": the L2 norm of the change (candidate − current) is at most
 * `changeMultiple` × the median of the change norms of the last `window`
 * committed rounds. Until `warmUp` such rounds exist, the reference is the
 * current model's own norm (a round that moves the model by more than
 * `changeMultiple` times its whole norm is not training); a model of norm 0
 * has no reference and only the finiteness check applies.
 */
export interface AggregateGuardOptions {
  readonly changeMultiple: number;
  readonly window: number;
  readonly warmUp: number;
}

/**
 * 10×: honest change norms shrink as training converges and move by small
 * factors between rounds (a learning-rate change from the dashboard, more
 * participants); the attacks this stops are many orders of magnitude out.
 */
export const DEFAULT_AGGREGATE_GUARD: AggregateGuardOptions = { changeMultiple: 10, window: 10, warmUp: 3 };

export type AggregateCheck = { readonly ok: true; readonly changeNorm: number } | { readonly ok: false; readonly reason: string };

/** Checks `candidate` against the current weights and the change norms of recent committed rounds (oldest first). */
export function checkAggregate(
  current: Float32Array,
  candidate: Float32Array,
  recentChangeNorms: readonly number[],
  options: AggregateGuardOptions = DEFAULT_AGGREGATE_GUARD,
): AggregateCheck {
  if (candidate.length !== current.length)
    return { ok: false, reason: `the aggregate has ${candidate.length} values, the model ${current.length}` };
  let nonFinite = 0;
  let firstBad = -1;
  let change = 0;
  let model = 0;
  for (let i = 0; i < candidate.length; i++) {
    const c = candidate[i]!;
    if (!Number.isFinite(c)) {
      if (nonFinite++ === 0) firstBad = i;
      continue;
    }
    const d = c - current[i]!;
    change += d * d;
    model += current[i]! * current[i]!;
  }
  if (nonFinite > 0)
    return {
      ok: false,
      reason: `the aggregate is not finite (${nonFinite} of ${candidate.length} values are NaN or ±Infinity, the first at index ${firstBad})`,
    };
  const changeNorm = Math.sqrt(change);
  if (!Number.isFinite(changeNorm)) return { ok: false, reason: 'the norm of the aggregate change overflows' };
  const recent = recentChangeNorms.filter((n) => Number.isFinite(n) && n >= 0).slice(-options.window);
  const reference =
    recent.length >= options.warmUp
      ? { value: median(recent), what: `the median change norm of the last ${recent.length} committed rounds` }
      : {
          value: Math.sqrt(model),
          what: `the current model norm (warm-up: fewer than ${options.warmUp} committed rounds to compare with)`,
        };
  if (reference.value > 0 && changeNorm > options.changeMultiple * reference.value) {
    return {
      ok: false,
      reason: `the aggregate changes the model by L2 norm ${changeNorm.toPrecision(4)}, above ${options.changeMultiple} × ${reference.value.toPrecision(4)} (${reference.what})`,
    };
  }
  return { ok: true, changeNorm };
}

/** The lower median (robust with fewer than half outliers). */
function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

/** The change norms of the committed rounds in `history`, oldest first: what checkAggregate compares a new one with. */
export function committedChangeNorms(history: readonly RoundRecord[]): number[] {
  return history.filter((r) => r.outcome === 'aggregated' && r.changeNorm !== undefined).map((r) => r.changeNorm!);
}
