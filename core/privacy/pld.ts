/**
 * Privacy loss distribution (PLD) accountant for the Poisson-subsampled
 * Gaussian mechanism (Meiser & Mohammadi 2018; Koskela, Jälkö, Honkela 2020;
 * Doroshenko, Ghazi, Kamath, Kumar, Manurangsi 2022 "Connect the Dots").
 *
 * Pure math: no tfjs, no DOM, no Node APIs.
 *
 * One step with sampling probability q and noise multiplier σ, one record
 * added or removed (Poisson sampling). With r(x) = exp((2x − 1)/(2σ²)):
 *   remove: P = (1−q)N(0,σ²) + qN(1,σ²), Q = N(0,σ²), L(x) = ln(1 − q + q r(x))
 *   add:    P = N(0,σ²), Q = (1−q)N(0,σ²) + qN(1,σ²), L(x) = −ln(1 − q + q r(x))
 * δ(ε) = E_P[(1 − e^{ε−L})₊] + P(L = ∞), composition adds independent losses,
 * and the mechanism is (ε, δ)-DP when both relations give at most δ: ε is the
 * worse (larger) of the two.
 *
 * Discretisation ("connect the dots"): the losses are put on the grid ℓ_i =
 * iΔ. The P- and Q-mass of {L ∈ [ℓ_i, ℓ_{i+1})} are split between the two
 * end points so that both masses are kept (E_P[e^{−L}] is preserved). That
 * split is a mean-preserving spread of the likelihood ratio, so the true pair
 * is a post-processing of the discrete one: the discrete PLD dominates, and
 * domination survives composition. P-mass below the grid goes to its lowest
 * point and P-mass above it to L = ∞ (also spreads). So ε computed here is
 * never below the true ε, up to floating-point rounding (~1e-12 in δ).
 *
 * Composition: all steps at once in the Fourier domain, Π_g FFT(p_g)^{T_g}, on
 * a window of the composed loss chosen by Chernoff bounds (cumulant K(λ) of
 * the discrete PLD) so that at most `windowTailMass` lies above and below it.
 * The FFT is circular: out-of-window mass folds into the window, which can only
 * add mass there; the out-of-window mass bound is added to δ.
 *
 * Error bound: the connect-the-dots rounding error e = L' − L of one step
 * lies in an interval of width Δ, with mean in [0, β], β ≤ Δ²/8 (Jensen), and
 * the errors are independent across steps. Hoeffding: P(Σe ≤ −t) ≤ η with
 * t = Δ·√(T ln(1/η)/2). Hence the true ε ≥ ε'(δ + η + tails) − t − Tβ, where ε'
 * is read off the composed discrete PLD without the pessimistic tail mass.
 * That lower bound is reported next to ε; the true ε lies in between.
 */

import { erfc } from './math.ts';
import { fft, nextPowerOfTwo } from './fft.ts';

export type NeighbourRelation = 'remove' | 'add';

export interface PldMechanism {
  /** Poisson sampling probability q in [0, 1]. */
  readonly sampleRate: number;
  /** Noise standard deviation divided by the L2 sensitivity. */
  readonly noiseMultiplier: number;
  /** How many times it ran. */
  readonly steps: number;
}

export interface PldOptions {
  /** Δ, the loss grid spacing; default 1e-4 (dp_accounting's default). Coarsened ×2 until the window fits maxBins. */
  readonly discretisationInterval?: number;
  /** P-mass cut from each tail of one step (default 1e-25); the upper tail goes to L = ∞, so it is charged in δ. */
  readonly stepTailMass?: number;
  /** Chernoff bound on the composed mass outside the FFT window, each side (default 1e-15); added to δ. */
  readonly windowTailMass?: number;
  /** Largest FFT size (default 2^22). */
  readonly maxBins?: number;
  /** Compose histories with q = 1 only in closed form (one Gaussian with μ² = Σ T/σ²); default true. */
  readonly analyticGaussian?: boolean;
}

