import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import type { ParticipantEvent } from '../../core/participant/participant.ts';
import type { RoundTrainer, RoundTrainResult } from '../../core/participant/trainers.ts';
import type { FederationStatus } from '../../core/protocol/status.ts';
import { FRAME_HEADER_BYTES } from '../../core/wire/frame.ts';
import type { Coordinator, CoordinatorHooks } from '../../coordinator/server.ts';
import { launchCoordinator } from '../helpers/coordinator-process.ts';
import { freePort } from '../helpers/free-port.ts';
import { clusterFixture } from '../support/cluster-fixture.ts';
import { until } from '../helpers/until.ts';

/**
 * The distributed sync round (docs/cluster.md): three coordinators on one
 * Redis, real participants (the shared participant client over socket.io)
 * attached to different nodes. One round selects participants of every
 * node, each node sums its own participants' updates, and the leader's model
 * is exactly the FedAvg of all the updates.
 */

/** Trains nothing: its update is fixed by its seed, so the test knows every update the round combined. */
class FixedUpdateTrainer implements RoundTrainer {
  readonly differentiallyPrivate = false;
  constructor(
    readonly numExamples: number,
    readonly update: Float32Array,
    /** Training waits for this (a participant that is still training when its node dies). */
    private readonly held?: Promise<void>,
  ) {}

  async train(): Promise<RoundTrainResult> {
    await this.held;
    return { update: this.update.slice(), metrics: { loss: 0, accuracy: 0 }, numExamples: this.numExamples, trainMs: 1 };
  }
}

/** The largest difference between `weights` and `initial` moved by the FedAvg of `updates`. */
function distanceFromFedAvg(weights: Float32Array, initial: Float32Array, updates: readonly FixedUpdateTrainer[]): number {
  const total = updates.reduce((sum, u) => sum + u.numExamples, 0);
  let worst = 0;
  for (let i = 0; i < weights.length; i++) {
    let sum = 0;
    for (const u of updates) sum += u.numExamples * u.update[i]!;
    worst = Math.max(worst, Math.abs(weights[i]! - Math.fround(initial[i]! + sum / total)));
  }
  return worst;
}

function fixedUpdate(length: number, seed: number): Float32Array {
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = 1e-3 * Math.sin(seed * 7.3 + i * 0.37);
  return out;
}

test('one round trains participants of every node: each node sums its own, and the model is the FedAvg of all their updates', {
  timeout: 60_000,
}, async (t) => {
  const { coordinators, start, attach } = await clusterFixture(t, 'cluster-rounds');
  const perNode = 2;
  const nodes = 3;
  const federation = [
    '--rounds',
    '1',
    '--min-clients',
    String(nodes * perNode),
    '--clients-per-round',
    String(nodes * perNode),
    '--round-timeout',
    '30',
  ];
  for (let n = 0; n < nodes; n++) await start(`node-${n}`, federation);
  const leaderIndex = await until(
    () => coordinators.findIndex((c) => (c.engine.control as string) !== 'awaiting-start'),
    (i) => i >= 0,
    15_000,
    'a leader',
  );
  const leader = coordinators[leaderIndex]!;
  const initial = leader.engine.globalModel;
  assert.equal(initial.version, 0);
  const length = initial.updateLength;
  const updates: FixedUpdateTrainer[] = [];
  for (let n = 0; n < nodes; n++) {
    for (let k = 0; k < perNode; k++) {
      const seed = n * perNode + k + 1;
      const trainer = new FixedUpdateTrainer(10 * seed, fixedUpdate(length, seed));
      updates.push(trainer);
      attach(coordinators[n]!.url, trainer);
    }
  }

  const status: FederationStatus = await leader.done;
  assert.equal(status.history.length, 1);
  const record = status.history[0]!;
  assert.equal(record.outcome, 'aggregated', record.reason);
  assert.equal(record.received, nodes * perNode);
  // Its bytes are the federation's: every node's uploads (float32 frames) and the model sent to every selected participant.
  const frameBytes = FRAME_HEADER_BYTES + 4 * length;
  assert.equal(record.bytesIn, nodes * perNode * frameBytes);
  assert.equal(record.bytesOut, nodes * perNode * frameBytes);
  // Participants of every node are in the round's record.
  for (const [n, coordinator] of coordinators.entries()) {
    const own = coordinator.engine.status().participants.map((p) => p.id);
    assert.equal(own.length, perNode, `node ${n} holds its own participants`);
    for (const id of own) assert.equal(record.participants?.find((p) => p.id === id)?.outcome, 'received', `node ${n}'s ${id}`);
  }
  // The model is the FedAvg of every update, summed on three nodes and combined at the leader.
  const model = leader.engine.globalModel;
  assert.equal(model.version, 1);
  const worst = distanceFromFedAvg(model.weights, initial.weights, updates);
  assert.ok(worst <= 1e-7, `largest difference from the FedAvg of all updates: ${worst}`);
});

