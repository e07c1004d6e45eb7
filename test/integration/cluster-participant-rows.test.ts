import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FederationStatus, ParticipantStatus } from '../../core/protocol/status.ts';
import { clusterKeys } from '../../coordinator/cluster/keys.ts';
import { DIRECTORY_LIVE_MS } from '../../coordinator/cluster/participant-directory.ts';
import { ClusterParticipantRows, type NodeParticipantRows } from '../../coordinator/cluster/participant-rows.ts';
import { STATUS_PARTICIPANTS_LISTED } from '../../coordinator/rounds/status-view.ts';
import { nodeSeen } from '../support/cluster-fixture.ts';
import { useTestRedis } from '../support/redis.ts';

/** The merged participant list on a real Redis: the dashboard's bound over all nodes, totals summed, a stale node left out, writes only on change. */

const keys = clusterKeys('participant-rows-test');
const db = useTestRedis();

const row = (id: string, connected: boolean, nodeId: string): ParticipantStatus => ({
  id,
  connected,
  backend: 'test',
  numExamples: 1,
  state: 'idle',
  roundsContributed: 0,
  node: nodeId,
});
const published = (nodeId: string, connected: number, disconnected: number): NodeParticipantRows => ({
  participants: [
    ...Array.from({ length: connected }, (_, i) => row(`${nodeId}-c${i}`, true, nodeId)),
    ...Array.from({ length: disconnected }, (_, i) => row(`${nodeId}-d${i}`, false, nodeId)),
  ],
  known: connected + disconnected,
  connected,
  departedContributors: 1,
});
/** Node a's own dashboard status: no participant of its own. */
const ownStatus = {
  participants: [],
  participantTotals: { known: 0, connected: 0, listed: 0, departedContributors: 0 },
  history: [],
} as unknown as FederationStatus;

test("the merged list keeps the dashboard's bound, connected first, sums the totals and leaves a stale node out", async () => {
  const [a, b, c] = ['a', 'b', 'c'].map((id) => new ClusterParticipantRows(db.client, keys, id)) as [
    ClusterParticipantRows,
    ClusterParticipantRows,
    ClusterParticipantRows,
  ];
  const empty = published('a', 0, 0);
  await b.sync(published('b', 120, 30), []);
  await c.sync(published('c', 120, 30), []);
  const live = [nodeSeen('a', 0), nodeSeen('b', 500), nodeSeen('c', 500)];
  assert.equal(await a.sync(empty, live), true);
  const merged = a.merge(ownStatus, live);
  assert.equal(merged.participants.length, STATUS_PARTICIPANTS_LISTED);
  assert.ok(merged.participants.every((p) => p.connected));
  assert.deepEqual(merged.participantTotals, { known: 300, connected: 240, listed: STATUS_PARTICIPANTS_LISTED, departedContributors: 2 });
  // Nothing changed: the next sync reports no change (dashboards are not pushed again).
  assert.equal(await a.sync(empty, live), false);
  // c's heartbeat goes stale: its rows are left out at once, before any read.
  const cStale = [nodeSeen('a', 0), nodeSeen('b', 500), nodeSeen('c', DIRECTORY_LIVE_MS + 1)];
  const withoutC = a.merge(ownStatus, cStale);
  assert.ok(withoutC.participants.every((p) => p.node === 'b'));
  assert.equal(withoutC.participants.length, 150);
  assert.deepEqual(withoutC.participantTotals, { known: 150, connected: 120, listed: 150, departedContributors: 1 });
  // b leaves cleanly: its key goes, and a's next read lists nobody.
  await b.leave();
  assert.equal(await a.sync(empty, cStale), true);
  assert.deepEqual(a.merge(ownStatus, cStale).participants, []);
  // Each node's key expires by itself (a node that dies without a word).
  assert.ok((await db.client.pttl(keys.participantRows('c'))) > 0);
});

test('rows whose key expired while unchanged are written again on the next sync', async () => {
  const rows = new ClusterParticipantRows(db.client, keys, 'e');
  const own = published('e', 1, 0);
  const key = keys.participantRows('e');
  await rows.sync(own, []);
  assert.equal(await db.client.exists(key), 1);
  // The key's TTL ran out (a long pause): the rows are unchanged, so the next sync only refreshes the TTL and finds nothing.
  await db.client.del(key);
  await rows.sync(own, []);
  await rows.sync(own, []);
  assert.deepEqual(JSON.parse((await db.client.get(key))!), own);
});
