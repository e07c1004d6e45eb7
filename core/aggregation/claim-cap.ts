import type { ClientResult, RoundAggregator, RoundContext, Strategy } from './strategy.ts';
import { StrategyWrapper } from './wrapper.ts';

/**
 * Caps the weight a participant's claimed example count can buy in a
 * weighted mean. A count is self-reported and cannot be verified, so one
 * participant claiming 10^8 examples would otherwise own the average. The
 * count an update is weighted with is
 *   min(claimed, maxPerParticipant, multiple × median of the join-time
 *       claims of the round's selected participants)
 * The median is the lower median of the claims the selected participants
 * made when they joined (RoundContext.claimedExamples): it is known when the
 * round opens, so the cap does not depend on the order updates arrive in,
 * and a minority of liars cannot move it. Either limit may be absent.
 *
 * An update over the cap is not refused: its count is lowered to the cap
 * (the participant may truly hold that much data; it just buys no more
 * weight). Strategies that weigh every update once (median, Krum, DP-FedAvg,
 * the secure sum) are unaffected.
 */
export interface ClaimCapOptions {
  /** Cap relative to the median claim; undefined: none. */
  readonly multiple?: number;
  /** Task-level maximum per participant; undefined: none. */
  readonly maxPerParticipant?: number;
}

/**
 * 3× the median: honest shards of one federation differ, and a participant
 * with up to three times the typical data keeps its full weight; past that
 * its extra data (or its lie) buys nothing more. With n honest participants
 * of similar counts, one liar's share of the weight is at most 3/(n + 3).
 */
export const DEFAULT_CLAIM_CAP_MULTIPLE = 3;

export class ClaimCappedStrategy extends StrategyWrapper {
  readonly name: string;

  constructor(
    inner: Strategy,
    readonly options: ClaimCapOptions,
  ) {
    super(inner);
    const { multiple, maxPerParticipant } = options;
    if (multiple !== undefined && !(multiple >= 1 && Number.isFinite(multiple))) throw new RangeError(`the claim cap multiple must be finite and at least 1, got ${multiple}`);
    if (maxPerParticipant !== undefined && !(Number.isInteger(maxPerParticipant) && maxPerParticipant >= 1)) {
      throw new RangeError(`the maximum examples per participant must be a positive integer, got ${maxPerParticipant}`);
    }
    // The rule keeps its name (status, run reports): the cap is a setting, not another rule.
    this.name = inner.name;
  }

  /** The most examples one update may be weighted with in a round whose selected participants claimed `claims` at join; Infinity: no cap. */
  capFor(claims: readonly number[] | undefined): number {
    let cap = this.options.maxPerParticipant ?? Number.POSITIVE_INFINITY;
    const multiple = this.options.multiple;
    const valid = (claims ?? []).filter((n) => Number.isFinite(n) && n > 0);
    if (multiple !== undefined && valid.length > 0) {
      const sorted = [...valid].sort((a, b) => a - b);
      const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
      cap = Math.min(cap, Math.max(1, Math.floor(multiple * median)));
    }
    return cap;
  }

  override beginRound(context: RoundContext): RoundAggregator {
    return new ClaimCappedRound(this.inner.beginRound(context), this.capFor(context.claimedExamples));
  }
}

class ClaimCappedRound implements RoundAggregator {
  readonly addSum?: (sum: Float64Array, count: number) => void;

  constructor(
    private readonly inner: RoundAggregator,
    private readonly cap: number,
  ) {
    const addSum = inner.addSum;
    if (addSum) this.addSum = (sum, count) => addSum.call(inner, sum, count);
  }

  get count(): number {
    return this.inner.count;
  }

  add(result: ClientResult): void {
    this.inner.add(result.numExamples > this.cap ? { ...result, numExamples: this.cap } : result);
  }

  finish(): Float32Array | null {
    return this.inner.finish();
  }

  abandon(): void {
    this.inner.abandon?.();
  }
}