test('SIGKILL of a member node mid-round: its selected participants count as dropped, the round closes on the others, and they take part in the next round through another node', {
  timeout: 60_000,
}, async (t) => {
  const { redis, dataDir, start, attach } = await clusterFixture(t, 'cluster-rounds');
  const federation = ['--rounds', '2', '--min-clients', '6', '--clients-per-round', '6', '--round-timeout', '30'];
  // Two nodes in this process (the first leads), the third a process of its own: the one killed.
  const leader = await start('leader', federation);
  await until(
    () => leader.engine.control as string,
    (c) => c !== 'awaiting-start',
    15_000,
    'the first node to lead',
  );
  const survivor = await start('survivor', federation);
  const port = await freePort();
  const victimUrl = `http://127.0.0.1:${port}`;
  const victim = await launchCoordinator([
    ...['--port', String(port), '--host', '127.0.0.1', '--data-dir', path.join(dataDir, 'victim'), '--redis', redis.url],
    ...federation,
  ]);
  t.after(async () => {
    victim.child.kill('SIGKILL');
    await victim.exited;
  });
  const initial = leader.engine.globalModel;
  const length = initial.updateLength;
  const fast = [1, 2, 3, 4].map((seed) => new FixedUpdateTrainer(10 * seed, fixedUpdate(length, seed)));
  attach(leader.url, fast[0]!);
  attach(leader.url, fast[1]!);
  attach(survivor.url, fast[2]!);
  attach(survivor.url, fast[3]!);
  // The victim's participants are still training when their node dies.
  const never = new Promise<void>(() => {});
  const stranded = [5, 6].map((seed) => attach(victimUrl, new FixedUpdateTrainer(10 * seed, fixedUpdate(length, seed), never)));
  const victimStatus = async () => (await (await fetch(`${victimUrl}/api/status`)).json()) as FederationStatus;
  // Every node lists every node's participants: the victim's own are those on its node.
  const ownRows = (s: FederationStatus) => s.participants.filter((p) => p.node === s.cluster?.self);
  const victimIds = ownRows(
    await until(
      victimStatus,
      (s) => ownRows(s).filter((p) => p.state === 'training' || p.state === 'selected').length === 2,
      20_000,
      "the victim's participants selected",
    ),
  ).map((p) => p.id);
  // Every other selected participant has delivered: only the victim's are outstanding.
  const delivered = (c: Coordinator) => c.engine.status().participants.every((p) => p.roundsContributed === 1);
  await until(
    () => delivered(leader) && delivered(survivor),
    (ok) => ok,
    20_000,
    'the others to deliver',
  );
  victim.child.kill('SIGKILL');
  await victim.exited;
  for (const p of stranded) p.stop();

  const first = await until(
    () => leader.engine.status().history[0],
    (r) => r !== undefined,
    20_000,
    'round 1 to close',
  );
  assert.equal(first.outcome, 'aggregated', first.reason);
  assert.equal(first.received, 4);
  for (const id of victimIds) {
    const part = first.participants?.find((p) => p.id === id);
    assert.equal(part?.outcome, 'dropped', `the victim's ${id}`);
    assert.match(part?.reason ?? '', /stopped answering|did not reach the leader/);
  }
  // Nothing of the dead node is in the model: it is the FedAvg of the four delivered updates exactly.
  const worst = distanceFromFedAvg(leader.engine.globalModel.weights, initial.weights, fast);
  assert.ok(worst <= 1e-7, `largest difference from the FedAvg of the delivered updates: ${worst}`);

  // The victim's participants reconnect through another node and train in the next round.
  const rejoined = [5, 6].map((seed) => new FixedUpdateTrainer(10 * seed, fixedUpdate(length, seed)));
  for (const trainer of rejoined) attach(survivor.url, trainer);
  const done = await leader.done;
  const second = done.history[1]!;
  assert.equal(second.outcome, 'aggregated', second.reason);
  assert.equal(second.received, 6);
  const survivorIds = survivor.engine
    .status()
    .participants.filter((p) => p.connected)
    .map((p) => p.id);
  assert.equal(survivorIds.length, 4);
  for (const id of survivorIds) assert.equal(second.participants?.find((p) => p.id === id)?.outcome, 'received', `the survivor's ${id}`);
});

test("a node that shuts down tells only its own participants that it is done: another node's participants train on", {
  timeout: 60_000,
}, async (t) => {
  const { start, attach } = await clusterFixture(t, 'cluster-rounds');
  const federation = ['--rounds', '40', '--min-clients', '1', '--clients-per-round', '1', '--round-timeout', '30'];
  const leader = await start('leader', federation);
  await until(
    () => leader.engine.control as string,
    (c) => c !== 'awaiting-start',
    15_000,
    'the first node to lead',
  );
  const member = await start('member', federation);
  const events: ParticipantEvent[] = [];
  attach(leader.url, new FixedUpdateTrainer(10, fixedUpdate(leader.engine.globalModel.updateLength, 1)), (event) => events.push(event));
  await until(
    () => leader.engine.status().history.length,
    (n) => n >= 1,
    20_000,
    'a first round',
  );
  await member.close();
  const before = leader.engine.status().history.length;
  await until(
    () => leader.engine.status().history.length,
    (n) => n >= before + 2,
    20_000,
    'two more rounds after the member shut down',
  ).catch((error: Error) => {
    const seen = events.filter((e) => e.type !== 'progress').slice(-6);
    throw new Error(`${error.message}; the participant's last events: ${JSON.stringify(seen)}`);
  });
  assert.deepEqual(
    events.filter((e) => e.type === 'done'),
    [],
  );
});

