import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import type { TaskSummary } from '../../core/protocol/messages.ts';
import type { FederationStatus } from '../../core/protocol/status.ts';
import { DEFAULT_LEASE_TTL_MS } from '../../coordinator/cluster/lease-ttl.ts';
import { loadMnistDemo } from '../../coordinator/task/demo-data.ts';
import { type CoordinatorProcess, launchCoordinator } from '../helpers/coordinator-process.ts';
import { freePort } from '../helpers/free-port.ts';
import { startNodeParticipants, stopNodeParticipants, type NodeParticipant } from '../helpers/node-participants.ts';
import { TestRedis } from '../support/redis.ts';
import { until } from '../helpers/until.ts';

/**
 * Three coordinator processes on one real Redis, real Node participants:
 * SIGKILL the leader in the middle of a round. Another node must lead within
 * the lease plus a few seconds, take the federation up from Redis (each node
 * has its own data folder: nothing comes from the dead node's disk), keep
 * every completed round, abandon the open one without reusing its number,
 * and run on with participants that reconnect to it.
 */

interface Node {
  readonly port: number;
  readonly url: string;
  readonly dataDir: string;
  process: CoordinatorProcess;
}

let redis: TestRedis | undefined;
let nodes: Node[] = [];
let participants: NodeParticipant[] = [];

async function cleanup(): Promise<void> {
  stopNodeParticipants(participants);
  participants = [];
  for (const node of nodes) {
    node.process.child.kill('SIGCONT');
    node.process.child.kill('SIGKILL');
    await node.process.exited;
    await rm(node.dataDir, { recursive: true, force: true });
  }
  nodes = [];
  await redis?.cleanup();
  redis = undefined;
}
after(cleanup);

/** A fresh Redis and `count` coordinator processes on it, each with its own data folder. */
async function launchNodes(count: number): Promise<void> {
  redis = await TestRedis.start();
  const url = redis.url;
  await Promise.all(
    Array.from({ length: count }, async () => {
      const port = await freePort();
      const dataDir = await mkdtemp(path.join(tmpdir(), 'fl-cluster-node-'));
      const args = ['--port', String(port), '--host', '127.0.0.1', '--data-dir', dataDir, '--redis', url];
      const federation = ['--rounds', '40', '--min-clients', '2', '--clients-per-round', '2', '--round-timeout', '20', '--seed', '3'];
      const process = await launchCoordinator([...args, ...federation]);
      nodes.push({ port, url: `http://127.0.0.1:${port}`, dataDir, process });
    }),
  );
}

async function status(node: Node): Promise<FederationStatus | undefined> {
  try {
    return (await (await fetch(`${node.url}/api/status`)).json()) as FederationStatus;
  } catch {
    return undefined; // a killed node
  }
}

async function leaderOf(candidates: readonly Node[]): Promise<Node | undefined> {
  for (const node of candidates) {
    const s = await status(node);
    if (s?.cluster && s.cluster.leader === s.cluster.self) return node;
  }
  return undefined;
}

/** A fresh cluster of `count` nodes with two Node participants training through its leader; resolves with the leader. */
async function clusterTraining(count: number): Promise<Node> {
  await cleanup();
  await launchNodes(count);
  const leader = (await until(
    () => leaderOf(nodes),
    (n) => n !== undefined,
    15_000,
    'a leader',
  ))!;
  await trainThrough(leader);
  return leader;
}

/** Two Node participants training through `node` (those training elsewhere stop: a load balancer would move them). */
async function trainThrough(node: Node): Promise<void> {
  stopNodeParticipants(participants);
  const task = (await (await fetch(`${node.url}/api/task`)).json()) as TaskSummary;
  participants = await startNodeParticipants(node.url, await loadMnistDemo(), task, 2);
}

test('SIGKILL of the leader mid-round: another node leads within the lease plus a few seconds, from Redis, with every completed round and no reused round number', {
  timeout: 120_000,
}, async (t) => {
  const first = await clusterTraining(3);

  // Two completed rounds, then kill the leader while the next one is open.
  const before = (await until(
    () => status(first),
    (s) => s !== undefined && s.history.length >= 2 && s.phase === 'training',
    60_000,
    'two completed rounds and an open one',
  ))!;
  const openRound = before.round;
  assert.ok(openRound > before.history.at(-1)!.round);
  first.process.child.kill('SIGKILL');
  await first.process.exited;
  const killedAt = Date.now();
  const others = nodes.filter((n) => n !== first);
  const second = (await until(
    () => leaderOf(others),
    (n) => n !== undefined,
    DEFAULT_LEASE_TTL_MS + 5_000,
    'a new leader',
  ))!;
  const failoverMs = Date.now() - killedAt;
  assert.ok(failoverMs <= DEFAULT_LEASE_TTL_MS + 4_000, `failover took ${failoverMs} ms`);
  t.diagnostic(`failover: node ${second.port} led ${failoverMs} ms after the leader's SIGKILL (lease ${DEFAULT_LEASE_TTL_MS} ms)`);

  // The participants reconnect to the new leader (a load balancer would send them there).
  await trainThrough(second);
  const after = (await until(
    () => status(second),
    (s) => s !== undefined && s.history.length > before.history.length,
    60_000,
    'a round completed by the new leader',
  ))!;
  const kept = after.history.slice(0, before.history.length).map((r) => [r.round, r.modelVersion, r.modelHash]);
  assert.deepEqual(
    kept,
    before.history.map((r) => [r.round, r.modelVersion, r.modelHash]),
    'every completed round is kept',
  );
  const next = after.history[before.history.length]!;
  assert.ok(next.round > openRound, `the open round ${openRound} was abandoned and its number not reused (next: ${next.round})`);
  assert.ok(!after.history.some((r) => r.round === openRound));

  // The third node follows the federation in Redis: its status shows the same rounds.
  const third = others.find((n) => n !== second)!;
  await until(
    () => status(third),
    (s) => s !== undefined && s.history.length >= after.history.length && s.cluster?.leader === after.cluster?.self,
    10_000,
    'the third node to show the new leader and its rounds',
  );
  const thirdStatus = (await status(third))!;
  assert.deepEqual(
    thirdStatus.history.slice(0, after.history.length).map((r) => r.round),
    after.history.map((r) => r.round),
  );
  assert.equal(thirdStatus.cluster!.nodes.length >= 2, true);
});

