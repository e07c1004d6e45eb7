import { ClaimCappedStrategy, DEFAULT_CLAIM_CAP_MULTIPLE } from '../core/aggregation/claim-cap.ts';
import { DEFAULT_OUTLIER_BOUND, OutlierBoundedStrategy } from '../core/aggregation/outlier-bound.ts';
import type { Strategy } from '../core/aggregation/strategy.ts';
import type { CoordinatorConfig } from './coordinator-config.ts';
import type { PoisoningConfig } from './options/strategy.ts';

/** What a configuration without the poisoning flags gets (docs/poisoning.md says why). */
export const DEFAULT_POISONING: PoisoningConfig = {
  outlierNormMultiple: DEFAULT_OUTLIER_BOUND.multiple,
  claimCapMultiple: DEFAULT_CLAIM_CAP_MULTIPLE,
};

/**
 * The poisoning defences around a strategy (docs/poisoning.md): the claimed
 * example count capped, and outlier updates refused. Only where the
 * coordinator sees each update: under client-level DP and secure aggregation
 * the clipping bounds every update, and the secure sum is range-checked.
 */
export function withPoisoningDefences(
  strategy: Strategy,
  config: Pick<CoordinatorConfig, 'clientDp' | 'poisoning' | 'settings'>,
): Strategy {
  if (config.clientDp || config.settings.secureAggregation) return strategy;
  const { outlierNormMultiple, claimCapMultiple, maxClaimedExamples } = config.poisoning ?? DEFAULT_POISONING;
  let guarded = strategy;
  if (claimCapMultiple > 0 || maxClaimedExamples !== undefined) {
    guarded = new ClaimCappedStrategy(guarded, {
      multiple: claimCapMultiple > 0 ? claimCapMultiple : undefined,
      maxPerParticipant: maxClaimedExamples,
    });
  }
  if (outlierNormMultiple > 0) guarded = new OutlierBoundedStrategy(guarded, { ...DEFAULT_OUTLIER_BOUND, multiple: outlierNormMultiple });
  return guarded;
}