export interface PldEpsilon {
  /** Upper bound on ε (pessimistic): the value to charge. */
  readonly epsilon: number;
  /** Rigorous lower bound on the true ε (Hoeffding over the rounding errors); epsilon − epsilonLower bounds the error. */
  readonly epsilonLower: number;
  readonly delta: number;
  /** Δ actually used (0 for the closed form). */
  readonly discretisationInterval: number;
  /** δ charged for truncation: mass moved to L = ∞ plus the out-of-window bound (worse relation). */
  readonly truncatedMass: number;
  /** The relation that gave the larger ε. */
  readonly worstRelation: NeighbourRelation;
  readonly method: 'fft' | 'analytic-gaussian';
  /** Total steps composed. */
  readonly steps: number;
}

export interface PldDelta {
  /** Upper bound on δ(ε). */
  readonly delta: number;
  readonly epsilon: number;
  readonly discretisationInterval: number;
  readonly worstRelation: NeighbourRelation;
  readonly method: 'fft' | 'analytic-gaussian';
}

const DEFAULTS = {
  discretisationInterval: 1e-4,
  stepTailMass: 1e-25,
  windowTailMass: 1e-15,
  maxBins: 2 ** 22,
} as const;

// ---------------------------------------------------------------------------
// Gaussian masses

const SQRT1_2 = Math.SQRT1_2;

/** Φ(t), the standard normal CDF, with full relative accuracy in the lower tail. */
function normalCdf(t: number): number {
  return 0.5 * erfc(-t * SQRT1_2);
}

/** Φ(v) − Φ(u) for u ≤ v, computed on the side where it keeps its digits. */
function normalMass(u: number, v: number): number {
  if (!(v > u)) return 0;
  if (u >= 0) return normalCdf(-u) - normalCdf(-v);
  if (v <= 0) return normalCdf(v) - normalCdf(u);
  return 1 - normalCdf(-v) - normalCdf(u);
}

/** Smallest z ≥ 0 (to 1e-12) with Φ(−z) ≤ mass. */
function normalTail(mass: number): number {
  let lo = 0;
  let hi = 40;
  while (hi - lo > 1e-12) {
    const mid = (lo + hi) / 2;
    if (normalCdf(-mid) > mass) lo = mid;
    else hi = mid;
  }
  return hi;
}

// ---------------------------------------------------------------------------
// One step, discretised

/** A discrete PLD: P-masses on ℓ = (offset + i)Δ, plus mass at L = ∞. */
interface DiscretePld {
  readonly delta: number; // Δ
  readonly offset: number;
  readonly masses: Float64Array;
  readonly infinityMass: number;
  /** P-mass of the lower tail that was lumped into the lowest point. */
  readonly lumpedBelow: number;
}

/**
 * Connect-the-dots discretisation of one step. x(ℓ) inverts the loss:
 * remove: L ≥ ℓ ⇔ x ≥ σ² ln(1 + expm1(ℓ)/q) + ½; add: L ≥ ℓ ⇔ x ≤ σ² ln(1 + expm1(−ℓ)/q) + ½.
 */
