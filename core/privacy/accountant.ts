/**
 * Rényi-DP accountant for the Poisson-subsampled Gaussian mechanism
 * (Mironov, Talwar, Zhang 2019, "Rényi Differential Privacy of the Sampled
 * Gaussian Mechanism", arXiv:1908.10530), with conversion to (ε, δ)-DP.
 *
 * Neighbouring relation: add/remove one record, each record included in a
 * step independently with probability q (Poisson sampling). A shuffled
 * fixed-size batch is a different mechanism and is not covered here.
 *
 * Pure math: no tfjs, no DOM, no Node APIs.
 */

import { log1mexp, logAdd, logBinomial, logErfc, logExpm1, logSub, logSumExp } from './math.ts';

/**
 * The pinned default orders: dp_accounting's DEFAULT_RDP_ORDERS
 * (google/differential-privacy, python/dp_accounting/rdp/rdp_privacy_accountant.py):
 *   [1 + x/10 for x in 1..99]  → 1.1, 1.2, …, 10.9 (99 orders; 2, 3, …, 10 among them)
 *   + 11, 12, …, 63            (53 orders)
 *   + 128, 256, 512, 1024      (4 orders)
 * 156 orders in all. 1 + x/10 is evaluated exactly as Python evaluates it, so
 * the fractional orders are bit-identical to dp_accounting's.
 */
export const DEFAULT_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, k) => 1 + (k + 1) / 10),
  ...Array.from({ length: 53 }, (_, k) => 11 + k),
  128,
  256,
  512,
  1024,
]);

/**
 * How RDP becomes (ε, δ):
 * - 'improved': ε = r + ln((α−1)/α) − (ln δ + ln α)/(α−1), clamped at 0
 *   (Balle et al. 2020, arXiv:1905.09982 Thm 21; Canonne, Kamath, Steinke 2020,
 *   arXiv:2004.00010 Prop 12). What dp_accounting, TF Privacy since Dec 2020 and
 *   Opacus since 2021 report.
 * - 'classic': ε = r − ln δ/(α−1) (Mironov 2017, arXiv:1702.07476 Prop 3). What
 *   all pre-2021 tables (TF Privacy tutorials, Abadi-style tables) report.
 */
export type Conversion = 'improved' | 'classic';

export interface EpsilonResult {
  readonly epsilon: number;
  /** The order that gave the smallest ε (for ε = ∞, the first order). */
  readonly optimalOrder: number;
}

export interface DeltaResult {
  readonly delta: number;
  readonly optimalOrder: number;
}

// ---------------------------------------------------------------------------
// RDP of one step

function checkOrder(alpha: number): void {
  if (!(alpha > 1)) throw new RangeError(`RDP orders must be > 1, got ${alpha}`);
}

/**
 * log A_α for integer α ≥ 2 and 0 < q < 1, where
 *   A_α = Σ_{i=0..α} C(α,i) q^i (1−q)^(α−i) exp((i² − i)/(2σ²)).
 * The binomial weights sum to 1 and the i = 0, 1 exponents are 0, so
 *   A_α − 1 = Σ_{i=2..α} C(α,i) q^i (1−q)^(α−i) expm1((i² − i)/(2σ²)),
 * a sum of positive terms. Summing that in log space and adding the 1 back
 * with log1p gives full relative accuracy even when A_α − 1 is 1e-15 (tiny q,
 * large σ), where summing A_α directly would cancel away most digits. It is
 * the same number as the textbook log-sum-exp, only computed more carefully.
 */
function logAInt(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const twoSigma2 = 2 * sigma * sigma;
  const terms: number[] = [];
  for (let i = 2; i <= alpha; i++) {
    terms.push(logBinomial(alpha, i).logAbs + i * logQ + (alpha - i) * log1mQ + logExpm1((i * i - i) / twoSigma2));
  }
  return logAdd(0, logSumExp(terms));
}

/** Iteration cap for the fractional series; the tail bound covers the rest. */
const MAX_FRACTIONAL_TERMS = 1_000_000;

