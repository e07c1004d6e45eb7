import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RoundRecord } from '../../core/protocol/status.ts';
import { stalenessHistogram, updatesPerMinute } from '../../web/dashboard/async-panel.ts';
import { roundRecord } from '../helpers/round-record.ts';

function version(round: number, startedAt: number, durationMs: number, counts: number[]): RoundRecord {
  return roundRecord(round, { startedAt, durationMs, bytesIn: 0, bytesOut: 0, staleness: { max: counts.length - 1, mean: 0, counts } });
}

describe('dashboard async panel figures', () => {
  it('sums the staleness histograms of all versions', () => {
    assert.deepEqual(stalenessHistogram([version(1, 0, 1, [2]), version(2, 1, 1, [0, 1, 0, 1]), version(3, 2, 1, [1, 1])]), [3, 2, 0, 1]);
    assert.deepEqual(stalenessHistogram([]), []);
  });

  it('gives buffered updates per minute over the recent versions', () => {
    assert.equal(updatesPerMinute([version(1, 0, 10_000, [2])]), undefined);
    // 4 updates from t = 0 to t = 30 s: 8 per minute.
    assert.equal(updatesPerMinute([version(1, 0, 10_000, [2]), version(2, 10_000, 20_000, [1, 1])]), 8);
  });
});
