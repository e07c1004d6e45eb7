import type { PrivacyReport } from '../../core/aggregation/strategy.ts';

/** Which accountant gave ε, and both bounds where both were computed (docs/privacy-accounting.md). */
export function accountantText(privacy: PrivacyReport): string {
  const which = (privacy.accountant ?? 'rdp').toUpperCase();
  const setting = privacy.accountantSetting === 'auto' ? ' (auto: the smaller bound)' : '';
  const both = [
    privacy.pldEpsilon !== undefined ? `PLD ${privacy.pldEpsilon.toFixed(3)}` : undefined,
    privacy.rdpEpsilon !== undefined ? `RDP ${privacy.rdpEpsilon.toFixed(3)}` : undefined,
  ].filter((x) => x !== undefined);
  return `ε by the ${which} accountant${setting}${both.length === 2 ? `: ${both.join(', ')}` : ''}`;
}

/** Which noise ε charges and the neighbour relation it holds for (docs/privacy-mechanisms.md). */
export function noiseText(privacy: PrivacyReport): string {
  if (privacy.placement !== 'distributed') return `${privacy.placement} noise (add/remove one participant)`;
  return privacy.neighbouring === 'add-remove'
    ? "distributed Skellam noise in the secure sum, accounted as the sum's noise (add/remove one participant)"
    : "distributed Gaussian shares, each participant's accounted alone (zero-out: its clipped update replaced by zero)";
}
