import type { FitConfig } from '../protocol/messages.ts';
import type { RoundSettings, SettingsChange } from '../protocol/status.ts';
import {
  contributionWeight,
  type ClientResult,
  type RoundAggregator,
  type RoundContext,
  type Strategy,
  type StrategyTraits,
} from './strategy.ts';

/** Robust rules look at every update: they cannot run on a secure sum. */
const ROBUST_TRAITS: StrategyTraits = { input: 'individual', participation: 'shown', selection: 'engine' };

/**
 * Byzantine-robust aggregation rules: coordinate-wise median, coordinate-wise
 * trimmed mean (Yin et al. 2018, "Byzantine-Robust Distributed Learning:
 * Towards Optimal Statistical Rates") and Krum / Multi-Krum (Blanchard et
 * al. 2017, "Machine Learning with Adversaries: Byzantine Tolerant Gradient
 * Descent").
 *
 * Unlike FedAvg's running sum, these rules look at all of a round's updates
 * together (an order statistic or pairwise distances cannot be streamed), so
 * a round buffers its updates: exactly one Float32Array per update, the
 * decoded update itself (a reference, never a copy), dropped when the round
 * closes. A result's weight (async mode's staleness weight) scales its values
 * where the rule reads them, so the rule sees w·Δ without a scaled copy. Memory is O(n · model) for n updates, plus O(n) scratch for the
 * order statistics and O(n²) distances for Krum.
 *
 * The statistics are unweighted: every update counts once, whatever example
 * count its sender claims. The count is self-reported and unverifiable, so a
 * Byzantine participant could claim a huge one and dominate any weighted
 * rule; weighting would hand back exactly the lever these rules take away.
 *
 * Updates reach the aggregator finite: the engine's frame decoder rejects
 * NaN and ±Infinity before `add` is called.
 */

export interface RobustOptions {
  /** Scales the robust aggregate before it is applied to the global weights (1 = apply as is). */
  readonly serverLearningRate?: number;
}

export interface TrimmedMeanOptions extends RobustOptions {
  /** β in [0, 0.5): the fraction of values dropped at each end of every coordinate, ⌊β·n⌋ of n. */
  readonly trimFraction: number;
}

export interface KrumOptions extends RobustOptions {
  /** f: the number of Byzantine updates to tolerate per round; a round needs n ≥ 2f + 3 updates. */
  readonly byzantine: number;
  /**
   * m, Multi-Krum: the new model applies the mean of the m best-scored
   * updates. 1 (the default) is Krum. Undefined with `multiKrum` set, or
   * larger than n − f in a round, means n − f.
   */
  readonly multi?: number;
  /** Multi-Krum with m = n − f in every round (ignored when `multi` is set). */
  readonly multiKrum?: boolean;
}

function checkServerLearningRate(options: RobustOptions): number {
  const rate = options.serverLearningRate ?? 1;
  if (!(rate > 0) || !Number.isFinite(rate)) throw new RangeError(`serverLearningRate must be positive, got ${rate}`);
  return rate;
}

/** Collects a round's updates for a rule that needs all of them at once. */
abstract class BufferedRound implements RoundAggregator {
  protected readonly updates: Float32Array[] = [];
  /** Each update's ClientResult.weight: the rule sees weights[i] · updates[i]. */
  protected readonly weights: number[] = [];
  protected readonly ids: string[] = [];
  private closed = false;

  constructor(
    protected readonly context: RoundContext,
    private readonly serverLearningRate: number,
  ) {}

  get count(): number {
    return this.updates.length;
  }

  add(result: ClientResult): void {
    if (this.closed) throw new Error('this round is closed');
    const dim = this.context.globalWeights.length;
    if (result.update.length !== dim) throw new RangeError(`update has ${result.update.length} values, the model has ${dim}`);
    // Kept by reference: the decoded frame is this update's one array.
    this.updates.push(result.update);
    this.weights.push(contributionWeight(result));
    this.ids.push(result.participantId);
  }

  finish(): Float32Array | null {
    if (this.closed) throw new Error('a round aggregator is finished once');
    if (this.updates.length === 0) return this.close(null);
    const out = new Float32Array(this.context.globalWeights.length);
    if (!this.aggregate(out)) return this.close(null);
    const global = this.context.globalWeights;
    const rate = this.serverLearningRate;
    for (let i = 0; i < out.length; i++) out[i] = global[i]! + rate * out[i]!;
    return this.close(out);
  }

  abandon(): void {
    this.close(null);
  }

  /** Writes the robust aggregate of the updates into `out`; false when the round's updates cannot be aggregated. */
  protected abstract aggregate(out: Float32Array): boolean;

  private close<T>(value: T): T {
    this.closed = true;
    // The buffered updates are not needed any more; let them go before the next round.
    this.updates.length = 0;
    this.weights.length = 0;
    return value;
  }
}

/**
 * Rearranges a[left..right] (inclusive) so that a[k] holds the value it
 * would hold if that range were sorted, with nothing larger before it and
 * nothing smaller after it (Hoare's selection, median-of-three pivot).
 * Average O(right − left); no allocation.
 */
