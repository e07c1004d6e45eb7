import type { StalenessStats } from '../protocol/status.ts';
import type { ClientResult } from './strategy.ts';

/**
 * Staleness in asynchronous buffered aggregation (FedBuff, Nguyen et al.
 * 2022; docs/async.md). An update trained from model version b and applied
 * to version v has staleness s = v − b. Each update in a buffer is weighed
 * by w(s) = (1 + s)^−a: a = 0.5 is FedBuff's (and Meta FLSim's) 1/√(1+s),
 * the default; any a ≥ 0 is the polynomial option (a = 0 weighs every update
 * the same). The weight travels with the result (ClientResult.weight) and
 * the rule applies it after any clipping of its own: scaling before a clip
 * would be undone by it (DP-FedAvg clips every update to S, so a stale
 * update would count fully). FedAvg then applies
 *
 *   x ← x + η · Σ nᵢ·w(sᵢ)·Δᵢ / Σ nᵢ
 *
 * (the example weights are normalised, the staleness weights are not: a
 * buffer of stale updates moves the model less, as in FedBuff), and DP-FedAvg
 * x ← x + η · (Σ w(sᵢ)·clip(Δᵢ) + noise) / m. Because w(s) ≤ 1, a weighted
 * contribution is never larger than the clipped one, so a clip bound or a DP
 * sensitivity computed for unweighted updates still holds.
 */

/** FedBuff's exponent: w(s) = 1/√(1+s). */
export const DEFAULT_STALENESS_EXPONENT = 0.5;

/** The weight of an update with staleness `staleness`: (1 + s)^−exponent. */
export function stalenessWeight(staleness: number, exponent = DEFAULT_STALENESS_EXPONENT): number {
  if (!Number.isInteger(staleness) || staleness < 0) throw new RangeError(`staleness must be a non-negative integer, got ${staleness}`);
  if (!(exponent >= 0) || !Number.isFinite(exponent)) throw new RangeError(`the staleness exponent must be a number >= 0, got ${exponent}`);
  return (1 + staleness) ** -exponent;
}

/** The result as the strategy receives it: the same update, with its staleness weight to apply after any clipping. */
export function stalenessWeighted(result: ClientResult, staleness: number, exponent = DEFAULT_STALENESS_EXPONENT): ClientResult {
  return { ...result, weight: stalenessWeight(staleness, exponent) };
}

/** Why an update is too stale to be used, or undefined when it may go into the buffer. */
export function stalenessRefusal(baseVersion: number, appliedTo: number, maxStaleness: number): string | undefined {
  const staleness = appliedTo - baseVersion;
  if (staleness <= maxStaleness) return undefined;
  return `update trained from model ${baseVersion} would be applied to model ${appliedTo}: staleness ${staleness} is above the maximum of ${maxStaleness}; train again from the newest model`;
}

/** Tallies the staleness of a buffer's updates. */
export class StalenessTally {
  private readonly counts: number[] = [];
  private total = 0;
  private sum = 0;

  add(staleness: number): void {
    while (this.counts.length <= staleness) this.counts.push(0);
    this.counts[staleness]!++;
    this.total++;
    this.sum += staleness;
  }

  get count(): number {
    return this.total;
  }

  /** Undefined while the buffer is empty. */
  summary(): StalenessStats | undefined {
    if (this.total === 0) return undefined;
    return { max: this.counts.length - 1, mean: this.sum / this.total, counts: [...this.counts] };
  }
}
