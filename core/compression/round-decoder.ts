import type { RoundAggregator, RoundContext, Strategy } from '../aggregation/strategy.ts';
import { innerPartialMethods } from '../aggregation/partial.ts';
import type { RandomRotation } from '../math/hadamard.ts';
import type { UpdateCompression } from '../protocol/messages.ts';
import { rotationFor } from './update-codec.ts';
import { decodeUpdate, type DecodedUpdate } from './update-decode.ts';

/**
 * The coordinator's side of one round's compressed updates: the one function
 * the plain collection decodes through, and the aggregator the round runs.
 *
 * int4 updates arrive rotated (y = R·x, core/math/hadamard.ts). When the
 * strategy's result does not depend on the basis (`traits.basis === 'any'`:
 * FedAvg, FedProx, DP-FedAvg, Krum), the whole round runs in the rotated
 * basis: its aggregator is given R·global as the global weights and each
 * update still rotated, and the aggregate is rotated back once, at finish.
 * Otherwise (coordinate-wise median, trimmed mean, FedAdam/FedYogi) each
 * update is rotated back as it is decoded, before the rule sees it.
 */
export class RoundDecoder {
  private readonly rotation: RandomRotation | undefined;
  /** True when the aggregator works on rotated updates and rotates back once. */
  readonly aggregatesRotated: boolean;

  constructor(
    readonly paramCount: number,
    private readonly compression: UpdateCompression | undefined,
    strategy: Strategy,
  ) {
    const seed = compression?.encoding === 'int4' ? compression.rotationSeed : undefined;
    if (compression?.encoding === 'int4' && seed === undefined) throw new Error('an int4 round needs a rotation seed');
    this.rotation = seed === undefined ? undefined : rotationFor(paramCount, seed);
    this.aggregatesRotated = this.rotation !== undefined && strategy.traits.basis === 'any';
  }

  /** How many values the round's aggregator sums (its partials' length): the rotated length when it aggregates rotated. */
  get aggregateLength(): number {
    return this.aggregatesRotated ? this.rotation!.rotatedLength : this.paramCount;
  }

  /** The round's aggregator: the strategy's own, or the same rule run in the rotated basis. */
  beginRound(strategy: Strategy, context: RoundContext): RoundAggregator {
    const rotation = this.rotation;
    if (!rotation || !this.aggregatesRotated) return strategy.beginRound(context);
    const global = context.globalWeights;
    const rotatedGlobal = rotation.rotate(global);
    const inner = strategy.beginRound({ ...context, globalWeights: rotatedGlobal });
    return {
      add: (result) => inner.add(result),
      get count() {
        return inner.count;
      },
      finish: () => {
        const rotatedAggregate = inner.finish();
        if (rotatedAggregate === null) return null;
        // Rotate back the change only, and add it to the exact global weights: no round trip of the model itself.
        for (let i = 0; i < rotatedAggregate.length; i++) rotatedAggregate[i]! -= rotatedGlobal[i]!;
        const change = rotation.unrotate(rotatedAggregate);
        for (let i = 0; i < change.length; i++) change[i]! += global[i]!;
        return change;
      },
      abandon: () => inner.abandon?.(),
      rejectAggregate: () => inner.rejectAggregate?.(),
      // A cluster's partials stay in the rotated basis (every node rotates with the round's seed); the leader rotates back once, at finish.
      ...innerPartialMethods(inner),
    };
  }

  /**
   * Decodes and validates one update frame in the round's encoding (any
   * other is BAD_ENCODING); the result is what the round's aggregator takes.
   * Throws ProtocolError (update-decode.ts). The norm comes with it, from the one pass that checks the values.
   */
  decode(data: unknown): DecodedUpdate {
    const decoded = decodeUpdate(data, this.paramCount, [this.compression?.encoding ?? 'float32']);
    if (!decoded.rotated || this.aggregatesRotated) return decoded;
    // Rotation is orthonormal: the norm measured rotated is the update's (up to the padding's rounding).
    return { ...decoded, update: this.rotation!.unrotate(decoded.update), rotated: false };
  }
}
