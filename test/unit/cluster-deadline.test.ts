import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RoundAnnouncement } from '../../coordinator/cluster/cluster-events.ts';
import { heardRound } from '../../coordinator/cluster/round-announce.ts';

/** A node's clock, `skewMs` off the leader's. */
const clockAt = (leaderNow: number, skewMs: number) => leaderNow + skewMs;

const announcement = (remainingMs: number): RoundAnnouncement => ({
  term: 3,
  round: 7,
  modelVersion: 6,
  config: { epochs: 1, batchSize: 16, learningRate: 0.1 },
  remainingMs,
  selected: { b: ['b1'] },
});

test("a member keeps the leader's round deadline on its own clock: the time left is the same whatever the skew", () => {
  const leaderNow = 1_765_000_000_000;
  const leaderDeadline = leaderNow + 30_000;
  const transitMs = 4;
  for (const skewMs of [-86_400_000, -3_600_000, -1_000, 0, 250, 3_600_000]) {
    // What the leader sends: the time left on its clock, not its wall-clock deadline.
    const sent = announcement(leaderDeadline - leaderNow);
    const heardAt = clockAt(leaderNow + transitMs, skewMs);
    const heard = heardRound(sent, heardAt);
    // The member's deadline is the leader's, moved onto the member's clock (and later by the transit time only).
    assert.equal(heard.deadline - heardAt, 30_000, `skew ${skewMs} ms`);
    assert.equal(heard.deadline, clockAt(leaderDeadline, skewMs) + transitMs, `skew ${skewMs} ms`);
    assert.equal(heard.round, 7);
  }
});

test('a round whose time ran out on the way (remainingMs not positive) ends at once on the member', () => {
  assert.equal(heardRound(announcement(-500), 1_000).deadline, 1_000);
  assert.equal(heardRound(announcement(0), 1_000).deadline, 1_000);
});
