import type { FederationStatus, RoundRecord } from '../../core/protocol/status.ts';

/** Participants listed one by one in the dashboard status; the rest are counted (participantTotals). */
export const STATUS_PARTICIPANTS_LISTED = 200;
/** Rounds whose per-participant timeline the dashboard status carries (the dashboard draws the last 5). */
export const STATUS_TIMELINE_ROUNDS = 10;

/**
 * What dashboards are pushed and `/api/status` returns: the whole status
 * with per-participant timelines only for the last STATUS_TIMELINE_ROUNDS
 * rounds (older rounds keep their counts), and at most
 * STATUS_PARTICIPANTS_LISTED participants listed, connected ones first. One
 * record per selected participant per round would otherwise grow the push
 * without bound.
 */
export function dashboardView(status: FederationStatus): FederationStatus {
  const firstKept = status.history.length - STATUS_TIMELINE_ROUNDS;
  const connected = status.participants.filter((p) => p.connected);
  const listed = connected.length >= STATUS_PARTICIPANTS_LISTED ? connected.slice(0, STATUS_PARTICIPANTS_LISTED) : connected.concat(status.participants.filter((p) => !p.connected).slice(0, STATUS_PARTICIPANTS_LISTED - connected.length));
  return {
    ...status,
    participants: listed,
    participantTotals: { ...status.participantTotals!, listed: listed.length },
    history: status.history.map((r, i) => (i >= firstKept ? r : withoutTimeline(r))),
  };
}

function withoutTimeline(record: RoundRecord): RoundRecord {
  if (record.participants === undefined) return record;
  const { participants: _dropped, ...rest } = record;
  return rest;
}