function discretiseStep(q: number, sigma: number, relation: NeighbourRelation, gridDelta: number, tailMass: number): DiscretePld {
  const s2 = sigma * sigma;
  const z = normalTail(tailMass);
  const lossAt = (x: number): number => {
    // ln(1 − q + q r(x)), r = e^{(2x−1)/(2σ²)}, without overflow
    const a = (2 * x - 1) / (2 * s2);
    const l = a > 0 ? a + Math.log(q + (1 - q) * Math.exp(-a)) : Math.log1p(q * Math.expm1(a));
    return relation === 'remove' ? l : -l;
  };
  // x where the loss equals ℓ; ±Infinity outside the loss's range.
  const xAt = (loss: number): number => {
    const signed = relation === 'remove' ? loss : -loss;
    const inner = Math.expm1(signed) / q; // r − 1
    if (inner <= -1) return -Infinity;
    if (inner === Infinity) {
      // ln(1 + (e^s − 1)/q) ≈ s − ln q for large s
      return s2 * (signed - Math.log(q)) + 0.5;
    }
    return s2 * Math.log1p(inner) + 0.5;
  };
  // The loss range holding all but `tailMass` of P on each side.
  let lossLow: number;
  let lossHigh: number;
  if (relation === 'remove') {
    // P = (1−q)N(0) + qN(1): x within [−σz, 1 + σz] (for q = 1, [1 − σz, 1 + σz]).
    lossHigh = lossAt(1 + sigma * z);
    lossLow = q < 1 ? Math.log1p(-q) : lossAt(1 - sigma * z);
  } else {
    // P = N(0): x within [−σz, σz]; the loss decreases in x.
    lossLow = lossAt(sigma * z);
    lossHigh = q < 1 ? -Math.log1p(-q) : lossAt(-sigma * z);
  }
  const lowIndex = Math.floor(lossLow / gridDelta);
  const highIndex = Math.max(lowIndex + 1, Math.ceil(lossHigh / gridDelta));
  const count = highIndex - lowIndex + 1;
  const masses = new Float64Array(count);
  const oneMinusEmd = -Math.expm1(-gridDelta); // 1 − e^{−Δ}

  // Masses of the interval between x-boundaries xa < xb of each component.
  const pAndBracket = (ell: number, xa: number, xb: number): { p: number; bracket: number } => {
    const m0 = normalMass(xa / sigma, xb / sigma);
    const m1 = normalMass((xa - 1) / sigma, (xb - 1) / sigma);
    // r at the interval's lower loss ℓ: remove r = 1 + expm1(ℓ)/q, add r = 1 + expm1(−ℓ)/q.
    const rAt = 1 + Math.expm1(relation === 'remove' ? ell : -ell) / q;
    if (relation === 'remove') {
      // p − e^ℓ q_Q = q(m1 − r m0) ≥ 0
      return { p: (1 - q) * m0 + q * m1, bracket: q * (m1 - rAt * m0) };
    }
    // p − e^ℓ q_Q = e^ℓ q (r m0 − m1) ≥ 0
    return { p: m0, bracket: Math.exp(ell) * q * (rAt * m0 - m1) };
  };

  let lumpedBelow = 0;
  let assigned = 0;
  for (let k = 0; k < count - 1; k++) {
    const ell = (lowIndex + k) * gridDelta;
    const ellNext = ell + gridDelta;
    let xa: number;
    let xb: number;
    if (relation === 'remove') {
      xa = xAt(ell);
      xb = xAt(ellNext);
    } else {
      xa = xAt(ellNext);
      xb = xAt(ell);
    }
    const { p, bracket } = pAndBracket(ell, xa, xb);
    if (!(p > 0)) continue;
    // Rounding can push the bracket a hair below 0; NaN (σ so small that r overflows) goes up, pessimistically.
    const up = Number.isNaN(bracket) ? p : Math.min(p, Math.max(0, bracket / oneMinusEmd));
    masses[k]! += p - up;
    masses[k + 1]! += up;
    assigned += p;
  }
  // Below the lowest grid point: into it. Above the highest: to L = ∞.
  const xLow = xAt(lowIndex * gridDelta);
  const xHigh = xAt(highIndex * gridDelta);
  let below: number;
  let above: number;
  if (relation === 'remove') {
    below = (1 - q) * normalCdf(xLow / sigma) + q * normalCdf((xLow - 1) / sigma);
    above = (1 - q) * normalCdf(-xHigh / sigma) + q * normalCdf((1 - xHigh) / sigma);
  } else {
    below = normalCdf(-xLow / sigma);
    above = normalCdf(xHigh / sigma);
  }
  masses[0]! += below;
  lumpedBelow = below;
  assigned += below;
  // Whatever rounding left unassigned goes to ∞ too: δ can only grow.
  const infinityMass = Math.max(above, 1 - assigned);
  return { delta: gridDelta, offset: lowIndex, masses, infinityMass, lumpedBelow };
}

const stepCache = new Map<string, DiscretePld>();

function cachedStep(q: number, sigma: number, relation: NeighbourRelation, gridDelta: number, tailMass: number): DiscretePld {
  const key = `${q}|${sigma}|${relation}|${gridDelta}|${tailMass}`;
  let step = stepCache.get(key);
  if (!step) {
    step = discretiseStep(q, sigma, relation, gridDelta, tailMass);
    if (stepCache.size >= 16) stepCache.delete(stepCache.keys().next().value as string);
    stepCache.set(key, step);
  }
  return step;
}

