import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { FederationStatus } from '../../core/protocol/status.ts';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { startCoordinator, type Coordinator } from '../../coordinator/server.ts';
import { io as connectSocket } from 'socket.io-client';
import { TestRedis } from '../support/redis.ts';
import { until } from '../helpers/until.ts';

/** Two coordinators started with --redis on one Redis: one federation's cluster, seen from either node's /api/status. */

let redis: TestRedis;
let dataDir: string;
const coordinators: Coordinator[] = [];

before(async () => {
  redis = await TestRedis.start();
  dataDir = await mkdtemp(path.join(tmpdir(), 'fl-cluster-'));
});
after(async () => {
  for (const c of coordinators) await c.close();
  await redis.cleanup();
  await rm(dataDir, { recursive: true, force: true });
});

async function status(url: string): Promise<FederationStatus> {
  const response = await fetch(`${url}/api/status`);
  assert.equal(response.status, 200);
  return (await response.json()) as FederationStatus;
}

test('every node answers /api/status with the whole cluster: itself, the one leader and both nodes with their addresses', async () => {
  for (const node of ['a', 'b']) {
    const config = parseConfig(
      ['--port', '0', '--host', '127.0.0.1', '--quiet', '--data-dir', path.join(dataDir, node), '--redis', redis.url, '--rounds', '1'],
      {},
    ) as CoordinatorConfig;
    coordinators.push(await startCoordinator(config));
  }
  const both = (s: FederationStatus) => s.cluster?.nodes.length === 2 && s.cluster.leader !== undefined;
  const [a, b] = [
    await until(() => status(coordinators[0]!.url), both, 10_000, 'node a to list both nodes'),
    await until(() => status(coordinators[1]!.url), both, 10_000, 'node b to list both nodes'),
  ];
  assert.notEqual(a.cluster!.self, b.cluster!.self);
  assert.equal(a.cluster!.leader, b.cluster!.leader);
  assert.equal(a.cluster!.redis, 'connected');
  assert.equal(a.cluster!.paused, undefined);
  assert.deepEqual(a.cluster!.nodes.map((n) => n.address).sort(), coordinators.map((c) => c.url).sort());
  // Each node counts the bytes its own port moved (the status requests above at least), reported with its next heartbeat.
  const selfEntry = (s: FederationStatus) => s.cluster?.nodes.find((n) => n.id === s.cluster?.self);
  await until(
    () => status(coordinators[0]!.url),
    (s) => (selfEntry(s)?.bytesIn ?? 0) > 0 && (selfEntry(s)?.bytesOut ?? 0) > 0,
    5_000,
    'node a to report its traffic',
  );
  // Only the leader drives rounds: the follower's engine was never started.
  const leaderIndex = a.cluster!.leader === a.cluster!.self ? 0 : 1;
  // The load balancer's health check: 200 on the leader only.
  const leaderCheck = await fetch(`${coordinators[leaderIndex]!.url}/api/cluster/leader`);
  assert.equal(leaderCheck.status, 200);
  assert.deepEqual(await leaderCheck.json(), { self: a.cluster!.leader, leader: a.cluster!.leader });
  const followerCheck = await fetch(`${coordinators[1 - leaderIndex]!.url}/api/cluster/leader`);
  assert.equal(followerCheck.status, 503);
  assert.equal(((await followerCheck.json()) as { leader: string }).leader, a.cluster!.leader);
  assert.equal(coordinators[1 - leaderIndex]!.engine.control, 'awaiting-start');
  assert.notEqual(coordinators[leaderIndex]!.engine.control, 'awaiting-start');
});

test("a node's dashboards get that node's status pushes only: none crosses the Redis adapter to another node's", async () => {
  const ids = await Promise.all(coordinators.map(async (c) => (await status(c.url)).cluster!.self));
  // Each node pushes its status after every heartbeat (once a second), so both push while the dashboard listens.
  const dashboard = connectSocket(`${coordinators[1]!.url}/admin`, { transports: ['websocket'], forceNew: true });
  const pushedBy: string[] = [];
  dashboard.on('status', (pushed: FederationStatus) => pushedBy.push(pushed.cluster?.self ?? 'no cluster'));
  try {
    await until(
      () => pushedBy.length,
      (n) => n >= 4,
      10_000,
      'four status pushes to the dashboard',
    );
  } finally {
    dashboard.close();
  }
  assert.deepEqual(new Set(pushedBy), new Set([ids[1]]), `pushes came from ${pushedBy.join(', ')}`);
});

test('while Redis is unreachable every node keeps serving and says plainly that the federation is paused; it clears when Redis returns', async () => {
  await redis.stop();
  const paused = await until(
    () => status(coordinators[0]!.url),
    (s) => s.cluster?.redis === 'unreachable',
    10_000,
    'the node to notice Redis is gone',
  );
  assert.match(paused.cluster!.paused ?? '', /^the federation is paused: Redis is unreachable/);
  await redis.restart();
  const back = await until(
    () => status(coordinators[0]!.url),
    (s) => s.cluster?.redis === 'connected' && s.cluster.leader !== undefined && s.cluster.nodes.length === 2,
    15_000,
    'the cluster to come back',
  );
  assert.equal(back.cluster!.paused, undefined);
});

test('a coordinator without --redis has no cluster field', async () => {
  const config = parseConfig(
    ['--port', '0', '--host', '127.0.0.1', '--quiet', '--data-dir', path.join(dataDir, 'single')],
    {},
  ) as CoordinatorConfig;
  const single = await startCoordinator(config);
  try {
    assert.equal((await status(single.url)).cluster, undefined);
    assert.equal((await fetch(`${single.url}/api/cluster/leader`)).status, 404);
  } finally {
    await single.close();
  }
});