/**
 * How the fractional-order series treats the generalised binomial
 * coefficients C(α, i), which alternate in sign once i > α + 1:
 * - 'absolute' (default): add |terms|, as dp_accounting does since 0.4.4. The
 *   result is an upper bound on A_α, so RDP is never understated, and no
 *   subtraction can go wrong numerically. The price is looseness at fractional
 *   orders, largest for α near 1 and large q: twice the negative terms, which
 *   are ~q³ or smaller while A_α − 1 is ~q². Measured on ln A_α against the
 *   exact integral (mpmath): +3% at (q 0.01, σ 2.5, α 1.5), +19% at
 *   (0.04, 1.4, 1.1), ×28 at (0.5, 5, 1.1). Optimal orders are rarely that
 *   small, so ε moves little (Opacus' published case: 7.32933 vs 7.32911).
 *   Integer orders are unaffected (they never use this series).
 * - 'signed': add the signed terms, like Opacus and TF Privacy before 2024:
 *   the exact value, for reproducing their published numbers.
 */
export type FractionalSeries = 'absolute' | 'signed';

/**
 * log A_α for fractional α > 1 and 0 < q < 1 by the two-series formula of
 * Mironov, Talwar, Zhang 2019 (Sec. 3.3): split the integral at
 * z0 = σ² ln(1/q − 1) + 1/2 and expand each side binomially:
 *   A0 = Σ_i C(α,i) q^i (1−q)^(α−i) e^{(i²−i)/(2σ²)} · ½ erfc((i − z0)/(√2 σ))
 *   A1 = Σ_i C(α,i) q^(α−i) (1−q)^i e^{(j²−j)/(2σ²)} · ½ erfc((z0 − j)/(√2 σ)),  j = α − i
 *
 * Termination. Apart from |C(α,i)|, each term is e^{t²/2}·Φc(t) (or its mirror
 * image) of t = ±(i − z0)/σ, up to a constant, and that factor decreases in i.
 * For i > α, |C(α,i)| decreases too, so the terms shrink in magnitude, and
 * - signed: the tail alternates, so it is smaller than the current term;
 * - absolute: Σ_{k>i} |C(α,k)| = |C(α,i)|·(i − α)/α (the alternating partial
 *   sums of (1 − 1)^α = 0), so the tail is at most term·(i − α)/α. We add
 *   that bound at the end, so the result stays an upper bound.
 * We stop once the tail bound changes ln A_α by less than 1e-9 relatively
 * (or is below 1e-17 of A_α, the rounding floor). The absolute series
 * converges only polynomially (~i^(−α−2)): for α near 1 with large q or σ it
 * takes up to ~1e5 terms; a million terms is the hard cap.
 *
 * For tiny q, A_α is 1 + (something tiny), and rounding limits ln A_α to about
 * 1e-16 absolute per step (unlike integer orders, which avoid the cancellation).
 */
function logAFrac(q: number, sigma: number, alpha: number, series: FractionalSeries): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const sigma2 = sigma * sigma;
  const twoSigma2 = 2 * sigma2;
  const sqrt2Sigma = Math.SQRT2 * sigma;
  const z0 = sigma2 * (log1mQ - logQ) + 0.5;
  const logHalf = -Math.LN2;
  // Sums of the positive and of the negative terms (both series together);
  // subtracting once at the end cannot go negative part-way.
  let logPos = -Infinity;
  let logNeg = -Infinity;
  for (let i = 0; ; i++) {
    const j = alpha - i;
    const coef = logBinomial(alpha, i);
    const logS0 = coef.logAbs + i * logQ + j * log1mQ + (i * i - i) / twoSigma2 + logHalf + logErfc((i - z0) / sqrt2Sigma);
    const logS1 = coef.logAbs + j * logQ + i * log1mQ + (j * j - j) / twoSigma2 + logHalf + logErfc((z0 - j) / sqrt2Sigma);
    const logTerm = logAdd(logS0, logS1);
    if (coef.sign < 0 && series === 'signed') logNeg = logAdd(logNeg, logTerm);
    else logPos = logAdd(logPos, logTerm);
    if (i > alpha + 1) {
      const logA = logNeg === -Infinity ? logPos : logSub(logPos, logNeg);
      const logTail = series === 'signed' ? logTerm : logTerm + Math.log((i - alpha) / alpha);
      if (logTail - logA < Math.log(Math.max(1e-9 * logA, 1e-17)) || i >= MAX_FRACTIONAL_TERMS) {
        return series === 'absolute' ? logAdd(logA, logTail) : logA;
      }
    }
  }
}

/**
 * log A_α = (α − 1) · RDP_α of one step of the sampled Gaussian mechanism,
 * for 0 < q < 1, σ > 0 and finite α > 1.
 */
