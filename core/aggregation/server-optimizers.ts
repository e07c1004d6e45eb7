import { FedAvg } from './fedavg.ts';
import { innerPartialMethods, type PartialAggregate } from './partial.ts';
import type { ClientResult, RoundAggregator, RoundContext, Strategy, StrategyTraits } from './strategy.ts';
import { StrategyWrapper } from './wrapper.ts';

/**
 * Adaptive server optimizers, FedAdam and FedYogi (Reddi et al. 2021,
 * "Adaptive Federated Optimization", Algorithm 2). The base aggregation
 * (FedAvg's weighted mean by default) gives the round's pseudo-gradient
 * Δ = aggregate − x; the server then keeps per-coordinate moments across
 * rounds:
 *
 *   m ← β1·m + (1 − β1)·Δ
 *   Adam: v ← β2·v + (1 − β2)·Δ²
 *   Yogi: v ← v − (1 − β2)·Δ²·sign(v − Δ²)
 *   x ← x + η·m / (√v + τ)
 *
 * As in Algorithm 2: m starts at 0, v at τ² (the paper asks for v ≥ τ²), and
 * there is no bias correction. (Flower's FedAdam starts v at 0 and adds
 * Adam's bias correction to η; its FedAdam defaults are η = 0.1, τ = 1e-9.)
 * Defaults here are Flower's FedYogi ones, from the paper's ranges:
 * η = 0.01, β1 = 0.9, β2 = 0.99, τ = 1e-3. τ sets how adaptive the step is:
 * the smaller, the more a coordinate's step is normalised by its own history.
 *
 * The moments persist across rounds; `toJSON` / `ServerOptimizer.fromJSON`
 * checkpoint them with the hyperparameters and the step count.
 *
 * Server momentum, FedAvgM (Hsu et al. 2019, "Measuring the Effects of
 * Non-Identical Data Distribution"; the server optimizer FedBuff's paper
 * runs, Nguyen et al. 2022), is the rule 'momentum', with β = β1 and no
 * second moment (v stays null):
 *
 *   m ← β·m + Δ
 *   x ← x + η·m
 *
 * as Flower's FedAvgM computes it; β = 0 is FedAvg with server learning
 * rate η. In the long run a steady Δ moves x by η/(1 − β)·Δ per round.
 */

export type ServerOptimizerRule = 'adam' | 'yogi' | 'momentum';

export interface ServerOptimizerOptions {
  /** η, the server learning rate (default 0.01). */
  readonly learningRate?: number;
  /** β1, decay of the first moment (default 0.9). */
  readonly beta1?: number;
  /** β2, decay of the second moment (default 0.99). */
  readonly beta2?: number;
  /** τ, the adaptivity (default 1e-3). */
  readonly tau?: number;
  /** The aggregation whose result, minus the global weights, is the pseudo-gradient; FedAvg by default. Must apply it with learning rate 1. */
  readonly base?: Strategy;
}

export interface ServerOptimizerState {
  readonly rule: ServerOptimizerRule;
  readonly learningRate: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly tau: number;
  /** Rounds whose pseudo-gradient has been applied. */
  readonly steps: number;
  /** The moments, one value per model weight; null before the first step (v: always, under 'momentum'). */
  readonly m: number[] | null;
  readonly v: number[] | null;
}

export const SERVER_OPTIMIZER_DEFAULTS = { learningRate: 0.01, beta1: 0.9, beta2: 0.99, tau: 1e-3 } as const;

export class ServerOptimizer extends StrategyWrapper {
  readonly name: string;
  readonly learningRate: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly tau: number;
  private m: Float32Array | null = null;
  private v: Float32Array | null = null;
  private stepCount = 0;
  /** The moments the last step started from, until the next step: a refused aggregate puts them back (undoLastStep). */
  private beforeLastStep: { readonly m: Float32Array | null; readonly v: Float32Array | null; readonly steps: number } | undefined;
  /** Buffers a step writes its new moments into (the moments from two steps ago), so steps do not allocate. */
  private spare: { readonly m: Float32Array; readonly v: Float32Array | null } | undefined;

