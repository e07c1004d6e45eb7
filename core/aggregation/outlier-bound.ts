import { l2Norm } from '../privacy/update-privacy.ts';
import { ErrorCode, ProtocolError } from '../protocol/errors.ts';
import { innerPartialMethods, type PartialAggregate } from './partial.ts';
import type { ClientResult, RoundAggregator, RoundContext, Strategy } from './strategy.ts';
import { onceOnly, StrategyWrapper } from './wrapper.ts';

/**
 * Refuses updates whose L2 norm is far out of line with the norms accepted
 * recently: above `multiple` × the median of the last `window` norms
 * accepted in earlier rounds. The reference is taken from earlier rounds
 * only, so an update's fate does not depend on the order of arrival within
 * its round. Until `warmUp` norms have been accepted (the first round, or
 * after a restart: the history is not checkpointed), the reference is the
 * norm of the round's global model: an update that moves the model by more
 * than `multiple` times its whole norm is not training. A model of norm 0
 * has no reference, and only the finiteness check of the wire applies then
 * (the aggregate guard still stops what would overflow).
 *
 * A refused update gets UPDATE_OUTLIER with the norm and the bound, and the
 * sender is out of that round, as with the fixed bound (norm-bound.ts).
 *
 * Only where the coordinator sees each update: under client-level DP the
 * strategy clips every update itself, and under secure aggregation the
 * participants clip and the decoded sum is range-checked
 * (core/secagg/sum-range.ts); there `addSum` passes through unchanged.
 */
export interface OutlierBoundOptions {
  readonly multiple: number;
  readonly window: number;
  readonly warmUp: number;
}

/**
 * 5× the median: honest norms of one round differ by small factors (a
 * participant with more local steps moves further) and shrink as training
 * converges, so the bound, set from earlier rounds, stays loose for them;
 * updates meant to overwhelm the average are orders of magnitude out.
 */
export const DEFAULT_OUTLIER_BOUND: OutlierBoundOptions = { multiple: 5, window: 100, warmUp: 3 };

export class OutlierBoundedStrategy extends StrategyWrapper {
  readonly name: string;
  /** Norms accepted in earlier rounds, oldest first, at most `window`. */
  private readonly accepted: number[] = [];

  constructor(
    inner: Strategy,
    readonly options: OutlierBoundOptions = DEFAULT_OUTLIER_BOUND,
  ) {
    super(inner);
    const { multiple, window, warmUp } = options;
    if (!(multiple > 1) || !Number.isFinite(multiple))
      throw new RangeError(`the outlier multiple must be finite and above 1, got ${multiple}`);
    if (!(Number.isInteger(window) && window >= 1 && Number.isInteger(warmUp) && warmUp >= 1 && warmUp <= window)) {
      throw new RangeError(`the outlier window (${window}) and warm-up (${warmUp}) must be integers with 1 <= warm-up <= window`);
    }
    // The rule keeps its name (status, run reports): the defence is a setting, not another rule.
    this.name = inner.name;
  }

  /** The bound updates of a round from `globalWeights` must meet, and what it is relative to; undefined: no bound. */
  boundFor(globalWeights: Float32Array): { readonly bound: number; readonly reference: string } | undefined {
    const { multiple, warmUp } = this.options;
    if (this.accepted.length >= warmUp) {
      const sorted = [...this.accepted].sort((a, b) => a - b);
      const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
      return {
        bound: multiple * median,
        reference: `${multiple} × the median ${median.toPrecision(4)} of the last ${sorted.length} accepted update norms`,
      };
    }
    const modelNorm = l2Norm(globalWeights);
    if (!(modelNorm > 0) || !Number.isFinite(modelNorm)) return undefined;
    return { bound: multiple * modelNorm, reference: `${multiple} × the global model's norm ${modelNorm.toPrecision(4)} (warm-up)` };
  }

  override beginRound(context: RoundContext): RoundAggregator {
    return new OutlierBoundedRound(this.inner.beginRound(context), this.boundFor(context.globalWeights), (norms) => this.remember(norms));
  }

  private remember(norms: readonly number[]): void {
    this.accepted.push(...norms);
    if (this.accepted.length > this.options.window) this.accepted.splice(0, this.accepted.length - this.options.window);
  }
}

class OutlierBoundedRound implements RoundAggregator {
  private readonly norms: number[] = [];
  /** The round's norms join the reference once (onceOnly: a leader may both send for partials and finish the round). */
  private readonly rememberOnce: () => void;
  readonly addSum?: (sum: Float64Array, count: number) => void;
  readonly partial?: () => PartialAggregate;
  readonly addPartial?: (partial: PartialAggregate) => void;

  constructor(
    private readonly inner: RoundAggregator,
    private readonly limit: { readonly bound: number; readonly reference: string } | undefined,
    remember: (norms: readonly number[]) => void,
  ) {
    this.rememberOnce = onceOnly(() => remember(this.norms));
    const addSum = inner.addSum;
    if (addSum) this.addSum = (sum, count) => addSum.call(inner, sum, count);
    // On a cluster each node bounds its own participants' updates; its sent partial makes their norms the reference, as finish() does.
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
    const norm = result.norm ?? l2Norm(result.update);
    const limit = this.limit;
    if (limit && !(norm <= limit.bound)) {
      throw new ProtocolError(
        ErrorCode.UpdateOutlier,
        `update L2 norm ${norm.toPrecision(6)} is above the outlier bound ${limit.bound.toPrecision(6)} (${limit.reference}): rejected, and the sender is out of this round`,
      );
    }
    this.inner.add(result);
    this.norms.push(norm);
  }

  finish(): Float32Array | null {
    // Only norms of rounds that were aggregated become the reference for later ones.
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
