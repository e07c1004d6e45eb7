import type { RoundRecord } from '../../core/protocol/status.ts';

/** An aggregated round's record with small fixed tallies (2 selected, 2 received), for tests that only need records to exist. */
export function roundRecord(round: number, over: Partial<RoundRecord> = {}): RoundRecord {
  return {
    round,
    outcome: 'aggregated',
    modelVersion: round,
    selected: 2,
    received: 2,
    dropped: 0,
    rejected: 0,
    declined: 0,
    bytesIn: 40,
    bytesOut: 40,
    startedAt: 1000 * round,
    durationMs: 10,
    ...over,
  };
}
