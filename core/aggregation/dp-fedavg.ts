import { RdpAccountant, type RdpAccountantState } from '../privacy/accountant.ts';
import { clipToNorm, GaussianSampler } from '../privacy/update-privacy.ts';
import { clientLevelGrid, noiseOnGrid } from '../privacy/grid-noise.ts';
import { planDistributedNoise, type DistributedNoisePlan } from '../privacy/distributed-noise.ts';
import { accountEpsilon, isAccountantKind, type AccountantKind } from '../privacy/epsilon.ts';
import type { FitConfig } from '../protocol/messages.ts';
import { SecureRandom, type UniformSource } from '../random/prng.ts';
import type { RoundSettings, SettingsChange } from '../protocol/status.ts';
import { checkPartial, type PartialAggregate } from './partial.ts';
import { floatKernels, type Float64Sum } from '../math/float-kernels.ts';
import {
  contributionWeight,
  type ClientResult,
  type PrivacyReport,
  type RoundAggregator,
  type RoundContext,
  type Strategy,
  type StrategyTraits,
} from './strategy.ts';

/** The noised sum's grid keeps coordinates up to this many clip norms exact (float64 leaves room to spare). */
const SUM_RANGE_IN_CLIPS = 2 ** 20;

/**
 * Client-level differential privacy: DP-FedAvg (McMahan et al. 2018,
 * "Learning Differentially Private Recurrent Language Models").
 *
 * Each round every eligible participant is selected independently with
 * probability q (Poisson sampling). Each update is clipped to L2 norm S and
 * the clipped updates are summed with equal weight; Gaussian noise of
 * standard deviation z·S is added to the sum, which is divided by a fixed
 * expected count m (never by the realised count, which would depend on who
 * took part).
 *
 * Two places for the noise:
 *
 * - central: the coordinator clips (whatever the client did) and adds the
 *   noise. The coordinator is trusted; the guarantee covers everything
 *   released from the models (to everyone but the operator). Every round
 *   releases a model, even one with no updates, so whether a model is
 *   released never depends on who took part. Accounting: the sampled
 *   Gaussian mechanism with q and z, one step per round.
 *
 * - distributed: each selected participant clips and adds N(0, z²S²/m)
 *   itself, so m contributions carry the full noise. Without secure
 *   aggregation the coordinator sees each noised update, and it knows whom
 *   it selected: sampling gives no amplification against it. What holds for
 *   every participant whatever the others do is its own noise: a Gaussian
 *   mechanism with noise multiplier z/√m per round it takes part in
 *   (q = 1). That is what is reported. It is weak on purpose: it is the
 *   truth until the updates are securely aggregated.
 *
 * Adaptive clipping (Andrew et al. 2021, "Differentially Private Learning
 * with Adaptive Clipping"), central mode only: each update contributes
 * b_i − γ, with b_i = 1 when its norm was within S and γ the target quantile
 * (centred, so that adding or removing one participant moves the sum by at
 * most s = max(γ, 1 − γ), ½ at the paper's γ = ½); the coordinator adds
 * N(0, σ_b²) to that sum, takes b̄ = γ + (sum + noise)/m clamped to [0, 1],
 * and moves S geometrically towards γ: S ← S·exp(−η(b̄ − γ)). The update
 * noise is raised so that both queries together spend what z alone would:
 * z_Δ = (z⁻² − (σ_b/s)⁻²)^(−1/2), i.e. (z⁻² − (2σ_b)⁻²)^(−1/2) at γ = ½.
 *
 * Why γ and not ½: only m, never the realised count n, may enter what is
 * released (n is private). Without noise, b̄ − γ = (n/m)(p̂ − γ) with p̂ the
 * fraction of received updates within S: S stands still exactly when p̂ = γ,
 * however many updates arrived. Centring on ½ gave b̄ − γ = (n/m)(p̂ − ½) +
 * ½ − γ: whenever n < m (dropouts, or a small Poisson draw) b̄ was pulled
 * towards ½, and for γ ≠ ½ S could drift the wrong way (γ = 0.9, 2 of m = 4
 * updates arrive, both within S: b̄ = 0.75 < γ and S grew). Using n/m·γ
 * instead of n/2 costs a larger sensitivity for γ ≠ ½, which z_Δ pays, so
 * privacy is unchanged.
 */

export type ClipPolicy =
  | { readonly kind: 'fixed'; readonly norm: number }
  | {
      readonly kind: 'adaptive';
      readonly initialNorm: number;
      /** γ, the fraction of updates that should fall within the bound (paper: 0.5). */
      readonly targetQuantile: number;
      /** η, the geometric step (paper: 0.2). */
      readonly learningRate: number;
      /** σ_b, std of the noise on the within-bound count (paper: m/20). */
      readonly countNoiseStd: number;
    };