export function selectKth(a: Float64Array, left: number, right: number, k: number): void {
  while (right > left) {
    const mid = (left + right) >>> 1;
    const x = a[left]!;
    const y = a[mid]!;
    const z = a[right]!;
    // The median of three values of the range: the scans below stop at it, so they stay inside the range.
    const pivot = x < y ? (y < z ? y : Math.max(x, z)) : x < z ? x : Math.max(y, z);
    let i = left;
    let j = right;
    do {
      while (a[i]! < pivot) i++;
      while (pivot < a[j]!) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    } while (i <= j);
    // Now a[left..j] <= pivot <= a[i..right], and everything strictly between equals the pivot.
    if (j < k) left = i;
    if (k < i) right = j;
  }
}

/** Median of a[0..n-1]; reorders a. */
function medianOf(a: Float64Array, n: number): number {
  const upper = n >>> 1;
  selectKth(a, 0, n - 1, upper);
  if (n % 2 === 1) return a[upper]!;
  // Even n: the lower middle value is the largest of the part below the upper one.
  let lower = a[0]!;
  for (let i = 1; i < upper; i++) if (a[i]! > lower) lower = a[i]!;
  return (lower + a[upper]!) / 2;
}

/** Mean of a[0..n-1] without its `trim` smallest and `trim` largest values; reorders a. */
function trimmedMeanOf(a: Float64Array, n: number, trim: number): number {
  if (trim > 0) {
    selectKth(a, 0, n - 1, trim);
    selectKth(a, trim, n - 1, n - trim - 1);
  }
  let sum = 0;
  for (let i = trim; i < n - trim; i++) sum += a[i]!;
  return sum / (n - 2 * trim);
}

/** Fills `out` coordinate by coordinate with `statistic` of the n weighted values there, in one reused scratch array. */
function coordinateWise(
  updates: readonly Float32Array[],
  weights: readonly number[],
  out: Float32Array,
  statistic: (values: Float64Array, n: number) => number,
): void {
  const n = updates.length;
  const scratch = new Float64Array(n);
  for (let j = 0; j < out.length; j++) {
    for (let i = 0; i < n; i++) scratch[i] = weights[i]! * updates[i]![j]!;
    out[j] = statistic(scratch, n);
  }
}

/** Coordinate-wise median: each weight moves by the median of the updates' values for it. Tolerates fewer than n/2 Byzantine updates. */
export class CoordinateMedian implements Strategy {
  readonly name = 'coordinate-wise median';
  readonly traits: StrategyTraits = ROBUST_TRAITS;
  private readonly serverLearningRate: number;

  constructor(options: RobustOptions = {}) {
    this.serverLearningRate = checkServerLearningRate(options);
  }

  configureFit(_round: number, base: FitConfig): FitConfig {
    return base;
  }

  beginRound(context: RoundContext): RoundAggregator {
    return new MedianRound(context, this.serverLearningRate);
  }
}

class MedianRound extends BufferedRound {
  protected aggregate(out: Float32Array): boolean {
    coordinateWise(this.updates, this.weights, out, medianOf);
    return true;
  }
}

/**
 * Coordinate-wise trimmed mean: for each weight, drop the ⌊β·n⌋ smallest and
 * ⌊β·n⌋ largest values of the n updates and average the rest. With fewer
 * than 1/β updates nothing is trimmed (the plain unweighted mean), so β·n
 * should be at least the number of Byzantine updates expected.
 */
export class TrimmedMean implements Strategy {
  readonly name: string;
  readonly traits: StrategyTraits = ROBUST_TRAITS;
  readonly trimFraction: number;
  private readonly serverLearningRate: number;

  constructor(options: TrimmedMeanOptions) {
    const beta = options.trimFraction;
    if (!(beta >= 0 && beta < 0.5)) throw new RangeError(`trimFraction must be in [0, 0.5), got ${beta}`);
    this.trimFraction = beta;
    this.serverLearningRate = checkServerLearningRate(options);
    this.name = `coordinate-wise trimmed mean (β=${beta})`;
  }

  /** Values dropped at each end of a coordinate when n updates arrived. */
  trimCount(n: number): number {
    // β·n computed in floating point may land just under an integer (0.3·10 = 2.9999999999999996).
    return Math.floor(this.trimFraction * n + 1e-9);
  }

  /** Refuses a clients-per-round change that would trim nothing: a plain mean, with no robustness left. */
  settingsChangeProblem(change: SettingsChange, current: RoundSettings): string | undefined {
    const cpr = change.clientsPerRound;
    if (cpr === undefined || cpr === current.clientsPerRound || this.trimCount(cpr) > 0) return undefined;
    const beta = this.trimFraction;
    const need =
      beta > 0
        ? `⌊${beta} × n⌋ ≥ 1 needs at least ⌈1/${beta}⌉ = ${this.fewestToTrim()} clients per round`
        : 'a trim fraction of 0 trims nothing at any size';
    return `clientsPerRound ${cpr} would make trimmed-mean trim nothing (a plain mean, no robustness): ${need}`;
  }