/** Waits until `coordinator`, the first node started, leads (its engine left awaiting-start). */
async function firstLeader(coordinator: Coordinator): Promise<void> {
  await until(
    () => coordinator.engine.control as string,
    (c) => c !== 'awaiting-start',
    15_000,
    'the first node to lead',
  );
}

test('secure aggregation on a cluster, one cohort per node: each node decodes only its own cohort sum, and the model is the mean of every update', {
  timeout: 60_000,
}, async (t) => {
  const { start, attach } = await clusterFixture(t, 'cluster-rounds');
  const federation = ['--secure-aggregation', '--rounds', '1', '--min-clients', '6', '--clients-per-round', '6', '--min-updates', '6'];
  federation.push('--round-timeout', '30', '--secagg-min-cohort', '3');
  // What each node's coordinator decodes: only sums, each of one node's cohort.
  const decoded: { node: string; contributors: readonly string[] }[] = [];
  const observe = (node: string): CoordinatorHooks => ({
    secaggObserver: { finished: (_round, _result, contributors) => decoded.push({ node, contributors }) },
  });
  const leader = await start('a', federation, observe('a'));
  await firstLeader(leader);
  const member = await start('b', federation, observe('b'));
  const initial = leader.engine.globalModel;
  const updates = [1, 2, 3, 4, 5, 6].map((seed) => new FixedUpdateTrainer(10 * seed, fixedUpdate(initial.updateLength, seed)));
  for (const [i, trainer] of updates.entries()) attach((i < 3 ? leader : member).url, trainer);

  const status = await leader.done;
  const record = status.history[0]!;
  assert.equal(record.outcome, 'aggregated', record.reason);
  assert.equal(record.received, 6);
  for (const [node, coordinator] of [['a', leader] as const, ['b', member] as const]) {
    const own = coordinator.engine
      .status()
      .participants.map((p) => p.id)
      .sort();
    assert.equal(own.length, 3);
    for (const id of own) assert.equal(record.participants?.find((p) => p.id === id)?.outcome, 'received', `node ${node}'s ${id}`);
    // The node decoded one sum: its own three participants', never another node's, never one update.
    assert.deepEqual(
      decoded.filter((d) => d.node === node).map((d) => [...d.contributors].sort()),
      [own],
    );
  }
  // Secure sums are unweighted: the model moved by the mean of the six updates, within the quantisation step.
  const settings = status.settings.secureAggregation!;
  const step = (2 * settings.clipRange) / settings.quantizationRange;
  const model = leader.engine.globalModel;
  assert.equal(model.version, 1);
  let worst = 0;
  for (let i = 0; i < model.weights.length; i++) {
    const mean = updates.reduce((sum, u) => sum + u.update[i]!, 0) / updates.length;
    worst = Math.max(worst, Math.abs(model.weights[i]! - (initial.weights[i]! + mean)));
  }
  assert.ok(worst <= step, `largest difference from the mean of the updates: ${worst} (step ${step})`);
});

test('secure aggregation on a cluster: a node with fewer than k participants is never given a cohort', { timeout: 60_000 }, async (t) => {
  const { start, attach } = await clusterFixture(t, 'cluster-rounds');
  const federation = ['--secure-aggregation', '--rounds', '2', '--min-clients', '3', '--clients-per-round', '5', '--min-updates', '3'];
  federation.push('--round-timeout', '30', '--secagg-min-cohort', '3');
  const leader = await start('a', federation);
  await firstLeader(leader);
  const member = await start('b', federation);
  const length = leader.engine.globalModel.updateLength;
  // The member's two join first, and the leader sees them as candidates before its own three join.
  for (const seed of [4, 5]) attach(member.url, new FixedUpdateTrainer(10, fixedUpdate(length, seed)));
  await until(
    () => member.engine.status().participants.length,
    (n) => n === 2,
    15_000,
    "the member's two participants",
  );
  // The member publishes its directory and the leader reads it once a second: by now its selection sees them (by round 2 surely).
  await new Promise((resolve) => setTimeout(resolve, 2500));
  for (const seed of [1, 2, 3]) attach(leader.url, new FixedUpdateTrainer(10, fixedUpdate(length, seed)));

  const status = await leader.done;
  const memberIds = new Set(member.engine.status().participants.map((p) => p.id));
  assert.equal(memberIds.size, 2);
  assert.equal(status.history.length, 2);
  for (const record of status.history) {
    assert.equal(record.outcome, 'aggregated', record.reason);
    assert.equal(record.received, 3);
    assert.deepEqual(
      record.participants?.filter((p) => memberIds.has(p.id)),
      [],
      `round ${record.round} selected none of the member's two`,
    );
  }
});