export function computeLogA(q: number, noiseMultiplier: number, alpha: number, series: FractionalSeries = 'absolute'): number {
  checkOrder(alpha);
  if (!(q > 0 && q < 1)) throw new RangeError(`computeLogA needs 0 < q < 1, got ${q}`);
  if (!(noiseMultiplier > 0) || !Number.isFinite(noiseMultiplier)) {
    throw new RangeError(`computeLogA needs a finite noise multiplier > 0, got ${noiseMultiplier}`);
  }
  if (!Number.isFinite(alpha)) return Infinity;
  return Number.isInteger(alpha) ? logAInt(q, noiseMultiplier, alpha) : logAFrac(q, noiseMultiplier, alpha, series);
}

function checkStepParameters(q: number, noiseMultiplier: number, steps: number): void {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`sample rate must be in [0, 1], got ${q}`);
  if (!(noiseMultiplier >= 0) || noiseMultiplier === Infinity) {
    throw new RangeError(`noise multiplier must be finite and >= 0, got ${noiseMultiplier}`);
  }
  if (!(steps >= 0) || !Number.isFinite(steps)) throw new RangeError(`steps must be finite and >= 0, got ${steps}`);
}

/**
 * RDP at each order of `steps` compositions of the Poisson-subsampled Gaussian
 * mechanism with sampling probability q and noise multiplier σ (noise std /
 * L2 sensitivity). Composition is linear in the number of steps.
 * Special cases: q = 0 or steps = 0 → 0 (no record is ever touched, whatever
 * σ is); σ = 0 → ∞; α = ∞ → ∞; q = 1 → α/(2σ²), the plain Gaussian mechanism.
 */
export function computeRdp(
  q: number,
  noiseMultiplier: number,
  steps: number,
  orders: readonly number[] = DEFAULT_ORDERS,
  options: { readonly fractionalSeries?: FractionalSeries } = {},
): number[] {
  const series = options.fractionalSeries ?? 'absolute';
  checkStepParameters(q, noiseMultiplier, steps);
  return orders.map((alpha) => {
    checkOrder(alpha);
    if (q === 0 || steps === 0) return 0;
    if (noiseMultiplier === 0 || alpha === Infinity) return Infinity;
    if (q === 1) return (steps * alpha) / (2 * noiseMultiplier * noiseMultiplier);
    const rdp = (steps * computeLogA(q, noiseMultiplier, alpha, series)) / (alpha - 1);
    // Only reachable with absurd inputs (σ below ~1e-150); fail loudly rather than report NaN.
    if (Number.isNaN(rdp)) throw new RangeError(`RDP is not computable for q = ${q}, σ = ${noiseMultiplier}, α = ${alpha}`);
    // RDP is never negative; rounding can leave -1e-17 where A_α is 1 + (something below 1e-16).
    if (rdp < 0 && rdp > -1e-12) return 0;
    return rdp;
  });
}

// ---------------------------------------------------------------------------
// RDP → (ε, δ)

function checkCurve(orders: readonly number[], rdp: readonly number[]): void {
  if (orders.length !== rdp.length) {
    throw new RangeError(`orders and rdp must have the same length (${orders.length} vs ${rdp.length})`);
  }
  if (orders.length === 0) throw new RangeError('at least one order is needed');
  for (let k = 0; k < orders.length; k++) {
    checkOrder(orders[k]!);
    if (!(rdp[k]! >= 0)) throw new RangeError(`RDP values must be >= 0, got ${rdp[k]} at order ${orders[k]}`);
  }
}

/** ε at one order (before the minimum over orders and the clamp at 0). */
function epsilonAtOrder(alpha: number, r: number, logDelta: number, delta: number, conversion: Conversion): number {
  if (r === Infinity) return Infinity;
  // D_α = 0 means the two output distributions are identical: (0, 0)-DP.
  if (r === 0) return 0;
  // Both conversions tend to ε = r as α → ∞ (and would compute ∞/∞ there).
  if (alpha === Infinity) return r;
  if (conversion === 'classic') return r - logDelta / (alpha - 1);
  // A small RDP bounds the KL divergence (D_α ≥ D_1 for α > 1), and
  // TV ≤ sqrt(1 − e^{−KL}) (Bretagnolle–Huber); TV ≤ δ already gives (0, δ)-DP.
  if (delta * delta + Math.expm1(-r) > 0) return 0;
  // The improved bound is numerically unstable as α → 1 and useless there.
  if (alpha <= 1.01) return Infinity;
  return r + Math.log1p(-1 / alpha) - (logDelta + Math.log(alpha)) / (alpha - 1);
}

