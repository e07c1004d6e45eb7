import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RemoteSettlement } from '../../coordinator/rounds/collection.ts';
import { remoteRecord, type RemoteRounds } from '../../coordinator/rounds/remote-rounds.ts';
import { EngineHarness } from '../helpers/engine-harness.ts';

/**
 * A cluster leader's remote participant whose node fails (a member stops
 * heartbeating, refuses the round, its partial is lost) is dropped from the
 * round, but the failure is the node's: it must not build the participant's
 * delivery record, which the quorum's "never delivered" rule and selection
 * weights read. One coordinator has no such failures.
 */
function memberNode(howRoundsOneAndTwoEnd: RemoteSettlement): RemoteRounds & { rounds: number } {
  const remote = remoteRecord('m-1', 10, 'm-1');
  const hook = {
    rounds: 0,
    candidates: () => [remote],
    deliveryKey: (id: string) => (id === remote.id ? remote.deliveryKey : undefined),
    opened: (open: Parameters<RemoteRounds['opened']>[0]) => {
      hook.rounds++;
      // Rounds 1 and 2 end for m-1 as given; in round 3 its node is healthy and m-1 is silent.
      if (hook.rounds <= 2) open.collection.remoteSettled?.(remote.id, howRoundsOneAndTwoEnd);
    },
    closing: async () => {},
  };
  return hook;
}

async function thirdRoundClosesEarly(howRoundsOneAndTwoEnd: RemoteSettlement): Promise<boolean> {
  const node = memberNode(howRoundsOneAndTwoEnd);
  const h = new EngineHarness({ minClients: 1, clientsPerRound: 2, minUpdates: 1, roundTimeoutMs: 5000 }, 4, undefined, node);
  const own = h.join();
  h.engine.start();
  for (const round of [1, 2, 3]) {
    await h.settle();
    assert.deepEqual(new Set(h.selectedIn(round)), new Set([own, 'm-1']), `round ${round} selected both`);
    assert.ok(h.engine.submitUpdate(own, h.update(round, [0.1, 0, 0, 0])).ok);
    await h.settle();
    if (round < 3) assert.equal(h.ends.length, round, `round ${round} closed once everyone settled`);
  }
  const record = h.engine.status().history[0]!.participants?.find((p) => p.id === 'm-1');
  assert.equal(record?.outcome, 'dropped', 'the round still records the drop');
  assert.equal(record?.reason, howRoundsOneAndTwoEnd.reason);
  return h.ends.length === 3;
}

test('a remote participant dropped because its node failed builds no miss: the quorum still waits for it', async () => {
  const early = await thirdRoundClosesEarly({
    outcome: 'dropped',
    reason: 'its node n-2 stopped answering (no heartbeat)',
    nodeFault: true,
  });
  assert.equal(early, false, 'two node failures are not two misses of the participant');
});

test('a remote participant that missed two rounds itself is a known non-deliverer: the quorum stops waiting for it', async () => {
  const early = await thirdRoundClosesEarly({ outcome: 'dropped', reason: 'disconnected' });
  assert.equal(early, true);
});
