import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RoundTrainer, RoundTrainResult } from '../../core/participant/trainers.ts';
import type { FederationStatus } from '../../core/protocol/status.ts';
import { clusterFixture } from '../support/cluster-fixture.ts';
import { until } from '../helpers/until.ts';

/**
 * The leader's delivery records of other nodes' participants (docs/cluster.md,
 * "Delivery records"): a participant on a member node that never delivers
 * builds the same record at the leader as one of the leader's own, so after
 * two misses the quorum stops waiting for it, exactly as on one coordinator.
 */

/** Sends a zero update at once. */
const prompt = (numExamples: number): RoundTrainer => ({
  numExamples,
  differentiallyPrivate: false,
  train: async (weights): Promise<RoundTrainResult> => ({
    update: new Float32Array(weights.length),
    metrics: { loss: 0, accuracy: 0 },
    numExamples,
    trainMs: 1,
  }),
});

/** Accepts every round and never answers: a device that never delivers. */
const silent = (numExamples: number): RoundTrainer => ({
  numExamples,
  differentiallyPrivate: false,
  train: () => new Promise<RoundTrainResult>(() => {}),
});

test("the leader records whether another node's participants delivered: after two misses the quorum stops waiting for one that never does", {
  timeout: 60_000,
}, async (t) => {
  const { start, attach } = await clusterFixture(t, 'cluster-records');
  const timeoutS = 4;
  const federation = ['--rounds', '3', '--min-clients', '2', '--clients-per-round', '2', '--round-timeout', String(timeoutS)];
  const leader = await start('leader', federation);
  await until(
    () => leader.engine.control as string,
    (c) => c !== 'awaiting-start',
    15_000,
    'the first node to lead',
  );
  const member = await start('member', federation);
  attach(leader.url, prompt(10));
  attach(member.url, silent(10));

  const status: FederationStatus = await leader.done;
  assert.equal(status.history.length, 3);
  const silentId = member.engine.status().participants[0]?.id;
  assert.ok(silentId !== undefined, 'the member holds its participant');
  const silentIn = (round: number) => status.history[round - 1]!.participants?.find((p) => p.id === silentId);
  // Rounds 1 and 2: the member's participant is selected, and the round waits out its deadline for it.
  for (const round of [1, 2]) {
    const record = status.history[round - 1]!;
    assert.equal(record.outcome, 'aggregated', record.reason);
    assert.equal(silentIn(round)?.outcome, 'dropped', `round ${round}`);
    assert.ok(record.durationMs >= timeoutS * 1000 - 100, `round ${round} waited for its deadline: ${record.durationMs} ms`);
  }
  // Round 3: its record shows two selections and no delivery, so the round closes as soon as the leader's own participant delivers.
  const third = status.history[2]!;
  assert.equal(third.outcome, 'aggregated', third.reason);
  assert.equal(silentIn(3)?.outcome, 'dropped');
  assert.match(silentIn(3)?.reason ?? '', /never delivered/);
  assert.ok(third.durationMs < (timeoutS * 1000) / 2, `round 3 did not wait for its deadline: ${third.durationMs} ms`);
});