// ---------------------------------------------------------------------------
// Composition

/** The composed finite part on the window, plus what was charged to ∞. */
interface ComposedPld {
  readonly gridDelta: number;
  readonly offset: number;
  readonly masses: Float64Array;
  /** P(L = ∞) of the composition. */
  readonly infinityMass: number;
  /** Chernoff bound on the composed mass above plus below the window. */
  readonly outsideWindow: number;
  /** Σ T·(lumped lower-tail mass): events where the rounding bound does not hold. */
  readonly lumped: number;
  /** Σ T over the composed steps. */
  readonly steps: number;
}

/**
 * log Σ_i p_i e^{λ ℓ_i} for one discrete step (finite part). The weights form a
 * geometric sequence, so they are built by multiplication from the end where
 * they are largest (no exp per point, no overflow).
 */
function logMgf(step: DiscretePld, lambda: number): number {
  const { masses, offset, delta } = step;
  const last = masses.length - 1;
  const ratio = Math.exp(-Math.abs(lambda) * delta);
  let sum = 0;
  let weight = 1;
  if (lambda >= 0) {
    for (let i = last; i >= 0; i--, weight *= ratio) sum += masses[i]! * weight;
    return lambda * (offset + last) * delta + Math.log(sum);
  }
  for (let i = 0; i <= last; i++, weight *= ratio) sum += masses[i]! * weight;
  return lambda * offset * delta + Math.log(sum);
}

const LAMBDAS: readonly number[] = Array.from({ length: 61 }, (_, k) => 10 ** (-3 + k * 0.1));

/** The loss window [lo, hi] with P(ΣL > hi), P(ΣL < lo) ≤ tail each (Chernoff). */
function chooseWindow(groups: readonly { step: DiscretePld; steps: number }[], tail: number): { lo: number; hi: number } {
  const logInvTail = -Math.log(tail);
  let hi = Infinity;
  let lo = -Infinity;
  for (const lambda of LAMBDAS) {
    let kPlus = 0;
    let kMinus = 0;
    for (const { step, steps } of groups) {
      kPlus += steps * logMgf(step, lambda);
      kMinus += steps * logMgf(step, -lambda);
    }
    hi = Math.min(hi, (kPlus + logInvTail) / lambda);
    lo = Math.max(lo, -(kMinus + logInvTail) / lambda);
  }
  // Never wider than the support.
  let supportLo = 0;
  let supportHi = 0;
  for (const { step, steps } of groups) {
    supportLo += steps * step.offset * step.delta;
    supportHi += steps * (step.offset + step.masses.length - 1) * step.delta;
  }
  return { lo: Math.max(lo, supportLo), hi: Math.min(hi, supportHi) };
}

interface GroupSpec {
  readonly q: number;
  readonly sigma: number;
  readonly steps: number;
}

