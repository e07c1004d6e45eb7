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
 * recording it) at δ, by the chosen accountant.
 */
export function accountEpsilon(
  accountant: RdpAccountant,
  delta: number,
  kind: AccountantKind = 'auto',
  next?: SampledGaussianSteps,
  pldOptions: PldOptions = {},
): AccountedEpsilon {
  const rdp = next ? accountant.projectEpsilon(next, delta) : accountant.getEpsilonAndOrder(delta);
  if (kind === 'rdp') return { epsilon: rdp.epsilon, accountant: 'rdp', rdp };
  const history = historyOf(accountant.toJSON());
  if (next) history.push({ sampleRate: next.sampleRate, noiseMultiplier: next.noiseMultiplier, steps: next.steps ?? 1 });
  const pld = pldEpsilon(history, delta, pldOptions);
  if (kind === 'pld' || pld.epsilon <= rdp.epsilon) return { epsilon: pld.epsilon, accountant: 'pld', rdp, pld };
  return { epsilon: rdp.epsilon, accountant: 'rdp', rdp, pld };
}

/** The same for a bare history (the CLI): builds the RDP curve from it. */
export function accountHistory(history: readonly PldMechanism[], delta: number, kind: AccountantKind = 'auto', orders?: readonly number[]): AccountedEpsilon {
  const accountant = new RdpAccountant(orders);
  for (const h of history) accountant.step(h);
  return accountEpsilon(accountant, delta, kind);
}