/**
 * The smallest ε over the orders such that the mechanism with these RDP
 * values is (ε, δ)-DP. `delta` must be in (0, 1).
 */
export function epsilonFromRdp(
  orders: readonly number[],
  rdp: readonly number[],
  delta: number,
  conversion: Conversion = 'improved',
): EpsilonResult {
  checkCurve(orders, rdp);
  if (!(delta > 0 && delta < 1)) throw new RangeError(`delta must be in (0, 1), got ${delta}`);
  const logDelta = Math.log(delta);
  let best = Infinity;
  let bestOrder = orders[0]!;
  for (let k = 0; k < orders.length; k++) {
    const eps = epsilonAtOrder(orders[k]!, rdp[k]!, logDelta, delta, conversion);
    if (eps < best) {
      best = eps;
      bestOrder = orders[k]!;
    }
  }
  return { epsilon: Math.max(0, best), optimalOrder: bestOrder };
}

/** log δ at one order for a target ε (before the minimum over orders). */
function logDeltaAtOrder(alpha: number, r: number, epsilon: number, conversion: Conversion): number {
  if (r === Infinity) return 0;
  if (r === 0) return -Infinity; // identical distributions
  if (alpha === Infinity) return r <= epsilon ? -Infinity : 0; // pure ε-DP at ε = r
  if (conversion === 'classic') return (alpha - 1) * (r - epsilon);
  // Same two bounds as epsilonAtOrder, solved for δ: the KL route gives
  // δ ≤ sqrt(1 − e^{−r}), the improved bound δ = e^{(α−1)(r − ε + ln(1 − 1/α)) − ln α}.
  let logDelta = 0.5 * log1mexp(-r);
  if (alpha > 1.01) {
    logDelta = Math.min(logDelta, (alpha - 1) * (r - epsilon + Math.log1p(-1 / alpha)) - Math.log(alpha));
  }
  return logDelta;
}

/** The smallest δ over the orders such that the mechanism is (ε, δ)-DP; capped at 1. */
export function deltaFromRdp(
  orders: readonly number[],
  rdp: readonly number[],
  epsilon: number,
  conversion: Conversion = 'improved',
): DeltaResult {
  checkCurve(orders, rdp);
  if (!(epsilon >= 0)) throw new RangeError(`epsilon must be >= 0, got ${epsilon}`);
  let best = Infinity;
  let bestOrder = orders[0]!;
  for (let k = 0; k < orders.length; k++) {
    const logDelta = logDeltaAtOrder(orders[k]!, rdp[k]!, epsilon, conversion);
    if (logDelta < best) {
      best = logDelta;
      bestOrder = orders[k]!;
    }
  }
  return { delta: Math.min(1, Math.exp(best)), optimalOrder: bestOrder };
}

// ---------------------------------------------------------------------------
// Accountant

export interface SampledGaussianSteps {
  /** Poisson sampling probability q (expected batch / population). */
  readonly sampleRate: number;
  /** Noise standard deviation divided by the L2 sensitivity (clip norm). */
  readonly noiseMultiplier: number;
  /** How many times this mechanism ran; defaults to 1. */
  readonly steps?: number;
  /**
   * True when the mechanism is not a Gaussian and σ only bounds its RDP
   * (Skellam noise, core/privacy/distributed-noise.ts): a PLD of the Gaussian
   * would not bound it, so a history holding such a step is converted by RDP.
   */
  readonly rdpOnly?: boolean;
}

/** One entry of an accountant's history: consecutive steps of one mechanism. */
export interface HistoryEntry {
  sampleRate: number;
  noiseMultiplier: number;
  steps: number;
  /** Present (true) only for steps known by an RDP bound alone (SampledGaussianSteps.rdpOnly). */
  rdpOnly?: true;
}

export interface ConversionOptions {
  readonly conversion?: Conversion;
}

/** What toJSON() writes: enough to rebuild the accountant exactly. */
export interface RdpAccountantState {
  readonly version: 1;
  readonly orders: readonly number[];
  /** Accumulated RDP per order; Infinity is written as null (JSON has no ∞). */
  readonly rdp: readonly (number | null)[];
  /** Composed steps, merged when consecutive entries share q and σ. */
  readonly history: readonly HistoryEntry[];
}

/**
 * Composes heterogeneous sampled-Gaussian steps by adding RDP order by order
 * (RDP composition), and reports (ε, δ) on demand.
 */