export type NoisePlacement = 'central' | 'distributed';

export interface DpFedAvgOptions {
  readonly placement: NoisePlacement;
  /** z: noise std on the sum, in units of the clip norm. */
  readonly noiseMultiplier: number;
  readonly clip: ClipPolicy;
  /** q: the probability that an eligible participant is selected in a round. */
  readonly sampleRate: number;
  /** m: the expected number of updates per round, the fixed denominator of the average. */
  readonly expectedClients: number;
  readonly delta: number;
  /** Stop before a round would take ε above this. */
  readonly epsilonBudget?: number;
  /**
   * Which accountant turns the charged rounds into ε, for the report and the
   * budget: 'auto' (default: the smaller of the PLD and RDP upper bounds),
   * 'pld' or 'rdp'. The state keeps the rounds' history, so any of them can
   * be recomputed after a restart.
   */
  readonly accountant?: AccountantKind;
  readonly serverLearningRate?: number;
  /** The source of noise; the CSPRNG by default. Seed it only in tests. */
  readonly uniform?: UniformSource;
  /**
   * The source of client selection; the CSPRNG by default. Sampling amplifies
   * privacy only if nobody can predict who is selected: seed it only in tests.
   */
  readonly selectionUniform?: UniformSource;
  /**
   * Distributed placement under secure aggregation only: each participant adds
   * Skellam integer noise after quantising, over-provisioned so that the sum
   * keeps z with up to `toleratedDropouts` of expectedClients missing, and the
   * accountant charges the sum's noise (core/privacy/distributed-noise.ts).
   */
  readonly skellam?: SkellamOptions;
}

export interface SkellamOptions {
  /** γ: the secure sum's quantisation step (2c/R). */
  readonly step: number;
  /** d: values each participant rounds, the rotation's padded length (core/privacy/skellam-rotation.ts). */
  readonly dimension: number;
  readonly toleratedDropouts: number;
}

export interface DpFedAvgState {
  readonly clipNorm: number;
  readonly accountant: RdpAccountantState;
  readonly rounds: number;
}

/** Sensitivity of Σ(b_i − γ) to adding or removing one participant. */
function countSensitivity(targetQuantile: number): number {
  return Math.max(targetQuantile, 1 - targetQuantile);
}

/**
 * Warnings for the operator: adaptive clipping whose count noise takes so
 * much of the budget that the update noise rises to z_Δ ≥ 2z.
 */
export function dpFedAvgWarnings(options: DpFedAvgOptions): string[] {
  const { noiseMultiplier: z, clip } = options;
  if (clip.kind !== 'adaptive') return [];
  const scaledCountNoise = clip.countNoiseStd / countSensitivity(clip.targetQuantile);
  if (!(z < scaledCountNoise)) return []; // the constructor refuses these
  const updateNoiseMultiplier = 1 / Math.sqrt(z ** -2 - scaledCountNoise ** -2);
  if (updateNoiseMultiplier / z < 2) return [];
  return [
    `adaptive clipping spends most of the budget on the clipped count: the update noise multiplier rises from z = ${z} to z_Δ = ${updateNoiseMultiplier.toFixed(3)} (${(updateNoiseMultiplier / z).toFixed(2)}×); raise the count noise σ_b (now ${clip.countNoiseStd}) or expect noisier models`,
  ];
}

export class DpFedAvg implements Strategy {
  readonly name: string;
  private readonly sampler: GaussianSampler;
  private readonly selection: UniformSource;
  private accountant = new RdpAccountant();
  private clipNorm: number;
  private roundsCharged = 0;
  /** z_Δ: the noise multiplier of the update sum, after what adaptive clipping spends. */
  readonly updateNoiseMultiplier: number;
  /** The Skellam plan when distributed noise is Skellam in the secure sum. */
  readonly skellamPlan: DistributedNoisePlan | undefined;

