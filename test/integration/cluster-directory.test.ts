import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clusterKeys } from '../../coordinator/cluster/keys.ts';
import { DIRECTORY_LIVE_MS, ParticipantDirectory } from '../../coordinator/cluster/participant-directory.ts';
import { nodeSeen } from '../support/cluster-fixture.ts';
import { useTestRedis } from '../support/redis.ts';

/** The participant directory on a real Redis: the leader sees other live nodes' participants, never a dead node's nor its own twice. */

const keys = clusterKeys('directory-test');
const db = useTestRedis();

const entry = (id: string, numExamples: number) => ({ id, numExamples, deliveryKey: `key-${id}` });

test('the leader reads the live nodes participants with their node; a dead node and a participant that left are not candidates', async () => {
  const leader = new ParticipantDirectory(db.client, keys, 'a');
  const b = new ParticipantDirectory(db.client, keys, 'b');
  const c = new ParticipantDirectory(db.client, keys, 'c');
  await leader.publish([entry('a1', 5)]);
  await b.publish([entry('b1', 10), entry('b2', 20)]);
  await c.publish([entry('c1', 30)]);
  // b2 leaves: b's directory is rewritten whole.
  await b.publish([entry('b1', 10)]);
  const nodes = [nodeSeen('a', 0), nodeSeen('b', 900), nodeSeen('c', DIRECTORY_LIVE_MS + 1)];
  assert.deepEqual(await leader.remoteCandidates(nodes), [{ ...entry('b1', 10), node: 'b' }]);
  // c's heartbeat is fresh again: its participants are candidates again.
  const sorted = (await leader.remoteCandidates([nodeSeen('b', 0), nodeSeen('c', 0)])).sort((x, y) => x.id.localeCompare(y.id));
  assert.deepEqual(sorted, [
    { ...entry('b1', 10), node: 'b' },
    { ...entry('c1', 30), node: 'c' },
  ]);
  await b.publish([]);
  await c.leave();
  assert.deepEqual(await leader.remoteCandidates([nodeSeen('b', 0), nodeSeen('c', 0)]), []);
});