function compose(
  groups: readonly GroupSpec[],
  relation: NeighbourRelation,
  options: Required<Omit<PldOptions, 'analyticGaussian'>>,
): ComposedPld {
  let gridDelta = options.discretisationInterval;
  for (;;) {
    const steps = groups.map((g) => ({ step: cachedStep(g.q, g.sigma, relation, gridDelta, options.stepTailMass), steps: g.steps }));
    const window = chooseWindow(steps, options.windowTailMass);
    const loIndex = Math.floor(window.lo / gridDelta);
    const hiIndex = Math.ceil(window.hi / gridDelta);
    const width = hiIndex - loIndex + 1;
    if (width > options.maxBins) {
      gridDelta *= 2;
      continue;
    }
    const n = nextPowerOfTwo(width);
    const accRe = new Float64Array(n);
    const accIm = new Float64Array(n);
    accRe.fill(1);
    let shift = 0; // Σ T·offset: absolute index of circular index 0
    let infinityLog = 0; // log Π (1 − p∞)^T
    let lumped = 0;
    let totalSteps = 0;
    for (const { step, steps: t } of steps) {
      const re = new Float64Array(n);
      const im = new Float64Array(n);
      for (let i = 0; i < step.masses.length; i++) re[i % n]! += step.masses[i]!;
      fft(re, im);
      for (let k = 0; k < n; k++) {
        // (re + i im)^t in polar form
        const r = Math.hypot(re[k]!, im[k]!);
        if (r === 0) {
          accRe[k] = 0;
          accIm[k] = 0;
          continue;
        }
        const magnitude = Math.exp(t * Math.log(r));
        const angle = t * Math.atan2(im[k]!, re[k]!);
        const pr = magnitude * Math.cos(angle);
        const pi = magnitude * Math.sin(angle);
        const ar = accRe[k]!;
        const ai = accIm[k]!;
        accRe[k] = ar * pr - ai * pi;
        accIm[k] = ar * pi + ai * pr;
      }
      shift += t * step.offset;
      infinityLog += t * Math.log1p(-step.infinityMass);
      lumped += t * step.lumpedBelow;
      totalSteps += t;
    }
    fft(accRe, accIm, true);
    const masses = new Float64Array(width);
    const start = (((loIndex - shift) % n) + n) % n;
    for (let m = 0; m < width; m++) {
      // Negative values are FFT rounding (~1e-17); zero is the pessimistic reading.
      masses[m] = Math.max(0, accRe[(start + m) % n]!);
    }
    return {
      gridDelta,
      offset: loIndex,
      masses,
      infinityMass: -Math.expm1(infinityLog),
      outsideWindow: 2 * options.windowTailMass,
      lumped,
      steps: totalSteps,
    };
  }
}

// ---------------------------------------------------------------------------
// Reading (ε, δ) off a composed PLD

/** Σ_m p_m (1 − e^{ε−ℓ_m})₊ + extra. */
function deltaOf(pld: ComposedPld, epsilon: number, extra: number): number {
  let sum = 0;
  const { masses, offset, gridDelta } = pld;
  for (let m = masses.length - 1; m >= 0; m--) {
    const ell = (offset + m) * gridDelta;
    if (ell <= epsilon) break;
    sum += masses[m]! * -Math.expm1(epsilon - ell);
  }
  return sum + extra;
}

/** The smallest ε ≥ 0 with Σ p (1 − e^{ε−ℓ})₊ + extra ≤ δ (∞ if extra ≥ δ). */
function epsilonOf(pld: ComposedPld, delta: number, extra: number): number {
  if (extra >= delta) return Infinity;
  const { masses, offset, gridDelta } = pld;
  const decay = Math.exp(-gridDelta);
  let tailMass = 0; // Σ_{m ≥ k} p_m
  let tailWeighted = 0; // Σ_{m ≥ k} p_m e^{ℓ_k − ℓ_m}
  for (let k = masses.length - 1; k >= 0; k--) {
    tailMass += masses[k]!;
    tailWeighted = masses[k]! + tailWeighted * decay;
    const ellK = (offset + k) * gridDelta;
    // δ at ℓ_{k−1}: Σ_{m ≥ k} p_m (1 − e^{ℓ_{k−1} − ℓ_m})
    const deltaBelow = tailMass - tailWeighted * decay + extra;
    if (deltaBelow > delta || k === 0) {
      // In [ℓ_{k−1}, ℓ_k] (or below the lowest point): δ(ε) = tailMass − e^{ε−ℓ_k} tailWeighted + extra.
      const ratio = (tailMass + extra - delta) / tailWeighted;
      if (!(ratio > 0)) return Math.max(0, ellK);
      return Math.max(0, Math.min(ellK, ellK + Math.log(ratio)));
    }
  }
  return 0;
}

/** Per-step bound on the mean rounding error of connect-the-dots: max_w wΔ + ln(1 − w(1 − e^{−Δ})). */
function meanRoundingBound(gridDelta: number): number {
  const c = -Math.expm1(-gridDelta);
  const w = (1 - c / gridDelta) / c;
  return Math.max(0, w * gridDelta + Math.log1p(-w * c));
}

// ---------------------------------------------------------------------------
// Closed form for q = 1: one Gaussian mechanism with μ² = Σ T/σ²