  constructor(private readonly options: DpFedAvgOptions) {
    const { noiseMultiplier: z, sampleRate: q, expectedClients: m, clip, placement, delta } = options;
    if (!(z > 0) || !Number.isFinite(z)) throw new RangeError(`noise multiplier must be positive, got ${z}`);
    if (!(q > 0 && q <= 1)) throw new RangeError(`client sample rate must be in (0, 1], got ${q}`);
    if (!(m > 0)) throw new RangeError(`expected clients per round must be positive, got ${m}`);
    if (!(delta > 0 && delta < 1)) throw new RangeError(`delta must be in (0, 1), got ${delta}`);
    if (options.accountant !== undefined && !isAccountantKind(options.accountant))
      throw new RangeError(`accountant must be auto, pld or rdp, got ${String(options.accountant)}`);
    if (clip.kind === 'fixed') {
      if (!(clip.norm > 0)) throw new RangeError(`clip norm must be positive, got ${clip.norm}`);
      this.clipNorm = clip.norm;
      this.updateNoiseMultiplier = z;
    } else {
      if (placement !== 'central') {
        throw new RangeError(
          'adaptive clipping needs central noise: with distributed noise the coordinator would see each clipped-or-not bit',
        );
      }
      if (!(clip.initialNorm > 0)) throw new RangeError('the initial clip norm must be positive');
      if (!(clip.targetQuantile > 0 && clip.targetQuantile < 1)) throw new RangeError('the target quantile must be in (0, 1)');
      // σ_b in units of the count's sensitivity s = max(γ, 1 − γ).
      const scaledCountNoise = clip.countNoiseStd / countSensitivity(clip.targetQuantile);
      if (!(z < scaledCountNoise)) {
        throw new RangeError(
          `adaptive clipping needs z < 2σ_b at γ = ½, in general z < σ_b/max(γ, 1 − γ) (z = ${z}, σ_b = ${clip.countNoiseStd}, γ = ${clip.targetQuantile}): raise the count noise or lower z`,
        );
      }
      this.clipNorm = clip.initialNorm;
      this.updateNoiseMultiplier = 1 / Math.sqrt(z ** -2 - scaledCountNoise ** -2);
    }
    this.skellamPlan = undefined;
    if (options.skellam) {
      if (placement !== 'distributed' || clip.kind !== 'fixed')
        throw new RangeError('Skellam noise needs distributed placement with a fixed clip norm');
      if (options.accountant === 'pld')
        throw new RangeError('Skellam noise is known only by an RDP bound: account it with rdp or auto, not pld');
      this.skellamPlan = planDistributedNoise({ clipNorm: clip.norm, noiseMultiplier: z, expectedContributors: m, ...options.skellam });
    }
    this.sampler = new GaussianSampler(options.uniform);
    this.selection = options.selectionUniform ?? new SecureRandom();
    this.name = `dp-fedavg (${placement} noise, z=${z}, q=${q}, ${clip.kind} clipping)`;
  }

  /**
   * Participation is what client-level DP protects; participants are
   * Poisson-sampled here; the coordinator clips and noises centrally (each
   * update needed), or participants do and a secure sum may carry them.
   */
  get traits(): StrategyTraits {
    return {
      input: this.options.placement === 'distributed' ? 'sum' : 'individual',
      participation: 'private',
      selection: 'own',
      basis: 'any',
    };
  }

  /** Each participant is sampled with probability q and the sum divided by the fixed m: a count per round is not the operator's to change. */
  settingsChangeProblem(change: SettingsChange, current: RoundSettings): string | undefined {
    if (change.clientsPerRound === undefined || change.clientsPerRound === current.clientsPerRound) return undefined;
    return 'clientsPerRound cannot change under client-level DP: participants are sampled independently with --client-sample-rate, and the privacy accounting depends on that rate and on --expected-clients, not on a count';
  }

  /** Releases a model every round, updates or not: see the class comment. */
  get releasesEveryRound(): boolean {
    return this.options.placement === 'central';
  }

  /** Operator warnings about these settings (logged at start-up). */
  get warnings(): string[] {
    return dpFedAvgWarnings(this.options);
  }

  get currentClipNorm(): number {
    return this.clipNorm;
  }

  /** Poisson sampling from the CSPRNG: the engine's (seeded, predictable) generator is deliberately ignored. */
  select<T>(eligible: readonly T[], _count: number, _random: UniformSource): T[] {
    return eligible.filter(() => this.selection.next() < this.options.sampleRate);
  }

  configureFit(_round: number, base: FitConfig): FitConfig {
    const { placement, expectedClients } = this.options;
    const clientDp = { placement, ...this.stepOfRound() };
    if (this.skellamPlan)
      return {
        ...base,
        privacy: { clipNorm: this.clipNorm, noiseStd: 0, skellamVariance: this.skellamPlan.participantVariance },
        clientDp,
      };
    const noiseStd = placement === 'distributed' ? (this.updateNoiseMultiplier * this.clipNorm) / Math.sqrt(expectedClients) : 0;
    return { ...base, privacy: { clipNorm: this.clipNorm, noiseStd }, clientDp };
  }

  beginRound(context: RoundContext): RoundAggregator {
    return new DpRound(this, context, this.clipNorm);
  }