export class RdpAccountant {
  readonly orders: readonly number[];
  private readonly rdp: number[];
  private readonly history: HistoryEntry[] = [];
  private unitCache: { sampleRate: number; noiseMultiplier: number; rdp: readonly number[] } | undefined;

  constructor(orders: readonly number[] = DEFAULT_ORDERS) {
    if (orders.length === 0) throw new RangeError('at least one order is needed');
    for (const alpha of orders) checkOrder(alpha);
    this.orders = Object.freeze([...orders]);
    this.rdp = orders.map(() => 0);
  }

  /** Adds `steps` runs of the mechanism; returns this for chaining. */
  step({ sampleRate, noiseMultiplier, steps = 1, rdpOnly = false }: SampledGaussianSteps): this {
    checkStepParameters(sampleRate, noiseMultiplier, steps);
    if (steps === 0) return this;
    const unit = this.unitRdp(sampleRate, noiseMultiplier);
    for (let k = 0; k < unit.length; k++) this.rdp[k]! += steps * unit[k]!;
    const last = this.history[this.history.length - 1];
    if (last && last.sampleRate === sampleRate && last.noiseMultiplier === noiseMultiplier && (last.rdpOnly === true) === rdpOnly)
      last.steps += steps;
    else this.history.push(rdpOnly ? { sampleRate, noiseMultiplier, steps, rdpOnly: true } : { sampleRate, noiseMultiplier, steps });
    return this;
  }

  /**
   * The per-step RDP of (q, σ). One round at a time with the same mechanism is
   * the common pattern, so the last one is kept: fractional orders can take
   * a second to evaluate.
   */
  private unitRdp(sampleRate: number, noiseMultiplier: number): readonly number[] {
    let unit = this.unitCache;
    if (!unit || unit.sampleRate !== sampleRate || unit.noiseMultiplier !== noiseMultiplier) {
      unit = { sampleRate, noiseMultiplier, rdp: computeRdp(sampleRate, noiseMultiplier, 1, this.orders) };
      this.unitCache = unit;
    }
    return unit.rdp;
  }

  /** ε if `next` were composed now, without composing it: for "would this round overspend?" checks. */
  projectEpsilon(next: SampledGaussianSteps, delta: number, options: ConversionOptions = {}): EpsilonResult {
    const { sampleRate, noiseMultiplier, steps = 1 } = next;
    checkStepParameters(sampleRate, noiseMultiplier, steps);
    const unit = this.unitRdp(sampleRate, noiseMultiplier);
    const rdp = this.rdp.map((r, k) => r + steps * unit[k]!);
    return epsilonFromRdp(this.orders, rdp, delta, options.conversion ?? 'improved');
  }

  /** Accumulated RDP per order (a copy). */
  getRdp(): number[] {
    return [...this.rdp];
  }

  getEpsilonAndOrder(delta: number, options: ConversionOptions = {}): EpsilonResult {
    return epsilonFromRdp(this.orders, this.rdp, delta, options.conversion ?? 'improved');
  }

  getEpsilon(delta: number, options: ConversionOptions = {}): number {
    return this.getEpsilonAndOrder(delta, options).epsilon;
  }

  getDeltaAndOrder(epsilon: number, options: ConversionOptions = {}): DeltaResult {
    return deltaFromRdp(this.orders, this.rdp, epsilon, options.conversion ?? 'improved');
  }

  getDelta(epsilon: number, options: ConversionOptions = {}): number {
    return this.getDeltaAndOrder(epsilon, options).delta;
  }

  toJSON(): RdpAccountantState {
    return {
      version: 1,
      orders: [...this.orders],
      rdp: this.rdp.map((r) => (r === Infinity ? null : r)),
      history: this.history.map((h) => ({ ...h })),
    };
  }

