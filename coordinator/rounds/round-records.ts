import type { FitConfig } from '../../core/protocol/messages.ts';
import type { RoundParticipantOutcome, RoundParticipantRecord, RoundRecord, UpdateNormStats } from '../../core/protocol/status.ts';
import type { RoundBasis } from './open-round.ts';

/** What a closed round's record says about its participants, besides its outcome and model. */
export type RoundDetails = Required<Pick<RoundRecord, 'participants' | 'rejectionReasons' | 'applied'>> & Pick<RoundRecord, 'updateNorms'>;

/**
 * The timeline, rejection codes and norm distribution of a closing round.
 * Secure rounds pass the decoded sum's contributors (empty if it aborted):
 * they, and only they, are `received`, at the time of their masked input.
 */
export function roundDetails(open: RoundBasis, finalAt: number, contributors?: readonly string[]): RoundDetails {
  const participants: RoundParticipantRecord[] = [];
  const contributed = contributors ? new Set(contributors) : undefined;
  for (const id of open.selected) {
    const s = open.settlements.get(id);
    let outcome: RoundParticipantOutcome = s?.outcome ?? 'dropped';
    let reason = s ? s.reason : 'no answer before the round closed';
    if (contributed?.has(id)) {
      outcome = 'received';
      reason = undefined;
    } else if (contributed && outcome === 'received') {
      outcome = 'dropped';
      reason =
        contributed.size === 0
          ? 'its masked input was never unmasked: the secure round aborted'
          : 'its masked input was not part of the decoded sum';
    }
    participants.push({
      id,
      outcome,
      durationMs: (s?.at ?? finalAt) - open.startedAt,
      ...(reason !== undefined ? { reason } : {}),
      ...(s?.norm !== undefined ? { updateNorm: s.norm } : {}),
    });
  }
  const norms = participants.flatMap((p) => (p.updateNorm === undefined ? [] : [p.updateNorm]));
  return {
    participants,
    rejectionReasons: { ...open.rejectionCodes },
    updateNorms: norms.length > 0 ? normStats(norms, open.fit) : undefined,
    applied: {
      clientsPerRound: open.clientsPerRound,
      epochs: open.fit.epochs,
      batchSize: open.fit.batchSize,
      learningRate: open.fit.learningRate,
      deadlineMs: open.deadlineMs,
    },
  };
}

/** A round's counts, from its timeline: the one record of how each selected participant's part ended. */
export function outcomeCounts(open: RoundBasis, details: RoundDetails) {
  const count = (o: RoundParticipantOutcome) => details.participants.filter((p) => p.outcome === o).length;
  return {
    round: open.round,
    selected: open.selected.size,
    received: count('received'),
    dropped: count('dropped'),
    rejected: count('rejected'),
    declined: count('declined'),
    bytesIn: open.bytesIn,
    bytesOut: open.bytesOut,
    startedAt: open.startedAt,
  };
}

/** Quantiles by linear interpolation between order statistics (type 7, as numpy's default). */
function quantile(sorted: readonly number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** Relative slack for "arrived at the clip norm": float32 rounding of a clipped update's norm. */
const CLIPPED_TOLERANCE = 1e-4;

function normStats(norms: readonly number[], fit: FitConfig): UpdateNormStats {
  const sorted = [...norms].sort((a, b) => a - b);
  const stats = {
    count: sorted.length,
    min: sorted[0]!,
    p25: quantile(sorted, 0.25),
    median: quantile(sorted, 0.5),
    p75: quantile(sorted, 0.75),
    max: sorted.at(-1)!,
  };
  // Participants clipped to S and added no noise: an update at norm S was clipped (one below it was not).
  const privacy = fit.privacy;
  if (privacy?.noiseStd !== 0) return stats;
  const clipped = sorted.filter((n) => n >= privacy.clipNorm * (1 - CLIPPED_TOLERANCE)).length;
  return { ...stats, clipNorm: privacy.clipNorm, clippedFraction: clipped / sorted.length };
}
