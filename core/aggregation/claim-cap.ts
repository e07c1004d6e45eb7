import { innerPartialMethods, type PartialAggregate } from './partial.ts';
import type { ClientResult, RoundAggregator, RoundContext, Strategy } from './strategy.ts';
import { onceOnly, StrategyWrapper } from './wrapper.ts';

/**
 * Caps the weight a participant's claimed example count can buy in a
 * weighted mean. A count is self-reported and cannot be verified, so one
 * participant claiming 10^8 examples would otherwise own the average. The
 * count an update is weighted with is
 *   min(claimed, maxPerParticipant, multiple × reference claim)
 * The reference is the lower median of the (capped) counts of the last 100
 * updates aggregated in earlier rounds; until 3 of them exist (the first
 * round, or after a restart) it is the lower median of the claims the
 * round's selected participants made when they joined
 * (RoundContext.claimedExamples). Either is known when the round opens, so
 * the cap does not depend on the order updates arrive in; a minority of
 * liars cannot move a median, and identities that join with tiny claims but
 * never deliver an accepted update do not count once the warm-up is over.
 * Either limit may be absent.
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

/** How many aggregated counts the reference keeps, and how many it needs before the join-time claims stop being used. */
const CLAIM_WINDOW = 100;
const CLAIM_WARM_UP = 3;

/**
 * 3× the median: honest shards of one federation differ, and a participant
 * with up to three times the typical data keeps its full weight; past that
 * its extra data (or its lie) buys nothing more. With n honest participants
 * of similar counts, one liar's share of the weight is at most 3/(n + 3).
 */
export const DEFAULT_CLAIM_CAP_MULTIPLE = 3;

export class ClaimCappedStrategy extends StrategyWrapper {
  readonly name: string;
  /** Counts (after the cap) of updates aggregated in earlier rounds, oldest first. */
  private readonly aggregated: number[] = [];

  constructor(
    inner: Strategy,
    readonly options: ClaimCapOptions,
  ) {
    super(inner);
    const { multiple, maxPerParticipant } = options;
    if (multiple !== undefined && !(multiple >= 1 && Number.isFinite(multiple)))
      throw new RangeError(`the claim cap multiple must be finite and at least 1, got ${multiple}`);
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
    const valid = this.aggregated.length >= CLAIM_WARM_UP ? this.aggregated : (claims ?? []).filter((n) => Number.isFinite(n) && n > 0);
    if (multiple !== undefined && valid.length > 0) {
      const sorted = [...valid].sort((a, b) => a - b);
      const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
      cap = Math.min(cap, Math.max(1, Math.floor(multiple * median)));
    }
    return cap;
  }

  override beginRound(context: RoundContext): RoundAggregator {
    return new ClaimCappedRound(this.inner.beginRound(context), this.capFor(context.claimedExamples), (counts) => this.remember(counts));
  }

  private remember(counts: readonly number[]): void {
    this.aggregated.push(...counts);
    if (this.aggregated.length > CLAIM_WINDOW) this.aggregated.splice(0, this.aggregated.length - CLAIM_WINDOW);
  }
}

class ClaimCappedRound implements RoundAggregator {
  readonly addSum?: (sum: Float64Array, count: number) => void;
  readonly partial?: () => PartialAggregate;
  readonly addPartial?: (partial: PartialAggregate) => void;
  private readonly counts: number[] = [];
  /** The round's counts join the reference once (onceOnly: a leader may both send for partials and finish the round). */
  private readonly rememberOnce: () => void;

  constructor(
    private readonly inner: RoundAggregator,
    private readonly cap: number,
    remember: (counts: readonly number[]) => void,
  ) {
    this.rememberOnce = onceOnly(() => remember(this.counts));
    const addSum = inner.addSum;
    if (addSum) this.addSum = (sum, count) => addSum.call(inner, sum, count);
    // On a cluster each node caps its own participants' claims; its sent partial makes its counts the reference, as finish() does.
    const { partial, addPartial } = innerPartialMethods(inner);
    this.addPartial = addPartial;
    this.partial =
      partial &&
      (() => {
        this.rememberOnce();
        return partial();
      });
  }

  get count(): number {
    return this.inner.count;
  }

  add(result: ClientResult): void {
    const numExamples = Math.min(result.numExamples, this.cap);
    this.inner.add(numExamples === result.numExamples ? result : { ...result, numExamples });
    this.counts.push(numExamples);
  }

  finish(): Float32Array | null {
    // Only counts of rounds that were aggregated become the reference for later ones.
    this.rememberOnce();
    return this.inner.finish();
  }

  abandon(): void {
    this.inner.abandon?.();
  }

  rejectAggregate(): void {
    this.inner.rejectAggregate?.();
  }
}