  /** Rebuilds an accountant from toJSON() output (or its JSON.parse). */
  static fromJSON(state: unknown): RdpAccountant {
    if (typeof state !== 'object' || state === null) throw new TypeError('accountant state must be an object');
    const s = state as Record<string, unknown>;
    if (s.version !== 1) throw new TypeError(`unsupported accountant state version: ${String(s.version)}`);
    const orders = s.orders;
    const rdp = s.rdp;
    const history = s.history;
    if (!Array.isArray(orders) || !orders.every((o): o is number => typeof o === 'number')) {
      throw new TypeError('accountant state: orders must be an array of numbers');
    }
    if (!Array.isArray(rdp) || rdp.length !== orders.length) {
      throw new TypeError('accountant state: rdp must be an array as long as orders');
    }
    if (!Array.isArray(history)) throw new TypeError('accountant state: history must be an array');
    const accountant = new RdpAccountant(orders);
    rdp.forEach((r: unknown, k) => {
      if (r === null) accountant.rdp[k] = Infinity;
      else if (typeof r === 'number' && r >= 0) accountant.rdp[k] = r;
      else throw new TypeError(`accountant state: bad RDP value at index ${k}: ${String(r)}`);
    });
    for (const h of history as unknown[]) {
      if (typeof h !== 'object' || h === null) throw new TypeError('accountant state: bad history entry');
      const e = h as Record<string, unknown>;
      const sampleRate = e.sampleRate;
      const noiseMultiplier = e.noiseMultiplier;
      const steps = e.steps;
      if (typeof sampleRate !== 'number' || typeof noiseMultiplier !== 'number' || typeof steps !== 'number') {
        throw new TypeError('accountant state: history entries need numeric sampleRate, noiseMultiplier, steps');
      }
      const rdpOnly = e.rdpOnly;
      if (rdpOnly !== undefined && rdpOnly !== true) throw new TypeError('accountant state: rdpOnly must be true or absent');
      accountant.history.push(rdpOnly === true ? { sampleRate, noiseMultiplier, steps, rdpOnly } : { sampleRate, noiseMultiplier, steps });
    }
    return accountant;
  }
}

// ---------------------------------------------------------------------------
// Noise calibration

export interface NoiseSearch {
  readonly sampleRate: number;
  readonly steps: number;
  readonly delta: number;
  readonly targetEpsilon: number;
  readonly orders?: readonly number[];
  readonly conversion?: Conversion;
  /** How fractional orders are summed (see FractionalSeries); default 'absolute'. */
  readonly fractionalSeries?: FractionalSeries;
  /** Stop when the bracket is narrower than this, relative to σ. Default 1e-10. */
  readonly relativeTolerance?: number;
}

/** Largest σ tried before giving up: ε is then far below any sensible target. */
const MAX_NOISE_MULTIPLIER = 1e6;

/**
 * The smallest noise multiplier (to the bisection tolerance) whose ε after
 * `steps` steps at `sampleRate` is at most `targetEpsilon` at `delta`. ε falls
 * as σ grows, so bisection on σ works; the returned σ is the upper end of the
 * final bracket, so its ε never exceeds the target.
 */
export function findNoiseMultiplier(search: NoiseSearch): number {
  const { sampleRate, steps, delta, targetEpsilon } = search;
  const orders = search.orders ?? DEFAULT_ORDERS;
  const conversion = search.conversion ?? 'improved';
  const tolerance = search.relativeTolerance ?? 1e-10;
  if (!(targetEpsilon > 0) || !Number.isFinite(targetEpsilon)) {
    throw new RangeError(`target epsilon must be finite and > 0, got ${targetEpsilon}`);
  }
  if (!(sampleRate > 0 && sampleRate <= 1)) throw new RangeError(`sample rate must be in (0, 1], got ${sampleRate}`);
  if (!(steps > 0) || !Number.isFinite(steps)) throw new RangeError(`steps must be finite and > 0, got ${steps}`);
  if (!(delta > 0 && delta < 1)) throw new RangeError(`delta must be in (0, 1), got ${delta}`);
  const epsilonAt = (sigma: number): number =>
    epsilonFromRdp(
      orders,
      computeRdp(sampleRate, sigma, steps, orders, { fractionalSeries: search.fractionalSeries ?? 'absolute' }),
      delta,
      conversion,
    ).epsilon;

  let hi = 1;
  while (epsilonAt(hi) > targetEpsilon) {
    hi *= 2;
    if (hi > MAX_NOISE_MULTIPLIER) {
      throw new RangeError(`no noise multiplier up to ${MAX_NOISE_MULTIPLIER} reaches epsilon ${targetEpsilon}`);
    }
  }
  let lo = hi / 2;
  while (lo > 1e-6 && epsilonAt(lo) <= targetEpsilon) {
    hi = lo;
    lo /= 2;
  }
  if (lo <= 1e-6) lo = 0; // ε(0) = ∞ > target
  while (hi - lo > tolerance * hi) {
    const mid = (lo + hi) / 2;
    if (epsilonAt(mid) > targetEpsilon) lo = mid;
    else hi = mid;
  }
  return hi;
}