  constructor(
    readonly rule: ServerOptimizerRule,
    options: ServerOptimizerOptions = {},
  ) {
    super(options.base ?? new FedAvg());
    const d = SERVER_OPTIMIZER_DEFAULTS;
    this.learningRate = options.learningRate ?? d.learningRate;
    this.beta1 = options.beta1 ?? d.beta1;
    this.beta2 = options.beta2 ?? d.beta2;
    this.tau = options.tau ?? d.tau;
    if (rule !== 'adam' && rule !== 'yogi' && rule !== 'momentum') throw new RangeError(`unknown server optimizer "${String(rule)}"`);
    if (!(this.learningRate > 0) || !Number.isFinite(this.learningRate))
      throw new RangeError(`the server learning rate must be positive, got ${this.learningRate}`);
    if (!(this.beta1 >= 0 && this.beta1 < 1)) throw new RangeError(`beta1 must be in [0, 1), got ${this.beta1}`);
    if (!(this.beta2 >= 0 && this.beta2 < 1)) throw new RangeError(`beta2 must be in [0, 1), got ${this.beta2}`);
    if (!(this.tau > 0) || !Number.isFinite(this.tau)) throw new RangeError(`tau must be positive, got ${this.tau}`);
    const what =
      rule === 'momentum'
        ? `fedavgm (η=${this.learningRate}, β=${this.beta1})`
        : `fed${rule} (η=${this.learningRate}, β1=${this.beta1}, β2=${this.beta2}, τ=${this.tau})`;
    this.name = this.inner instanceof FedAvg ? what : `${what} over ${this.inner.name}`;
    // Checkpoints carry the moments, and the base's own state (a DP accountant) when it has one.
    const inner = this.inner;
    this.saveState = (): CheckpointedState => ({ optimizer: this.toJSON(), base: inner.saveState?.() });
    this.loadState = (state: unknown) => {
      const s = state as Partial<CheckpointedState> | null;
      if (typeof s !== 'object' || s === null || typeof s.optimizer !== 'object') throw new TypeError('not a server optimizer checkpoint');
      this.restore(s.optimizer);
      if (inner.loadState && s.base !== undefined) inner.loadState(s.base);
    };
  }

  get steps(): number {
    return this.stepCount;
  }

  /** Adam's moments are per coordinate: not the same in a rotated basis, whatever the base rule's traits say. */
  override get traits(): StrategyTraits {
    const { basis: _basis, ...traits } = this.inner.traits;
    return traits;
  }

  override beginRound(context: RoundContext): RoundAggregator {
    return new OptimizerRound(this.inner.beginRound(context), this, context.globalWeights);
  }

  /**
   * Takes one optimizer step. `aggregate` is the base aggregation's new
   * weights (x + Δ); it is overwritten with the optimizer's new weights and
   * returned.
   */
  step(globalWeights: Float32Array, aggregate: Float32Array): Float32Array {
    const dim = globalWeights.length;
    if (aggregate.length !== dim) throw new RangeError(`aggregate has ${aggregate.length} values, the model has ${dim}`);
    if (this.m !== null && this.m.length !== dim)
      throw new RangeError(`the optimizer state has ${this.m.length} values, the model has ${dim}`);
    const before = { m: this.m, v: this.v, steps: this.stepCount };
    const spare = this.spare?.m.length === dim ? this.spare : undefined;
    const m = spare?.m ?? new Float32Array(dim);
    const mPrev = before.m;
    const { beta1, beta2, tau, learningRate } = this;
    if (this.rule === 'momentum') {
      for (let i = 0; i < dim; i++) {
        const x = globalWeights[i]!;
        const mi = beta1 * (mPrev === null ? 0 : mPrev[i]!) + (aggregate[i]! - x);
        m[i] = mi;
        aggregate[i] = x + learningRate * mi;
      }
      this.commitStep(before, m, null);
      return aggregate;
    }
    const v = spare?.v ?? new Float32Array(dim);
    const vPrev = before.v;
    const yogi = this.rule === 'yogi';
    for (let i = 0; i < dim; i++) {
      const x = globalWeights[i]!;
      const delta = aggregate[i]! - x;
      const sq = delta * delta;
      // Before the first step: m = 0, v = τ².
      const mi = beta1 * (mPrev === null ? 0 : mPrev[i]!) + (1 - beta1) * delta;
      const vp = vPrev === null ? tau * tau : vPrev[i]!;
      const vi = yogi ? vp - (1 - beta2) * sq * Math.sign(vp - sq) : beta2 * vp + (1 - beta2) * sq;
      m[i] = mi;
      v[i] = vi;
      // v stays >= 0 (Yogi moves it towards Δ², Adam averages squares), so the square root is real.
      aggregate[i] = x + (learningRate * mi) / (Math.sqrt(vi) + tau);
    }
    this.commitStep(before, m, v);
    return aggregate;
  }

  /** Makes `m`, `v` the moments, keeping those the step started from for undoLastStep and as the next step's buffers. */
  private commitStep(before: NonNullable<ServerOptimizer['beforeLastStep']>, m: Float32Array, v: Float32Array | null): void {
    this.m = m;
    this.v = v;
    this.stepCount++;
    this.beforeLastStep = before;
    this.spare = before.m !== null ? { m: before.m, v: before.v } : undefined;
  }

  /**
   * Undoes the last step (its aggregate was refused and never committed):
   * the moments and step count are as before it. Only the last step, once.
   */
  undoLastStep(): void {
    const before = this.beforeLastStep;
    if (before === undefined) throw new Error('the server optimizer has no step to undo');
    this.spare = this.m !== null ? { m: this.m, v: this.v } : undefined;
    this.m = before.m;
    this.v = before.v;
    this.stepCount = before.steps;
    this.beforeLastStep = undefined;
  }

