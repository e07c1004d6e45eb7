import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NewestRound } from '../../coordinator/cluster/newest-round.ts';

/** A member opens only rounds newer than every announcement and partial request it heard (coordinator/cluster/member-rounds.ts). */

test('a round at or below the newest heard (term, round) is not newer; a later round or term is', () => {
  const newest = new NewestRound();
  assert.equal(newest.isNewer(1, 1), true);
  newest.heard(2, 5);
  // The leader asked for round 5's partial: a late announcement of round 5, or of round 4, opens nothing.
  assert.equal(newest.isNewer(2, 5), false);
  assert.equal(newest.isNewer(2, 4), false);
  // An older term's round, even with a higher number, is a deposed leader's.
  assert.equal(newest.isNewer(1, 9), false);
  assert.equal(newest.isNewer(2, 6), true);
  assert.equal(newest.isNewer(3, 1), true);
  // Hearing an older round does not move it back.
  newest.heard(2, 3);
  assert.equal(newest.isNewer(2, 4), false);
  newest.heard(3, 1);
  assert.equal(newest.isNewer(2, 6), false);
});