  /** Checked before each round: would one more round overspend the budget? */
  canStartRound(): { ok: true } | { ok: false; reason: string } {
    const budget = this.options.epsilonBudget;
    if (budget === undefined) return { ok: true };
    const { epsilon, accountant } = accountEpsilon(this.accountant, this.options.delta, this.convertingKind, this.stepOfRound());
    if (epsilon > budget) {
      return {
        ok: false,
        reason: `privacy budget reached: another round would spend ε = ${epsilon.toFixed(3)} > ${budget} (δ = ${this.options.delta}, ${accountant.toUpperCase()} accountant)`,
      };
    }
    return { ok: true };
  }

  privacy(): PrivacyReport {
    const { delta } = this.options;
    const accounted = accountEpsilon(this.accountant, delta, this.convertingKind);
    return {
      level: 'client',
      placement: this.options.placement,
      epsilon: accounted.epsilon,
      delta,
      accountant: accounted.accountant,
      accountantSetting: this.accountantKind,
      rdpEpsilon: accounted.rdp.epsilon,
      ...(accounted.pld ? { pldEpsilon: accounted.pld.epsilon, pldEpsilonLower: accounted.pld.epsilonLower } : {}),
      optimalOrder: accounted.rdp.optimalOrder,
      rounds: this.roundsCharged,
      // What the accountant is charged with, not the configured z (they differ for distributed noise).
      noiseMultiplier: this.stepOfRound().noiseMultiplier,
      sampleRate: this.stepOfRound().sampleRate,
      clipNorm: this.clipNorm,
      ...(this.skellamPlan ? { rdpOnly: true } : {}),
      conversion: 'improved',
      neighbouring: this.options.placement === 'central' || this.skellamPlan ? 'add-remove' : 'zero-out',
    };
  }

  saveState(): DpFedAvgState {
    return { clipNorm: this.clipNorm, accountant: this.accountant.toJSON(), rounds: this.roundsCharged };
  }

  /** Continues a run: the privacy spent before a restart stays spent. */
  loadState(state: unknown): void {
    const s = state as Partial<DpFedAvgState> | null;
    if (typeof s !== 'object' || s === null || typeof s.clipNorm !== 'number' || !(s.clipNorm > 0) || typeof s.rounds !== 'number') {
      throw new TypeError('not a DP-FedAvg state');
    }
    this.accountant = RdpAccountant.fromJSON(s.accountant);
    this.clipNorm = s.clipNorm;
    this.roundsCharged = s.rounds;
  }

  /** The accountant setting ('auto' unless the options say otherwise). */
  get accountantKind(): AccountantKind {
    return this.options.accountant ?? 'auto';
  }

  /** What converts the history: RDP alone under Skellam noise (its z_eff bounds only the RDP), else the setting. */
  private get convertingKind(): AccountantKind {
    return this.skellamPlan ? 'rdp' : this.accountantKind;
  }

  /** The mechanism one round runs, as the accountant sees it. */
  private stepOfRound(): { sampleRate: number; noiseMultiplier: number; rdpOnly?: true } {
    const { placement, noiseMultiplier, sampleRate, expectedClients } = this.options;
    if (placement === 'central') return { sampleRate, noiseMultiplier };
    // The coordinator knows who was selected: no amplification. Skellam: the sum's noise; else each participant's own share.
    // z_eff bounds the Skellam's RDP only: marked so that no PLD is read off it (core/privacy/epsilon.ts).
    if (this.skellamPlan) return { sampleRate: 1, noiseMultiplier: this.skellamPlan.effectiveNoiseMultiplier, rdpOnly: true };
    return { sampleRate: 1, noiseMultiplier: noiseMultiplier / Math.sqrt(expectedClients) };
  }

  /**
   * Charges one round. Called for every round, released or abandoned, even
   * one whose sampling selected nobody: central mode still releases a noised
   * model then, and charging an unreleased round only overcounts.
   */
  charge(): void {
    this.accountant.step(this.stepOfRound());
    this.roundsCharged++;
  }

  chargeUnrecordedRounds(rounds: number): void {
    for (let i = 0; i < rounds; i++) this.charge();
  }

  /**
   * Central noise on the sum of clipped updates, float-safe on a grid
   * (core/privacy/grid-noise.ts): std (1 + √d/G)·zC ≥ zC, so the accountant's
   * z holds for the grid's sensitivity.
   */
  noiseSum(sum: Float64Array, noiseMultiplier: number, clipNorm: number): void {
    noiseOnGrid(sum, clientLevelGrid(clipNorm, noiseMultiplier, sum.length, SUM_RANGE_IN_CLIPS), this.sampler);
  }

