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
