import { innerPartialMethods, type PartialAggregate } from './partial.ts';
import { l2Norm } from '../privacy/update-privacy.ts';
import { ErrorCode, ProtocolError } from '../protocol/errors.ts';
import type { ClientResult, RoundAggregator, RoundContext, Strategy, StrategyTraits } from './strategy.ts';
import { StrategyWrapper } from './wrapper.ts';

/**
 * Enforces an L2 bound on every update before the wrapped strategy sees it.
 * Without secure aggregation the coordinator sees each update, so it can and
 * does check the bound itself rather than trust participants to have
 * clipped. An update above the bound is rejected, not clipped: `add` throws
 * a ProtocolError with code UPDATE_TOO_LARGE, the norm and the bound, and
 * the engine answers the sender with it and takes it out of the round.
 * Clipping silently would hide a misbehaving (or misconfigured) participant
 * and still let it steer the model as far as the bound allows in its chosen
 * direction; rejecting tells it why and keeps its update out.
 *
 * An update exactly at the bound is accepted.
 */
export class NormBoundedStrategy extends StrategyWrapper {
  readonly name: string;

  constructor(
    inner: Strategy,
    readonly maxNorm: number,
  ) {
    super(inner);
    if (!(maxNorm > 0) || !Number.isFinite(maxNorm))
      throw new RangeError(`the update norm bound must be positive and finite, got ${maxNorm}`);
    this.name = `${inner.name}, update norm ≤ ${maxNorm}`;
  }

  /** A norm bound looks at each update: no secure sum can feed it. */
  override get traits(): StrategyTraits {
    return { ...this.inner.traits, input: 'individual' };
  }

  override beginRound(context: RoundContext): RoundAggregator {
    return new NormBoundedRound(this.inner.beginRound(context), this.maxNorm);
  }
}

class NormBoundedRound implements RoundAggregator {
  readonly partial?: () => PartialAggregate;
  readonly addPartial?: (partial: PartialAggregate) => void;

  constructor(
    private readonly inner: RoundAggregator,
    private readonly maxNorm: number,
  ) {
    // Each node bounds its own participants' updates: the partial it sends holds only bounded ones.
    ({ partial: this.partial, addPartial: this.addPartial } = innerPartialMethods(inner));
  }

  get count(): number {
    return this.inner.count;
  }

  add(result: ClientResult): void {
    const norm = result.norm ?? l2Norm(result.update);
    if (!(norm <= this.maxNorm)) {
      throw new ProtocolError(
        ErrorCode.UpdateTooLarge,
        `update L2 norm ${norm.toPrecision(6)} is above the bound ${this.maxNorm} this coordinator enforces: rejected (it is not clipped), and the sender is out of this round`,
      );
    }
    this.inner.add(result);
  }

  finish(): Float32Array | null {
    return this.inner.finish();
  }

  abandon(): void {
    this.inner.abandon?.();
  }

  rejectAggregate(): void {
    this.inner.rejectAggregate?.();
  }
}