  /** The smallest n with ⌊β·n⌋ ≥ 1, i.e. ⌈1/β⌉, found with trimCount itself so float rounding agrees with what the round does. */
  private fewestToTrim(): number {
    let n = Math.max(1, Math.floor(1 / this.trimFraction) - 1);
    while (this.trimCount(n) === 0) n++;
    return n;
  }

  configureFit(_round: number, base: FitConfig): FitConfig {
    return base;
  }

  beginRound(context: RoundContext): RoundAggregator {
    return new TrimmedMeanRound(context, this.serverLearningRate, this);
  }
}

class TrimmedMeanRound extends BufferedRound {
  constructor(
    context: RoundContext,
    serverLearningRate: number,
    private readonly rule: TrimmedMean,
  ) {
    super(context, serverLearningRate);
  }

  protected aggregate(out: Float32Array): boolean {
    const trim = this.rule.trimCount(this.updates.length);
    coordinateWise(this.updates, this.weights, out, (values, n) => trimmedMeanOf(values, n, trim));
    return true;
  }
}

/**
 * Krum: scores each update by the sum of squared L2 distances to its
 * n − f − 2 nearest other updates and applies the best-scored one; an update
 * far from every honest cluster (scaled, sign-flipped) scores badly.
 * Multi-Krum applies the mean of the m best-scored updates instead. The
 * guarantee needs n ≥ 2f + 3 updates: a round with fewer is not aggregated
 * (the model stays as it was).
 */
export class Krum implements Strategy {
  readonly name: string;
  /** Krum compares L2 distances and averages whole updates: any basis gives the same choice. */
  readonly traits: StrategyTraits = { ...ROBUST_TRAITS, basis: 'any' };
  readonly byzantine: number;
  /** m, or undefined for n − f in every round. */
  readonly multi: number | undefined;
  private readonly serverLearningRate: number;

  constructor(options: KrumOptions) {
    const f = options.byzantine;
    if (!(Number.isInteger(f) && f >= 0)) throw new RangeError(`byzantine must be a non-negative integer, got ${f}`);
    const m = options.multi ?? (options.multiKrum ? undefined : 1);
    if (m !== undefined && !(Number.isInteger(m) && m >= 1)) throw new RangeError(`multi must be a positive integer, got ${m}`);
    this.byzantine = f;
    this.multi = m;
    this.serverLearningRate = checkServerLearningRate(options);
    this.name = m === 1 ? `krum (f=${f})` : `multi-krum (f=${f}, m=${m ?? 'n-f'})`;
  }

  /** The fewest updates a round needs: n ≥ 2f + 3. */
  get minimumUpdates(): number {
    return 2 * this.byzantine + 3;
  }

  configureFit(_round: number, base: FitConfig): FitConfig {
    return base;
  }

  beginRound(context: RoundContext): KrumRound {
    return new KrumRound(context, this.serverLearningRate, this);
  }
}

export class KrumRound extends BufferedRound {
  /** After `finish`: the ids of the updates applied, best score first. */
  selected: readonly string[] = [];
  /** After `finish`: every update's score, in arrival order. */
  scores: Float64Array = new Float64Array(0);

  constructor(
    context: RoundContext,
    serverLearningRate: number,
    private readonly rule: Krum,
  ) {
    super(context, serverLearningRate);
  }

  protected aggregate(out: Float32Array): boolean {
    const { updates, weights } = this;
    const n = updates.length;
    const f = this.rule.byzantine;
    if (n < this.rule.minimumUpdates) return false;
    const dim = out.length;
    // Squared distances between every pair, computed once each.
    const dist = new Float64Array(n * n);
    for (let a = 0; a < n; a++) {
      const ua = updates[a]!;
      const wa = weights[a]!;
      for (let b = a + 1; b < n; b++) {
        const ub = updates[b]!;
        const wb = weights[b]!;
        let sum = 0;
        for (let j = 0; j < dim; j++) {
          const d = wa * ua[j]! - wb * ub[j]!;
          sum += d * d;
        }
        dist[a * n + b] = sum;
        dist[b * n + a] = sum;
      }
    }
    const neighbours = n - f - 2;
    const scores = new Float64Array(n);
    const row = new Float64Array(n - 1);
    for (let a = 0; a < n; a++) {
      let k = 0;
      for (let b = 0; b < n; b++) if (b !== a) row[k++] = dist[a * n + b]!;
      selectKth(row, 0, n - 2, neighbours - 1);
      let score = 0;
      for (let i = 0; i < neighbours; i++) score += row[i]!;
      scores[a] = score;
    }
    const m = Math.min(this.rule.multi ?? n - f, n - f);
    // Best score first; ties go to the earlier arrival, so the choice is deterministic.
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]! || a - b);
    const chosen = order.slice(0, m);
    const picked = chosen.map((c) => updates[c]!);
    const pickedWeights = chosen.map((c) => weights[c]!);
    for (let j = 0; j < dim; j++) {
      let sum = 0;
      for (let i = 0; i < m; i++) sum += pickedWeights[i]! * picked[i]![j]!;
      out[j] = sum / m;
    }
    this.selected = chosen.map((c) => this.ids[c]!);
    this.scores = scores;
    return true;
  }
}
