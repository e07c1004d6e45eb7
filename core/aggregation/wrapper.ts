import type { FitConfig } from '../protocol/messages.ts';
import { sample, type UniformSource } from '../random/prng.ts';
import type { RoundSettings, SettingsChange } from '../protocol/status.ts';
import type { PrivacyReport, RoundAggregator, RoundContext, Strategy, StrategyTraits } from './strategy.ts';

/**
 * `action`, run at most once: a round wrapper's record of its round (the
 * reference windows of claim-cap.ts and outlier-bound.ts) is made when the
 * round is sent as a partial or finished, and a cluster's leader may do both.
 */
export function onceOnly(action: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    action();
  };
}

/**
 * A strategy that adds one thing to another (a norm bound, a server
 * optimizer, a proximal term) and hands everything else to it unchanged:
 * its traits, its participant selection (DP-FedAvg's Poisson sampling), its
 * settings rules, its round permission (a privacy budget), its privacy
 * report and whether it must release every round. Subclasses override what
 * they change.
 */
export abstract class StrategyWrapper implements Strategy {
  abstract readonly name: string;
  /** Present only when the wrapped strategy accounts for privacy, so the engine's `privacy?.()` still sees undefined otherwise. */
  readonly privacy?: () => PrivacyReport;
  /** Present only when the wrapped strategy has state to checkpoint (a subclass with its own state sets both). */
  saveState?: () => unknown;
  loadState?: (state: unknown) => void;
  readonly chargeUnrecordedRounds?: (rounds: number) => void;

  constructor(readonly inner: Strategy) {
    const report = inner.privacy;
    if (report) this.privacy = () => report.call(inner);
    const charge = inner.chargeUnrecordedRounds;
    if (charge) this.chargeUnrecordedRounds = (rounds) => charge.call(inner, rounds);
    const save = inner.saveState;
    const load = inner.loadState;
    if (save && load) {
      this.saveState = () => save.call(inner);
      this.loadState = (state) => load.call(inner, state);
    }
  }

  get traits(): StrategyTraits {
    return this.inner.traits;
  }

  settingsChangeProblem(change: SettingsChange, current: RoundSettings): string | undefined {
    return this.inner.settingsChangeProblem?.(change, current);
  }

  configureFit(round: number, base: FitConfig): FitConfig {
    return this.inner.configureFit(round, base);
  }

  beginRound(context: RoundContext): RoundAggregator {
    return this.inner.beginRound(context);
  }

  /** The wrapped strategy's selection, or the engine's default (`count` uniformly at random). */
  select<T>(eligible: readonly T[], count: number, random: UniformSource): T[] {
    return this.inner.select ? this.inner.select(eligible, count, random) : sample(eligible, count, random);
  }

  canStartRound(): { ok: true } | { ok: false; reason: string } {
    return this.inner.canStartRound?.() ?? { ok: true };
  }

  get releasesEveryRound(): boolean {
    return this.inner.releasesEveryRound === true;
  }
}

/** The first strategy down a chain of wrappers that is a `type` (say the server optimizer whose state is checkpointed). */
export function findStrategy<T extends Strategy>(strategy: Strategy, type: abstract new (...args: never[]) => T): T | undefined {
  let s: Strategy | undefined = strategy;
  while (s) {
    if (s instanceof type) return s;
    s = s instanceof StrategyWrapper ? s.inner : undefined;
  }
  return undefined;
}
