import type { FitConfig } from '../protocol/messages.ts';

/**
 * The one seam between the round loop and the aggregation rule, after
 * Flower's Strategy: the loop asks the strategy how to configure a round and
 * hands it the round's results; robust rules and privacy wrappers implement
 * the same interface instead of forking the loop.
 */

/** One participant's contribution to a round, already decoded and validated. */
export interface ClientResult {
  readonly participantId: string;
  readonly numExamples: number;
  /** New local weights minus the round's global weights. */
  readonly update: Float32Array;
}

export interface RoundContext {
  readonly round: number;
  /** The global weights the round's participants trained from. Not to be mutated. */
  readonly globalWeights: Float32Array;
}

/** Accumulates one round's results. Streaming strategies keep O(model) memory. */
export interface RoundAggregator {
  add(result: ClientResult): void;
  /** Number of results added. */
  readonly count: number;
  /** The new global weights, or null when nothing can be aggregated. */
  finish(): Float32Array | null;
}

export interface Strategy {
  readonly name: string;
  /** The fit configuration sent to the round's participants. */
  configureFit(round: number, base: FitConfig): FitConfig;
  /** A fresh aggregator for a round. */
  beginRound(context: RoundContext): RoundAggregator;
}