test('a leader frozen past its lease (SIGSTOP) is deposed; woken up, it cannot write, and it exits as stale for its supervisor to restart', {
  timeout: 120_000,
}, async () => {
  const first = await clusterTraining(2);
  await until(
    () => status(first),
    (s) => s !== undefined && s.history.length >= 1 && s.phase === 'training',
    60_000,
    'a completed round and an open one',
  );
  first.process.child.kill('SIGSTOP');
  const second = nodes.find((n) => n !== first)!;
  await until(
    () => leaderOf([second]),
    (n) => n !== undefined,
    DEFAULT_LEASE_TTL_MS + 5_000,
    'the other node to lead',
  );
  await trainThrough(second);
  const led = (await until(
    () => status(second),
    (s) => s?.history.some((r) => r.outcome === 'aggregated' && r.round > 1) === true,
    60_000,
    'a round aggregated by the new leader',
  ))!;

  // Wake the old leader: its open round closes (its participants left), and its save must be refused.
  first.process.child.kill('SIGCONT');
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    first.process.exited,
    new Promise((resolve) => (timer = setTimeout(() => resolve('still running'), 15_000))),
  ]).finally(() => clearTimeout(timer));
  assert.equal(code, 75, 'the stale node exits with 75 (EX_TEMPFAIL) for its supervisor to restart it');
  // Nothing it did after it was deposed reached the federation: the new leader's history runs on, numbers increasing, none twice.
  const final = (await status(second))!;
  const rounds = final.history.map((r) => r.round);
  for (let i = 1; i < rounds.length; i++) assert.ok(rounds[i]! > rounds[i - 1]!, `round numbers increase: ${rounds.join(',')}`);
  assert.deepEqual(
    final.history.slice(0, led.history.length).map((r) => [r.round, r.modelHash]),
    led.history.map((r) => [r.round, r.modelHash]),
  );
  assert.equal(final.cluster!.leader, final.cluster!.self);
});

test('Redis stops and comes back: every node keeps serving and says the federation is paused because Redis is unreachable; rounds then resume with nothing lost', {
  timeout: 120_000,
}, async () => {
  const first = await clusterTraining(2);
  const before = (await until(
    () => status(first),
    (s) => (s?.history.length ?? 0) >= 1,
    60_000,
    'a completed round',
  ))!;

  await redis!.stop();
  for (const node of nodes) {
    const paused = (await until(
      () => status(node),
      (s) => s?.cluster?.redis === 'unreachable',
      10_000,
      'the node to see Redis gone',
    ))!;
    assert.match(paused.cluster!.paused ?? '', /^the federation is paused: Redis is unreachable/);
  }
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  await redis!.restart();

  // A leader again (the same node when its lease outlived the outage); participants follow it, as through a load balancer.
  const leader = (await until(
    () => leaderOf(nodes),
    (n) => n !== undefined,
    DEFAULT_LEASE_TTL_MS + 10_000,
    'a leader after Redis returned',
  ))!;
  if (leader !== first) await trainThrough(leader);
  const resumed = (await until(
    () => status(leader),
    (s) => s !== undefined && s.history.length >= before.history.length + 2 && s.cluster?.paused === undefined,
    60_000,
    'two more rounds after Redis returned',
  ).catch(async (error: Error) => {
    // What the participants and the rounds said, so a failure here can be read from the log alone.
    const seen = participants.map((p) => p.events.filter((e) => e.type !== 'progress').slice(-8));
    const rounds = (await status(leader))?.history.map((r) => ({ round: r.round, outcome: r.outcome, reason: r.reason }));
    const logs = nodes.map((n) => `--- node ${n.port}${n === leader ? ' (leader)' : ''}:\n${n.process.output().slice(-4_000)}`);
    throw new Error(
      `${error.message}\nleader changed: ${leader !== first}\nrounds: ${JSON.stringify(rounds)}\nparticipant events: ${JSON.stringify(seen)}\n${logs.join('\n')}`,
    );
  }))!;
  assert.deepEqual(
    resumed.history.slice(0, before.history.length).map((r) => [r.round, r.modelHash]),
    before.history.map((r) => [r.round, r.modelHash]),
    'every round Redis had acknowledged is kept',
  );
  assert.equal(resumed.cluster!.redis, 'connected');
});