/** δ(ε) of the Gaussian mechanism with μ = sensitivity/σ (Balle & Wang 2018): Φ(μ/2 − ε/μ) − e^ε Φ(−μ/2 − ε/μ). */
export function gaussianDelta(mu: number, epsilon: number): number {
  if (mu === 0) return 0;
  if (mu === Infinity) return 1;
  const a = normalCdf(mu / 2 - epsilon / mu);
  // e^ε Φ(−μ/2 − ε/μ) without overflow: Φ(−x) = erfcx-like via exp(ε + log Φ)
  const tail = normalCdf(-mu / 2 - epsilon / mu);
  const b = tail === 0 ? 0 : Math.exp(epsilon + Math.log(tail));
  return Math.max(0, a - b);
}

/** The smallest ε ≥ 0 with gaussianDelta(μ, ε) ≤ δ, to ~1e-12 relative. */
export function gaussianEpsilon(mu: number, delta: number): number {
  if (mu === 0) return 0;
  if (gaussianDelta(mu, 0) <= delta) return 0;
  let hi = 1;
  while (gaussianDelta(mu, hi) > delta) hi *= 2;
  let lo = 0;
  while (hi - lo > 1e-12 * Math.max(1, hi)) {
    const mid = (lo + hi) / 2;
    if (gaussianDelta(mu, mid) > delta) lo = mid;
    else hi = mid;
  }
  return hi;
}

// ---------------------------------------------------------------------------
// Public functions

function checkMechanisms(history: readonly PldMechanism[]): GroupSpec[] {
  const merged = new Map<string, GroupSpec>();
  for (const h of history) {
    const { sampleRate: q, noiseMultiplier: sigma, steps } = h;
    if (!(q >= 0 && q <= 1)) throw new RangeError(`sample rate must be in [0, 1], got ${q}`);
    if (!(sigma >= 0) || sigma === Infinity) throw new RangeError(`noise multiplier must be finite and >= 0, got ${sigma}`);
    if (!(steps >= 0) || !Number.isSafeInteger(steps)) throw new RangeError(`steps must be a whole number >= 0, got ${steps}`);
    if (q === 0 || steps === 0) continue; // no record is ever touched
    const key = `${q}|${sigma}`;
    const prev = merged.get(key);
    merged.set(key, { q, sigma, steps: (prev?.steps ?? 0) + steps });
  }
  return [...merged.values()];
}

function resolve(options: PldOptions): Required<Omit<PldOptions, 'analyticGaussian'>> & { analyticGaussian: boolean } {
  const o = { ...DEFAULTS, analyticGaussian: true, ...options };
  if (!(o.discretisationInterval > 0)) throw new RangeError(`discretisation interval must be > 0, got ${o.discretisationInterval}`);
  if (!(o.stepTailMass > 0 && o.stepTailMass < 1e-3)) throw new RangeError(`step tail mass must be in (0, 1e-3), got ${o.stepTailMass}`);
  if (!(o.windowTailMass > 0 && o.windowTailMass < 1e-3))
    throw new RangeError(`window tail mass must be in (0, 1e-3), got ${o.windowTailMass}`);
  if (!(o.maxBins >= 1024)) throw new RangeError(`maxBins must be >= 1024, got ${o.maxBins}`);
  return o;
}

const composedCache = new Map<string, ComposedPld>();

function composedFor(
  groups: readonly GroupSpec[],
  relation: NeighbourRelation,
  options: Required<Omit<PldOptions, 'analyticGaussian'>>,
): ComposedPld {
  const key = JSON.stringify([groups, relation, options]);
  let composed = composedCache.get(key);
  if (!composed) {
    composed = compose(groups, relation, options);
    if (composedCache.size >= 4) composedCache.delete(composedCache.keys().next().value as string);
    composedCache.set(key, composed);
  }
  return composed;
}

/**
 * (ε, δ) of a history of sampled-Gaussian steps under add/remove-one
 * neighbours: ε is an upper bound (pessimistic), epsilonLower a lower bound.
 */
