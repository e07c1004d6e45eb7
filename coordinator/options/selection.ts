import type { RoundSettings } from '../../core/protocol/status.ts';

/**
 * Participants selected per round: --clients-per-round plus the over-selection
 * (--over-select F asks for F more, so dropouts still leave enough updates).
 * The one place this count is computed: selection, the secure-sum limit and
 * the settings rules all use it.
 */
export function selectedPerRound(settings: Pick<RoundSettings, 'clientsPerRound' | 'overSelect'>): number {
  return Math.ceil(settings.clientsPerRound * (1 + (settings.overSelect ?? 0)));
}
