import type { FitConfig } from '../protocol/messages.ts';
import type { PrivacyReport, RoundSettings, SettingsChange } from '../protocol/status.ts';
import type { UniformSource } from '../random/prng.ts';
import type { PartialMethods } from './partial.ts';

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
  /**
   * l2Norm(update), when whoever made this result computed it already (the
   * coordinator, while decoding), so norm checks need not read the update
   * again. Never a value a participant sent; a wrapper that passes on a
   * different update must not pass this on.
   */
  readonly norm?: number;
  /**
   * A scale in (0, 1] on this update's contribution, applied after the rule
   * clips it (async mode's staleness weight, staleness.ts); absent: 1. It is
   * at most 1, so a contribution never grows past a clip bound or a DP
   * sensitivity. `update` and `norm` stay what the participant sent: norm
   * bounds check those.
   */
  readonly weight?: number;
}

/** The scale on a result's contribution (ClientResult.weight), checked: a weight above 1 would break every sensitivity bound. */
export function contributionWeight(result: ClientResult): number {
  const weight = result.weight ?? 1;
  if (!(weight > 0 && weight <= 1)) throw new RangeError(`a result's weight must be in (0, 1], got ${weight}`);
  return weight;
}

export interface RoundContext {
  readonly round: number;
  /** The global weights the round's participants trained from. Not to be mutated. */
  readonly globalWeights: Float32Array;
  /** The example counts the round's selected participants claimed when they joined (unverified; claim-cap.ts takes their median). */
  readonly claimedExamples?: readonly number[];
}

/**
 * Accumulates one round's results. Streaming strategies keep O(model) memory.
 * Rules whose input is a sum also have `partial`/`addPartial` (partial.ts):
 * on a cluster each node sums its own participants and the leader combines.
 */
export interface RoundAggregator extends PartialMethods {
  add(result: ClientResult): void;
  /** Number of results added. */
  readonly count: number;
  /** The new global weights, or null when nothing can be aggregated. */
  finish(): Float32Array | null;
  /** The round closes without a new model (too few updates, or stopped). */
  abandon?(): void;
  /**
   * The aggregate `finish()` returned was refused (the aggregate guard) and
   * never committed: undo what `finish()` moved that later rounds build on
   * (a server optimizer's moments), so a refused round leaves no trace in
   * them. A privacy accountant's charge stays: the refusal is a function of
   * the noised aggregate.
   */
  rejectAggregate?(): void;
  /**
   * Secure aggregation: the decoded sum of `count` updates that the
   * coordinator never saw one by one. Each counts once (weighting by example
   * counts would reveal them). Absent: the rule needs individual updates
   * (median, Krum, a norm bound) and cannot run with secure aggregation.
   */
  addSum?(sum: Float64Array, count: number): void;
}

/** What a privacy-preserving strategy has spent so far: part of the status (core/protocol/status.ts). */
export type { PrivacyReport } from '../protocol/status.ts';

/**
 * What a strategy is, as far as the coordinator's rules go. Rules derive
 * from these (secure aggregation needs `input: 'sum'`, client-level DP hides
 * per-participant figures, the quorum applies to the engine's own
 * selection), never from which class a strategy is. Wrappers forward the
 * traits of the strategy they wrap and change only what they change.
 */
export interface StrategyTraits {
  /**
   * 'sum': the rule aggregates a sum of updates, so a secure aggregation sum
   * can feed it (its rounds have RoundAggregator.addSum). 'individual': it
   * needs each update (a median, Krum, a norm bound, central clipping).
   */
  readonly input: 'sum' | 'individual';
  /**
   * 'private': whether a participant took part is covered by the privacy
   * guarantee (client-level DP), so nothing per participant leaves the
   * coordinator: no update norms, no skip reasons quoting counts. 'shown': they may.
   */
  readonly participation: 'private' | 'shown';
  /**
   * 'engine': the engine picks each round's participants (weighted by their
   * delivery record, with the quorum rule). 'own': the strategy samples them
   * itself (`select`, e.g. DP-FedAvg's Poisson sampling), and its choice stands.
   */
  readonly selection: 'engine' | 'own';
  /**
   * 'any': the rule gives the same result in any orthonormal basis (it sums,
   * clips by L2 norm, adds isotropic noise, compares L2 distances), so a
   * round of int4 updates may aggregate them still rotated and rotate back
   * once (core/compression/round-decoder.ts). Absent: it works coordinate by
   * coordinate (median, trimmed mean, Adam's moments), and each update is
   * rotated back before it is added.
   */
  readonly basis?: 'any';
}

export interface Strategy {
  readonly name: string;
  readonly traits: StrategyTraits;
  /**
   * Why an operator's settings change between rounds would break what the
   * strategy promises (a robust rule that would trim nothing, a privacy
   * accounting tied to a sampling rate), or undefined when it may go ahead.
   */
  settingsChangeProblem?(change: SettingsChange, current: RoundSettings): string | undefined;
  /** The fit configuration sent to the round's participants. */
  configureFit(round: number, base: FitConfig): FitConfig;
  /** A fresh aggregator for a round. */
  beginRound(context: RoundContext): RoundAggregator;
  /** Picks the round's participants from the eligible ones; default: `count` uniformly at random. */
  select?<T>(eligible: readonly T[], count: number, random: UniformSource): T[];
  /** Refuses a round that must not run (a spent privacy budget); the federation then stops. */
  canStartRound?(): { ok: true } | { ok: false; reason: string };
  /** Privacy spent so far, for strategies that account for it. */
  privacy?(): PrivacyReport;
  /** True when a model must be released every round, however few updates came (central DP). */
  readonly releasesEveryRound?: boolean;
  /** State that must survive a restart (optimizer moments, accountant), as JSON-safe data. */
  saveState?(): unknown;
  /** Restores what saveState returned; throws on state it cannot use. */
  loadState?(state: unknown): void;
  /**
   * Charges rounds that started but were never checkpointed (a crash): their
   * updates may have been seen, so their privacy is spent.
   */
  chargeUnrecordedRounds?(rounds: number): void;
}