export function pldEpsilon(history: readonly PldMechanism[], delta: number, options: PldOptions = {}): PldEpsilon {
  if (!(delta > 0 && delta < 1)) throw new RangeError(`delta must be in (0, 1), got ${delta}`);
  const o = resolve(options);
  const groups = checkMechanisms(history);
  const steps = groups.reduce((s, g) => s + g.steps, 0);
  if (groups.length === 0) {
    return {
      epsilon: 0,
      epsilonLower: 0,
      delta,
      discretisationInterval: o.discretisationInterval,
      truncatedMass: 0,
      worstRelation: 'remove',
      method: 'fft',
      steps,
    };
  }
  if (groups.some((g) => g.sigma === 0)) {
    return {
      epsilon: Infinity,
      epsilonLower: Infinity,
      delta,
      discretisationInterval: o.discretisationInterval,
      truncatedMass: 1,
      worstRelation: 'remove',
      method: 'fft',
      steps,
    };
  }
  if (o.analyticGaussian && groups.every((g) => g.q === 1)) {
    const mu = Math.sqrt(groups.reduce((s, g) => s + g.steps / (g.sigma * g.sigma), 0));
    const epsilon = gaussianEpsilon(mu, delta);
    // Bisection returns the upper end of its bracket (within 1e-12 of the exact value).
    return {
      epsilon,
      epsilonLower: Math.max(0, epsilon - 1e-12 * Math.max(1, epsilon)),
      delta,
      discretisationInterval: 0,
      truncatedMass: 0,
      worstRelation: 'remove',
      method: 'analytic-gaussian',
      steps,
    };
  }
  let worst: { relation: NeighbourRelation; upper: number; lower: number; pld: ComposedPld; truncated: number } | undefined;
  let worstLower = 0;
  for (const relation of ['remove', 'add'] as const) {
    const pld = composedFor(groups, relation, o);
    const truncated = pld.infinityMass + pld.outsideWindow;
    const upper = epsilonOf(pld, delta, truncated);
    // Lower bound: drop the pessimistic mass, allow η for Hoeffding, shift by t + Tβ.
    const eta = delta * 1e-3;
    const t = pld.gridDelta * Math.sqrt((pld.steps * Math.log(1 / eta)) / 2);
    const shift = t + pld.steps * meanRoundingBound(pld.gridDelta);
    const raised = delta + eta + pld.outsideWindow + pld.lumped;
    const lower = raised >= 1 ? 0 : Math.max(0, epsilonOf(pld, raised, 0) - shift);
    worstLower = Math.max(worstLower, Math.min(lower, upper));
    if (!worst || upper > worst.upper) worst = { relation, upper, lower, pld, truncated };
  }
  return {
    epsilon: worst!.upper,
    epsilonLower: worstLower,
    delta,
    discretisationInterval: worst!.pld.gridDelta,
    truncatedMass: worst!.truncated,
    worstRelation: worst!.relation,
    method: 'fft',
    steps,
  };
}

/** Upper bound on δ(ε) of the history (worse of add and remove). */
export function pldDelta(history: readonly PldMechanism[], epsilon: number, options: PldOptions = {}): PldDelta {
  if (!(epsilon >= 0)) throw new RangeError(`epsilon must be >= 0, got ${epsilon}`);
  const o = resolve(options);
  const groups = checkMechanisms(history);
  if (groups.length === 0)
    return { delta: 0, epsilon, discretisationInterval: o.discretisationInterval, worstRelation: 'remove', method: 'fft' };
  if (groups.some((g) => g.sigma === 0))
    return { delta: 1, epsilon, discretisationInterval: o.discretisationInterval, worstRelation: 'remove', method: 'fft' };
  if (o.analyticGaussian && groups.every((g) => g.q === 1)) {
    const mu = Math.sqrt(groups.reduce((s, g) => s + g.steps / (g.sigma * g.sigma), 0));
    return { delta: gaussianDelta(mu, epsilon), epsilon, discretisationInterval: 0, worstRelation: 'remove', method: 'analytic-gaussian' };
  }
  let best: PldDelta | undefined;
  for (const relation of ['remove', 'add'] as const) {
    const pld = composedFor(groups, relation, o);
    const d = Math.min(1, deltaOf(pld, epsilon, pld.infinityMass + pld.outsideWindow));
    if (!best || d > best.delta)
      best = { delta: d, epsilon, discretisationInterval: pld.gridDelta, worstRelation: relation, method: 'fft' };
  }
  return best!;
}
