import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { stalenessWeight } from '../../core/aggregation/staleness.ts';
import { TrainingSlots } from '../../coordinator/cluster/async-slots.ts';
import type { RoundTrainer, RoundTrainResult } from '../../core/participant/trainers.ts';
import type { FederationStatus } from '../../core/protocol/status.ts';
import { FRAME_HEADER_BYTES } from '../../core/wire/frame.ts';
import { clusterFixture } from '../support/cluster-fixture.ts';
import { until } from '../helpers/until.ts';

/**
 * Async mode on a cluster (docs/async.md "Cluster mode"): three coordinators
 * on one Redis, real participants (the shared client over socket.io) on
 * every node, one of them slow. One FedBuff buffer across the nodes: every
 * version is made of exactly K updates from participants of any node, each
 * weighted by its staleness against the federation's version, and versions
 * advance while the slow participant trains.
 */

const K = 3;
const VERSIONS = 8;
const STEP = 1e-3;

/** Its update moves one coordinate of its own by STEP, so the final model tells how much of each participant's work went in. */
class OneCoordinateTrainer implements RoundTrainer {
  readonly differentiallyPrivate = false;
  readonly numExamples = 10;
  constructor(
    private readonly length: number,
    readonly coordinate: number,
    private readonly delayMs: number,
    /** Training waits for this as well (the slow participant: until versions were made without it). */
    private readonly held?: () => Promise<void>,
  ) {}

  async train(): Promise<RoundTrainResult> {
    await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    await this.held?.();
    const update = new Float32Array(this.length);
    update[this.coordinate] = STEP;
    return { update, metrics: { loss: 0, accuracy: 0 }, numExamples: this.numExamples, trainMs: this.delayMs };
  }
}

test('one buffer across three nodes: K updates per version from any node, weighted by staleness, versions advancing while a slow participant trains', {
  timeout: 60_000,
}, async (t) => {
  const { redis, coordinators, start, attach } = await clusterFixture(t, 'cluster-async');
  const federation = [
    ...['--mode', 'async', '--buffer-size', String(K), '--max-staleness', '10', '--concurrency', '4'],
    ...['--rounds', String(VERSIONS), '--min-clients', '3', '--round-timeout', '30'],
  ];
  const leader = await start('node-0', federation);
  await until(
    () => leader.engine.control as string,
    (c) => c !== 'awaiting-start',
    15_000,
    'the first node to lead',
    50,
  );
  await start('node-1', federation);
  await start('node-2', federation);
  const initial = leader.engine.globalModel;
  const length = initial.updateLength;
  const versionsMade = () => leader.engine.status().history.filter((r) => r.outcome === 'aggregated').length;

  // The slow one joins first (the longest-waiting gets the first slot) and trains until two versions were made without it. It is on a
  // member node, which hears of a new version after the leader's: updates that wait take seats in the order they came, whichever node
  // holds them, so its late update still finds a seat before the end. With C > K, about C − K updates wait at any time and a
  // version may close while it claims: it goes in up to four versions after it finished, and eight versions leave it six.
  const trainers: { node: number; trainer: OneCoordinateTrainer }[] = [];
  const slow = new OneCoordinateTrainer(length, 100, 0, () =>
    until(versionsMade, (n) => n >= 2, 40_000, 'two versions', 50).then(() => {}),
  );
  trainers.push({ node: 1, trainer: slow });
  const slowParticipant = attach(coordinators[1]!.url, slow);
  await until(
    () => slowParticipant.id,
    (id) => id !== undefined,
    10_000,
    'the slow participant to join',
    50,
  );
  for (let n = 0; n < 3; n++)
    for (let k = 0; k < 2; k++) {
      const trainer = new OneCoordinateTrainer(length, 200 + 100 * (2 * n + k), 60);
      trainers.push({ node: n, trainer });
      attach(coordinators[n]!.url, trainer);
    }

  const status: FederationStatus = await leader.done;
  // The leader marked the federation finished in Redis: no node hands out a slot any more (a member's engine never finishes itself).
  const client = new Redis(redis.url);
  try {
    const slots = new TrainingSlots(client, leader.task.name, 'a-node-after-the-end');
    const started = Date.now();
    while ((await slots.grant(4, 1_000, ['late'])) !== undefined) {
      assert.ok(Date.now() - started < 5_000, 'slots are still handed out after the federation finished');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    client.disconnect();
  }
  const aggregated = status.history.filter((r) => r.outcome === 'aggregated');
  assert.equal(aggregated.length, VERSIONS, status.doneReason);
  for (const record of aggregated) {
    assert.ok(record.staleness, `version ${record.round} records its staleness`);
    assert.equal(
      record.staleness.counts.reduce((a, b) => a + b, 0),
      K,
      `version ${record.round} is made of exactly K updates`,
    );
    // Its bytes in are its K uploads (float32 frames), summed on whichever nodes took them.
    assert.equal(record.bytesIn, K * (FRAME_HEADER_BYTES + 4 * length), `version ${record.round}'s upload bytes`);
    assert.equal(record.bytesOut % (FRAME_HEADER_BYTES + 4 * length), 0, `version ${record.round}'s bytes out are whole models`);
  }
  // Every update in a version was trained from a model some node sent and counted before the update's seat was taken.
  const sent = aggregated.reduce((sum, r) => sum + r.bytesOut, 0);
  assert.ok(sent >= K * VERSIONS * (FRAME_HEADER_BYTES + 4 * length), `models sent for the versions: ${sent} bytes`);
  // Participants of every node went into versions.
  const contributors = new Set(aggregated.flatMap((r) => (r.participants ?? []).filter((p) => p.outcome === 'received').map((p) => p.id)));
  for (const [n, coordinator] of coordinators.entries()) {
    const own = coordinator.engine.status().participants.map((p) => p.id);
    assert.ok(
      own.some((id) => contributors.has(id)),
      `a participant of node ${n} contributed`,
    );
  }
  // The slow participant's update went into a version made after at least two others, staler than 0.
  const slowId = slowParticipant.id!;
  const slowVersion = aggregated.find((r) => r.participants?.some((p) => p.id === slowId && p.outcome === 'received'));
  assert.ok(slowVersion, 'the slow participant contributed');
  assert.ok(slowVersion.round > aggregated[1]!.round, 'versions advanced while it trained');
  assert.ok((slowVersion.staleness?.max ?? 0) >= 2, 'its update is at least two versions stale');

  // The model is exactly what FedAvg of each version's K updates, staleness-weighted, gives: with equal example counts,
  // each version moves the coordinates of its contributors by w(s)·STEP/K, so the total movement is Σ w(s)·STEP/K over
  // every update the records count, and every coordinate moved by whole multiples of its weighted steps.
  const final = leader.engine.globalModel.weights;
  let moved = 0;
  for (let i = 0; i < length; i++) moved += final[i]! - initial.weights[i]!;
  const expected = aggregated.reduce(
    (sum, r) => sum + r.staleness!.counts.reduce((s, count, staleness) => s + (count * stalenessWeight(staleness) * STEP) / K, 0),
    0,
  );
  assert.ok(Math.abs(moved - expected) < 1e-6, `the model moved by ${moved}, the records say ${expected}`);
  const own = new Set(trainers.map(({ trainer }) => trainer.coordinate));
  for (let i = 0; i < length; i++)
    if (!own.has(i)) assert.equal(final[i], initial.weights[i], `coordinate ${i} is no participant's and stays`);
  assert.equal(leader.engine.globalModel.version, VERSIONS);
});
