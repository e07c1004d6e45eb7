/**
 * Which accountant turns a recorded history of sampled-Gaussian steps into
 * ε. Both accountants give upper bounds on the true ε of the same history,
 * so the smaller of the two is also one: 'auto' (the default) reports it,
 * which is PLD wherever PLD is tighter. Both values are always returned, for
 * display.
 *
 * Pure math: no tfjs, no DOM, no Node APIs.
 */

import { RdpAccountant, type RdpAccountantState, type SampledGaussianSteps } from './accountant.ts';
import { pldEpsilon, type PldEpsilon, type PldMechanism, type PldOptions } from './pld.ts';

export type AccountantKind = 'auto' | 'pld' | 'rdp';

export const ACCOUNTANT_KINDS: readonly AccountantKind[] = ['auto', 'pld', 'rdp'];

export function isAccountantKind(value: unknown): value is AccountantKind {
  return typeof value === 'string' && (ACCOUNTANT_KINDS as readonly string[]).includes(value);
}

export interface AccountedEpsilon {
  /** The ε to charge and show. */
  readonly epsilon: number;
  /** Which accountant gave it. */
  readonly accountant: 'pld' | 'rdp';
  /** RDP (improved conversion) and its optimal order. */
  readonly rdp: { readonly epsilon: number; readonly optimalOrder: number };
  /** PLD, with its lower bound and discretisation; absent under 'rdp'. */
  readonly pld?: PldEpsilon;
}

/** The steps an accountant state has composed, for the PLD accountant. */
export function historyOf(state: RdpAccountantState): PldMechanism[] {
  return state.history.map((h) => ({ sampleRate: h.sampleRate, noiseMultiplier: h.noiseMultiplier, steps: h.steps }));
}

/**
 * ε of what `accountant` has recorded (plus `next`, when given, without
 * recording it) at δ, by the chosen accountant. A history with a step marked
 * rdpOnly is always converted by RDP (and says so in `accountant`).
 */
export function accountEpsilon(
  accountant: RdpAccountant,
  delta: number,
  kind: AccountantKind = 'auto',
  next?: SampledGaussianSteps,
  pldOptions: PldOptions = {},
): AccountedEpsilon {
  const rdp = next ? accountant.projectEpsilon(next, delta) : accountant.getEpsilonAndOrder(delta);
  // A step known only by an RDP bound (Skellam) has no Gaussian PLD: the whole history is RDP's, whatever was asked.
  if (kind === 'rdp' || next?.rdpOnly === true || accountant.toJSON().history.some((h) => h.rdpOnly === true))
    return { epsilon: rdp.epsilon, accountant: 'rdp', rdp };
  const history = historyOf(accountant.toJSON());
  if (next) history.push({ sampleRate: next.sampleRate, noiseMultiplier: next.noiseMultiplier, steps: next.steps ?? 1 });
  const pld = pldEpsilon(history, delta, pldOptions);
  if (kind === 'pld' || pld.epsilon <= rdp.epsilon) return { epsilon: pld.epsilon, accountant: 'pld', rdp, pld };
  return { epsilon: rdp.epsilon, accountant: 'rdp', rdp, pld };
}

/** The same for a bare history (the CLI): builds the RDP curve from it. */
export function accountHistory(
  history: readonly PldMechanism[],
  delta: number,
  kind: AccountantKind = 'auto',
  orders?: readonly number[],
): AccountedEpsilon {
  const accountant = new RdpAccountant(orders);
  for (const h of history) accountant.step(h);
  return accountEpsilon(accountant, delta, kind);
}

export interface PldNoiseSearch {
  readonly sampleRate: number;
  readonly steps: number;
  readonly delta: number;
  readonly targetEpsilon: number;
  /** A σ known to reach the target, e.g. RDP's answer (PLD never needs more where it is tighter). */
  readonly start: number;
  /** Relative width of the final bracket; default 1e-4 (each try is one PLD composition). */
  readonly relativeTolerance?: number;
  readonly pldOptions?: PldOptions;
}

/**
 * The smallest noise multiplier (to the tolerance) whose PLD ε is at most the
 * target; the upper end of the final bracket is returned, so its ε never
 * exceeds the target.
 */
export function findNoiseMultiplierPld(search: PldNoiseSearch): number {
  const { sampleRate, steps, delta, targetEpsilon, start } = search;
  const tolerance = search.relativeTolerance ?? 1e-4;
  if (!(start > 0) || !Number.isFinite(start)) throw new RangeError(`the starting noise multiplier must be positive, got ${start}`);
  const epsilonAt = (sigma: number): number =>
    pldEpsilon([{ sampleRate, noiseMultiplier: sigma, steps }], delta, search.pldOptions).epsilon;
  let hi = start;
  while (epsilonAt(hi) > targetEpsilon) {
    hi *= 2;
    if (hi > 1e6) throw new RangeError(`no noise multiplier up to 1e6 reaches epsilon ${targetEpsilon}`);
  }
  let lo = hi / 2;
  while (lo > 1e-3 && epsilonAt(lo) <= targetEpsilon) {
    hi = lo;
    lo /= 2;
  }
  while (hi - lo > tolerance * hi) {
    const mid = (lo + hi) / 2;
    if (epsilonAt(mid) > targetEpsilon) lo = mid;
    else hi = mid;
  }
  return hi;
}
