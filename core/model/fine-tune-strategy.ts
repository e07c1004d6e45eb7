import type { ClientResult, RoundAggregator, RoundContext, Strategy, StrategyTraits } from '../aggregation/strategy.ts';
import { StrategyWrapper } from '../aggregation/wrapper.ts';
import { ErrorCode, ProtocolError } from '../protocol/errors.ts';
import { gatherTrainable, withTrainable, type TrainableLayout } from './fine-tune.ts';

/**
 * Fine-tuning on the coordinator: the wrapped strategy (with every defence,
 * robust rule, privacy wrapper and server optimizer inside it) sees only the
 * trainable values, the round's global ones and the participants' updates
 * alike, so its clipping, noise, norms and medians are over exactly what
 * participants trained and sent. Its result is written back into the full
 * model, whose frozen values are copied unchanged, bit for bit.
 */
export class FineTuneStrategy extends StrategyWrapper {
  readonly name: string;

  constructor(
    inner: Strategy,
    readonly layout: TrainableLayout,
  ) {
    super(inner);
    this.name = inner.name;
  }

  /**
   * Its round maps the whole model to the trainable values: a round run in a
   * rotated basis (int4, core/compression/round-decoder.ts) would hand it
   * rotated weights, so int4 updates are rotated back one by one instead.
   */
  override get traits(): StrategyTraits {
    const { basis: _basis, ...traits } = this.inner.traits;
    return traits;
  }

  override beginRound(context: RoundContext): RoundAggregator {
    const inner = this.inner.beginRound({ ...context, globalWeights: gatherTrainable(context.globalWeights, this.layout) });
    return new FineTuneRound(inner, context.globalWeights, this.layout);
  }
}

class FineTuneRound implements RoundAggregator {
  readonly addSum?: (sum: Float64Array, count: number) => void;

  constructor(
    private readonly inner: RoundAggregator,
    private readonly globalWeights: Float32Array,
    private readonly layout: TrainableLayout,
  ) {
    const addSum = inner.addSum;
    if (addSum) this.addSum = (sum, count) => addSum.call(inner, sum, count);
  }

  get count(): number {
    return this.inner.count;
  }

  add(result: ClientResult): void {
    if (result.update.length !== this.layout.trainableCount)
      throw new ProtocolError(
        ErrorCode.WrongLength,
        `the update holds ${result.update.length} values; this task fine-tunes, and an update holds its ${this.layout.trainableCount} trainable values`,
      );
    this.inner.add(result);
  }

  finish(): Float32Array | null {
    const trainable = this.inner.finish();
    return trainable === null ? null : withTrainable(this.globalWeights, trainable, this.layout);
  }

  abandon(): void {
    this.inner.abandon?.();
  }

  rejectAggregate(): void {
    this.inner.rejectAggregate?.();
  }
}