  toJSON(): ServerOptimizerState {
    return {
      rule: this.rule,
      learningRate: this.learningRate,
      beta1: this.beta1,
      beta2: this.beta2,
      tau: this.tau,
      steps: this.stepCount,
      // Float32 values print and parse back exactly as JSON numbers.
      m: this.m ? Array.from(this.m) : null,
      v: this.v ? Array.from(this.v) : null,
    };
  }

  /** Rebuilds an optimizer from `toJSON()`'s output (as parsed from JSON), on `base` (FedAvg by default). */
  static fromJSON(state: ServerOptimizerState, base?: Strategy): ServerOptimizer {
    const s = checkObject(state);
    const optimizer = new ServerOptimizer(s.rule as ServerOptimizerRule, {
      learningRate: s.learningRate,
      beta1: s.beta1,
      beta2: s.beta2,
      tau: s.tau,
      base,
    });
    optimizer.restore(s);
    return optimizer;
  }

  /** Takes over the moments and step count of `state`, which must have this optimizer's rule and hyperparameters. */
  restore(state: unknown): void {
    const s = checkObject(state);
    for (const key of ['rule', 'learningRate', 'beta1', 'beta2', 'tau'] as const) {
      if (s[key] !== this[key]) throw new TypeError(`server optimizer state: ${key} is ${String(s[key])}, this optimizer has ${this[key]}`);
    }
    const steps = s.steps;
    if (!(Number.isInteger(steps) && steps! >= 0))
      throw new TypeError(`server optimizer state: steps must be a non-negative integer, got ${String(steps)}`);
    const m = moment(s.m, 'm');
    const v = moment(s.v, 'v');
    if (this.rule === 'momentum') {
      if (v !== null) throw new TypeError('server optimizer state: momentum keeps no second moment, v must be null');
    } else if ((m === null) !== (v === null) || (m && v && m.length !== v.length))
      throw new TypeError('server optimizer state: m and v must both be present, with equal lengths, or both null');
    if (v?.some((x) => x < 0)) throw new TypeError('server optimizer state: v must be non-negative');
    this.m = m;
    this.v = v;
    this.stepCount = steps!;
    this.beforeLastStep = undefined;
    this.spare = undefined;
  }
}

/** What `saveState` returns: the optimizer's state and its base strategy's, if any. */
interface CheckpointedState {
  readonly optimizer: ServerOptimizerState;
  readonly base?: unknown;
}

function checkObject(state: unknown): Partial<ServerOptimizerState> {
  if (typeof state !== 'object' || state === null) throw new TypeError('server optimizer state must be an object');
  return state as Partial<ServerOptimizerState>;
}

function moment(values: unknown, name: string): Float32Array | null {
  if (values === null) return null;
  if (!Array.isArray(values) || !values.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    throw new TypeError(`server optimizer state: ${name} must be null or an array of finite numbers`);
  }
  return Float32Array.from(values as number[]);
}

/** FedAdam: Adam on the server over the round's pseudo-gradient. */
export class FedAdam extends ServerOptimizer {
  constructor(options: ServerOptimizerOptions = {}) {
    super('adam', options);
  }
}

/** FedYogi: Yogi on the server; its second moment changes additively, so it adapts more cautiously than Adam's. */
export class FedYogi extends ServerOptimizer {
  constructor(options: ServerOptimizerOptions = {}) {
    super('yogi', options);
  }
}

class OptimizerRound implements RoundAggregator {
  /** Present only when the base rule's round takes a secure aggregation sum (RoundAggregator.addSum). */
  readonly addSum?: (sum: Float64Array, count: number) => void;
  readonly partial?: () => PartialAggregate;
  readonly addPartial?: (partial: PartialAggregate) => void;

  constructor(
    private readonly inner: RoundAggregator,
    private readonly optimizer: ServerOptimizer,
    private readonly globalWeights: Float32Array,
  ) {
    const addSum = inner.addSum;
    if (addSum) this.addSum = (sum, count) => addSum.call(inner, sum, count);
    // The step runs once, at the leader's finish(); nodes only sum.
    ({ partial: this.partial, addPartial: this.addPartial } = innerPartialMethods(inner));
  }

  get count(): number {
    return this.inner.count;
  }

  add(result: ClientResult): void {
    this.inner.add(result);
  }

  finish(): Float32Array | null {
    const aggregate = this.inner.finish();
    // No aggregate, no step: the moments only see rounds that produced a pseudo-gradient.
    return aggregate === null ? null : this.optimizer.step(this.globalWeights, aggregate);
  }

  abandon(): void {
    this.inner.abandon?.();
  }

  rejectAggregate(): void {
    this.optimizer.undoLastStep();
    this.inner.rejectAggregate?.();
  }
}