  /** Noise of std ≥ `std` on a value of the given sensitivity (the centred count), float-safe on a grid. */
  noiseScalar(value: number, std: number, sensitivity: number): number {
    const out = Float64Array.of(value);
    noiseOnGrid(out, clientLevelGrid(sensitivity, std / sensitivity, 1, SUM_RANGE_IN_CLIPS), this.sampler);
    return out[0]!;
  }

  /**
   * `within` of `received` updates had norms within S. Releases Σ(b_i − γ) +
   * N(0, σ_b²), sensitivity max(γ, 1 − γ) as z_Δ assumes; b̄ is clamped to
   * [0, 1] (post-processing) so one unlucky noise draw cannot move S by more
   * than a fraction can.
   */
  adaptClip(within: number, received: number): void {
    const clip = this.options.clip;
    if (clip.kind !== 'adaptive') return;
    const gamma = clip.targetQuantile;
    const noisyCentred = this.noiseScalar(within - gamma * received, clip.countNoiseStd, countSensitivity(gamma));
    const noisyFraction = Math.min(1, Math.max(0, gamma + noisyCentred / this.options.expectedClients));
    this.clipNorm *= Math.exp(-clip.learningRate * (noisyFraction - gamma));
  }

  get settings(): DpFedAvgOptions {
    return this.options;
  }
}

class DpRound implements RoundAggregator {
  private readonly accumulator: Float64Sum;
  private added = 0;
  private within = 0;
  private closed = false;
  private readonly scratch: Float32Array;

  constructor(
    private readonly strategy: DpFedAvg,
    private readonly context: RoundContext,
    private readonly clipNorm: number,
  ) {
    this.accumulator = floatKernels().float64Sum(context.globalWeights.length);
    this.scratch = new Float32Array(context.globalWeights.length);
    if (strategy.settings.placement === 'distributed') this.addSum = (sum, count) => this.addNoisedSum(sum, count);
  }

  private get sum(): Float64Array {
    return this.accumulator.values;
  }

  get count(): number {
    return this.added;
  }

  add(result: ClientResult): void {
    if (result.update.length !== this.sum.length)
      throw new RangeError(`update has ${result.update.length} values, the model has ${this.sum.length}`);
    let contribution = result.update;
    if (this.strategy.settings.placement === 'central') {
      // The coordinator's guarantee cannot rest on the client having clipped.
      this.scratch.set(result.update);
      const norm = clipToNorm(this.scratch, this.clipNorm);
      if (norm <= this.clipNorm) this.within++;
      contribution = this.scratch;
    }
    // After the clip, or the clip would undo it; w ≤ 1 keeps the contribution within S, the sensitivity the noise is for.
    this.accumulator.addScaled(contribution, contributionWeight(result));
    this.added++;
  }

  /**
   * Secure aggregation: the participants' noised sum; divided by the fixed m
   * like single updates. Distributed noise only: central DP clips each update
   * on the coordinator, so its rounds have no addSum.
   */
  readonly addSum?: (sum: Float64Array, count: number) => void;

  partial(): PartialAggregate {
    return { sum: this.sum.slice(), weight: this.added, count: this.added, withinClip: this.within };
  }

  /** Another node's clipped sum (central) or noised sum (distributed): the noise and the clip adaptation stay with finish(). */
  addPartial(partial: PartialAggregate): void {
    checkPartial(partial, this.sum.length);
    for (let i = 0; i < this.sum.length; i++) this.sum[i]! += partial.sum[i]!;
    this.added += partial.count;
    this.within += partial.withinClip;
  }

  private addNoisedSum(sum: Float64Array, count: number): void {
    if (sum.length !== this.sum.length) throw new RangeError(`sum has ${sum.length} values, the model has ${this.sum.length}`);
    for (let i = 0; i < this.sum.length; i++) this.sum[i]! += sum[i]!;
    this.added += count;
  }

  finish(): Float32Array {
    this.close();
    const { placement, expectedClients, serverLearningRate = 1 } = this.strategy.settings;
    if (placement === 'central') {
      this.strategy.noiseSum(this.sum, this.strategy.updateNoiseMultiplier, this.clipNorm);
      this.strategy.adaptClip(this.within, this.added);
    }
    const scale = serverLearningRate / expectedClients;
    const out = new Float32Array(this.sum.length);
    for (let i = 0; i < out.length; i++) out[i] = this.context.globalWeights[i]! + scale * this.sum[i]!;
    return out;
  }

  abandon(): void {
    this.close();
  }

  private close(): void {
    if (this.closed) throw new Error('a round aggregator is finished once');
    this.closed = true;
    this.strategy.charge();
  }
}
