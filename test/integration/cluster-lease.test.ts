import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { ClusterNode } from '../../coordinator/cluster/cluster-node.ts';
import { FencedStore, FencedWriteRefused } from '../../coordinator/cluster/fenced-store.ts';
import { clusterKeys } from '../../coordinator/cluster/keys.ts';
import { LeaderLease, type LeaseRole } from '../../coordinator/cluster/lease.ts';
import { TestRedis } from '../support/redis.ts';

/** Leader election, failover and fencing against a real redis-server (test/support/redis.ts). */

const TTL_MS = 1_000;

/** Blocks this thread's event loop, as a long synchronous step does (Atomics.wait sleeps without spinning a core). */
function blockThisThread(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return Date.now() - started;
}

describe('cluster lease on a real Redis', () => {
  let redis: TestRedis;
  const clients: Redis[] = [];
  const client = () => {
    const c = new Redis(redis.url, { maxRetriesPerRequest: 1, commandTimeout: 1_000 });
    c.on('error', () => {});
    clients.push(c);
    return c;
  };

  before(async () => {
    redis = await TestRedis.start();
  });
  after(async () => {
    for (const c of clients) c.disconnect();
    await redis.cleanup();
  });

  test('three nodes elect exactly one leader; when it stops renewing another leads within the lease, in a new term, and the old one cannot write', async () => {
    const keys = clusterKeys('election');
    const leases = ['a', 'b', 'c'].map((nodeId) => new LeaderLease({ redisUrl: redis.url, keys, nodeId, ttlMs: TTL_MS }));
    for (const lease of leases) lease.start();
    await until(() => leases.some((l) => l.isLeader), 2_000, 'a leader');
    // Let several renewal periods pass: still exactly one, and the others know who.
    await new Promise((resolve) => setTimeout(resolve, TTL_MS));
    const leaders = leases.filter((l) => l.isLeader);
    assert.equal(leaders.length, 1);
    const first = leaders[0]!;
    const firstTerm = first.term!;
    const firstId = first.leader!;
    for (const lease of leases) assert.equal(lease.leader, firstId);
    const store = new FencedStore(client(), keys.term);
    await store.write(firstTerm, [{ kind: 'set', key: 'fl:election:state', value: 'written in the first term' }]);

    // The leader stalls: it stops renewing without giving the lease up (a SIGKILL or a long pause looks the same to Redis).
    await first.stop(false);
    const others = leases.filter((l) => l !== first);
    const failoverMs = await until(() => others.some((l) => l.isLeader), TTL_MS + 2_000, 'a new leader');
    assert.ok(failoverMs <= TTL_MS + 1_000, `failover took ${failoverMs} ms with a ${TTL_MS} ms lease`);
    const second = others.find((l) => l.isLeader)!;
    assert.ok(second.term! > firstTerm, 'a new term has a larger fencing token');

    // The deposed leader's write, with its old token, is refused whole; nothing of it lands.
    await assert.rejects(
      store.write(firstTerm, [
        { kind: 'set', key: 'fl:election:state', value: 'a deposed leader wrote this' },
        { kind: 'rpush', key: 'fl:election:history', value: Buffer.from([1, 2, 3]) },
      ]),
      (error: unknown) => error instanceof FencedWriteRefused && error.term === firstTerm,
    );
    const check = client();
    assert.equal(await check.get('fl:election:state'), 'written in the first term');
    assert.equal(await check.exists('fl:election:history'), 0);
    // The new leader writes binary values intact.
    const bytes = Buffer.from(new Float32Array([1.5, -2.25, 3e-8]).buffer);
    await store.write(second.term!, [{ kind: 'set', key: 'fl:election:model', value: bytes }]);
    assert.deepEqual(await check.getBuffer('fl:election:model'), bytes);
    for (const lease of others) await lease.stop(true);
  });

  test('a leader that cannot reach Redis steps down once its lease may have lapsed', async () => {
    const own = await TestRedis.start();
    try {
      const lease = new LeaderLease({ redisUrl: own.url, keys: clusterKeys('lapse'), nodeId: 'solo', ttlMs: TTL_MS });
      lease.start();
      await until(() => lease.isLeader, 2_000, 'the lease');
      await own.kill();
      const killedAt = Date.now();
      await until(() => !lease.isLeader, TTL_MS + 1_000, 'stepping down');
      assert.ok(Date.now() - killedAt <= TTL_MS + 100, 'it steps down no later than its lease lapses');
      await lease.stop(false);
    } finally {
      await own.cleanup();
    }
  });

  test('a leader that stepped down while Redis did not answer takes its own term back when Redis answers, and never says it leads meanwhile', async () => {
    const own = await TestRedis.start();
    try {
      const changes: string[] = [];
      const lease = new LeaderLease({
        redisUrl: own.url,
        keys: clusterKeys('outage'),
        nodeId: 'back',
        ttlMs: TTL_MS,
        onChange: (role) => changes.push(role.kind === 'leader' ? `leader ${role.term}` : 'follower'),
      });
      lease.start();
      await until(() => lease.isLeader, 2_000, 'the lease');
      const term = lease.term!;
      // Redis answers nothing for two leases: renewals and acquires time out (some still run once it answers again).
      const admin = new Redis(own.url);
      admin.on('error', () => {});
      await admin.client('PAUSE', 2 * TTL_MS, 'ALL');
      const claimsWhileFollowing: string[] = [];
      const sampler = setInterval(() => {
        if (!lease.isLeader && lease.leader === 'back') claimsWhileFollowing.push(`${Date.now()}`);
      }, 10);
      try {
        await until(() => !lease.isLeader, TTL_MS + 500, 'stepping down while Redis is paused');
        await until(() => lease.isLeader, 3 * TTL_MS, 'leading again once Redis answers');
      } finally {
        clearInterval(sampler);
        admin.disconnect();
      }
      assert.equal(lease.term, term, 'the same term: nobody else led, so nothing it wrote under that token is stale');
      assert.deepEqual(changes, [`leader ${term}`, 'follower', `leader ${term}`]);
      assert.deepEqual(claimsWhileFollowing, [], 'while it did not lead, it never named itself the leader');
      await lease.stop(true);
    } finally {
      await own.cleanup();
    }
  });

  test('a leader whose event loop is blocked for longer than its whole lease, but less than the liveness bound, keeps it', async () => {
    const keys = clusterKeys('busy');
    const changes: string[] = [];
    const lease = new LeaderLease({
      redisUrl: redis.url,
      keys,
      nodeId: 'busy',
      ttlMs: TTL_MS,
      livenessMs: 3 * TTL_MS,
      onChange: (role) => changes.push(role.kind),
    });
    lease.start();
    await until(() => lease.isLeader, 2_000, 'the lease');
    const term = lease.term;
    // 1.5 leases of synchronous work (decoding a thousand uploads on a loaded machine): no timer of this thread runs meanwhile.
    blockThisThread(1.5 * TTL_MS);
    assert.equal(lease.term, term, 'it still leads, in the same term, the moment its loop turns again');
    await new Promise((resolve) => setTimeout(resolve, TTL_MS / 2));
    assert.deepEqual(changes, ['leader'], 'it never stepped down');
    assert.equal(lease.term, term);
    // Redis agrees: the lease was renewed throughout, so no other node could take it.
    const other = client();
    assert.equal(await other.get(keys.lease), 'busy');
    assert.equal(await other.set(keys.lease, 'someone else', 'PX', TTL_MS, 'NX'), null);
    await lease.stop(true);
  });

  test('a wedged main thread loses its lease: past the liveness bound the renewer lets it lapse, and the thread never believes it still leads', async () => {
    const keys = clusterKeys('wedged');
    const lease = new LeaderLease({ redisUrl: redis.url, keys, nodeId: 'wedged', ttlMs: TTL_MS, livenessMs: TTL_MS });
    lease.start();
    await until(() => lease.isLeader, 2_000, 'the lease');
    // Another node, connected and ready to take the lease the moment it is free.
    const other = client();
    await other.ping();
    // Wedged past the liveness bound plus a whole lease: renewals stop after about a second, the lease lapses a second later.
    blockThisThread(3.5 * TTL_MS);
    assert.equal(lease.term, undefined, 'before any timer of this thread runs, it already knows it may no longer lead');
    assert.equal(lease.isLeader, false);
    assert.equal(await other.set(keys.lease, 'another node', 'PX', TTL_MS, 'NX'), 'OK', 'the lease lapsed in Redis');
    await new Promise((resolve) => setTimeout(resolve, TTL_MS / 2));
    assert.equal(lease.isLeader, false);
    assert.equal(lease.leader, 'another node');
    await lease.stop(true);
    assert.equal(await other.get(keys.lease), 'another node', 'a deposed node releases nothing it does not hold');
  });

  test('a node stopped while its acquire is in flight gives back the lease Redis granted it', async () => {
    const keys = clusterKeys('stop-acquire');
    const other = client();
    await other.set(keys.lease, 'someone else', 'PX', 10 * TTL_MS);
    const roles: LeaseRole[] = [];
    const lease = new LeaderLease({ redisUrl: redis.url, keys, nodeId: 'stopping', ttlMs: TTL_MS, onChange: (role) => roles.push(role) });
    lease.start();
    // Its first campaign is done (it found the lease held); the next is a third of a lease away.
    await until(() => lease.leader === 'someone else', 3_000, 'the first campaign');
    await other.del(keys.lease);
    // An acquire goes out, and the node is stopped (becomeStale in attach.ts) before Redis answers it.
    const acquiring = lease.tick();
    await lease.stop(true);
    await acquiring;
    assert.equal(lease.isLeader, false);
    assert.ok(!roles.some((role) => role.kind === 'leader'), `a stopped node never announces a lease it won: ${JSON.stringify(roles)}`);
    assert.equal(await other.get(keys.lease), null, 'the lease it won after stopping is released, not left held for a whole lease');
  });

  test('a lease shorter than 300 ms, longer than 10 minutes, or not a whole number of ms, is refused', () => {
    for (const ttlMs of [0, 299, 1000.5, 600_001, Number.NaN])
      assert.throws(
        () => new LeaderLease({ redisUrl: redis.url, keys: clusterKeys('bad'), nodeId: 'x', ttlMs }),
        /the leader lease must be a whole number of milliseconds from 300 to 600000, got/,
      );
  });

  test('nodes list each other through the registry, warn when Redis does not log writes, and leave cleanly', async () => {
    const lines: string[] = [];
    const admin = client();
    await new Promise((r) => (admin.status === 'ready' ? r(undefined) : admin.once('ready', r)));
    await admin.config('SET', 'appendonly', 'no');
    const nodes = await Promise.all(
      ['n1', 'n2'].map((nodeId) =>
        ClusterNode.connect({
          redisUrl: redis.url,
          federation: 'registry',
          nodeId,
          leaseTtlMs: TTL_MS,
          heartbeatMs: 100,
          log: (l) => lines.push(l),
        }),
      ),
    );
    await admin.config('SET', 'appendonly', 'yes');
    assert.ok(
      lines.some((l) => l.startsWith('warning: Redis runs with appendonly no')),
      `expected the durability warning, got:\n${lines.join('\n')}`,
    );
    for (const [i, node] of nodes.entries())
      node.start(() => ({ address: `http://127.0.0.1:${9000 + i}`, participants: i + 1, bytesIn: 10 * i, bytesOut: 20 * i }));
    await until(() => nodes.every((n) => n.status().nodes.length === 2 && n.status().leader !== undefined), 3_000, 'both nodes listed');
    const [s1, s2] = nodes.map((n) => n.status());
    assert.equal(s1!.self, 'n1');
    assert.equal(s2!.self, 'n2');
    assert.equal(s1!.leader, s2!.leader);
    assert.equal(s1!.redis, 'connected');
    assert.deepEqual(
      s1!.nodes.map(({ id, address, participants, bytesIn, bytesOut }) => ({ id, address, participants, bytesIn, bytesOut })),
      [
        { id: 'n1', address: 'http://127.0.0.1:9000', participants: 1, bytesIn: 0, bytesOut: 0 },
        { id: 'n2', address: 'http://127.0.0.1:9001', participants: 2, bytesIn: 10, bytesOut: 20 },
      ],
    );
    assert.ok(s1!.nodes.every((n) => n.lastSeenMs >= 0 && n.lastSeenMs < 1_000));
    // A clean close gives the lease up: the other leads at once rather than after the lease lapses.
    const leader = nodes.find((n) => n.isLeader)!;
    const other = nodes.find((n) => n !== leader)!;
    await leader.close();
    const takeoverMs = await until(() => other.isLeader, 2_000, 'the other node to lead');
    assert.ok(takeoverMs < TTL_MS, `took ${takeoverMs} ms`);
    await until(() => other.status().nodes.length === 1, 2_000, 'the closed node to leave the registry');
    await other.close();
  });
});
