import type { PrivacyReport } from '../aggregation/strategy.ts';
import type { ClientDpAnnouncement } from '../protocol/messages.ts';
import type { PrivacyLedger } from './ledger.ts';

/**
 * A participant's own ledger of client-level DP: it charges, from the (q, z)
 * the coordinator announces with each round, every round that may have used
 * its update, and refuses to contribute once its budget would be passed,
 * whatever the coordinator's disk says. Under central noise that is every
 * round released while it was in the population (Poisson sampling amplifies
 * only if it charges the rounds it was not selected in too); under distributed
 * noise only the rounds its update went into. Once it refuses, its data is in
 * no later release, so nothing more is charged.
 */

/** The announcement of a round from the report of the accountant that charged it; none outside client-level DP. */
export function clientDpAnnouncement(report: PrivacyReport | undefined): ClientDpAnnouncement | undefined {
  if (report?.level !== 'client') return undefined;
  return {
    placement: report.placement,
    sampleRate: report.sampleRate,
    noiseMultiplier: report.noiseMultiplier,
    ...(report.rdpOnly ? { rdpOnly: true } : {}),
  };
}

export type ClientCharge =
  | { readonly kind: 'charged'; readonly epsilon: number }
  | { readonly kind: 'not-charged' }
  /** The budget would be passed: the participant must not contribute to this or any later round. */
  | { readonly kind: 'refused'; readonly epsilon: number; readonly projectedEpsilon: number };

export class ClientLevelLedger {
  /** Rounds charged at their start and not yet ended (so their round:end does not charge them again). */
  private readonly chargedAtStart = new Set<number>();
  private spent = false;

  constructor(readonly ledger: PrivacyLedger) {}

  /** True once the participant refused: it contributes to nothing more. */
  get exhausted(): boolean {
    return this.spent;
  }

  /**
   * A round that selected this participant, before it trains: charges the
   * round now (before its update can leave), or refuses it.
   */
  async admit(round: number, announced: ClientDpAnnouncement): Promise<ClientCharge> {
    if (this.spent) return { kind: 'refused', epsilon: this.ledger.epsilon, projectedEpsilon: this.ledger.epsilon };
    const charge = await this.charge(announced);
    if (charge.kind === 'charged') this.chargedAtStart.add(round);
    return charge;
  }

  /**
   * Any round's end while this participant is connected. Under central noise a
   * released round is charged whether or not this participant was selected
   * (once: not again if it was charged at its start).
   */
  async roundEnded(round: number, announced: ClientDpAnnouncement | undefined): Promise<ClientCharge> {
    const chargedAlready = this.chargedAtStart.delete(round);
    if (announced?.placement !== 'central' || chargedAlready || this.spent) return { kind: 'not-charged' };
    return this.charge(announced, true);
  }

  /** A dropped connection: rounds charged at their start may be run again under the same number. */
  disconnected(): void {
    this.chargedAtStart.clear();
  }

  private async charge(announced: ClientDpAnnouncement, alreadyReleased = false): Promise<ClientCharge> {
    const steps = {
      sampleRate: announced.sampleRate,
      noiseMultiplier: announced.noiseMultiplier,
      steps: 1,
      rdpOnly: announced.rdpOnly === true,
    };
    const result = await this.ledger.charge(steps, { alreadyReleased });
    if (!result.charged) {
      this.spent = true;
      return { kind: 'refused', epsilon: result.epsilon, projectedEpsilon: result.projectedEpsilon };
    }
    // Refuse the next round already if it would pass the budget: from then on this participant's data is in no release.
    // (`exhausted` then tells the caller; this round itself was within the budget.)
    if (!this.ledger.check(steps).allowed) this.spent = true;
    return { kind: 'charged', epsilon: result.epsilon };
  }
}
