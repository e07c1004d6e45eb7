import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DpFedAvg } from '../../core/aggregation/dp-fedavg.ts';
import { SeededRandom } from '../../core/random/prng.ts';
import { ClusterRuntime } from '../../coordinator/cluster/attach.ts';
import { FencedStore, FencedWriteRefused } from '../../coordinator/cluster/fenced-store.ts';
import { FederationStore } from '../../coordinator/cluster/federation-store.ts';
import { clusterKeys } from '../../coordinator/cluster/keys.ts';
import { ModelVersions } from '../../coordinator/cluster/model-versions.ts';
import { makeModel } from '../../coordinator/rounds/engine-types.ts';
import { useTestRedis } from '../support/redis.ts';
import { roundRecord } from '../helpers/round-record.ts';

/** The federation's durable state in Redis: what a new leader resumes from, fenced so a deposed leader cannot change it. */

const TASK = { name: 'store-test', paramCount: 5 };
const db = useTestRedis();

const record = (round: number, modelVersion: number) => roundRecord(round, { modelVersion });

test('a completed round is stored whole (record, model bytes, strategy, head), once, and only under the current term', async () => {
  const keys = clusterKeys(TASK.name);
  const term = await db.client.incr(keys.term);
  const store = new FederationStore(db.client, new FencedStore(db.client, keys.term), keys, TASK);
  await store.markRoundStarted(term, 1);
  assert.deepEqual(await store.head(), { task: TASK.name, paramCount: TASK.paramCount, round: 0, modelVersion: 0, lastStartedRound: 1 });
  const model1 = makeModel(1, Float32Array.from([0.5, -1, 2e-7, 3, Number.MIN_VALUE]));
  await store.commitRound(term, record(1, 1), model1, { name: 'fedavg', state: { moments: [1, 2] } });
  // The disk part of a save failed after this one succeeded: the retry must not store the round twice.
  await store.commitRound(term, record(1, 1), model1, { name: 'fedavg', state: { moments: [1, 2] } });
  await store.markRoundStarted(term, 2);
  await store.markRoundStarted(term, 3); // round 2 was abandoned (say, too few participants): its number is used up
  const model3 = makeModel(2, Float32Array.from([1, 2, 3, 4, 5]));
  await store.commitRound(term, record(3, 2), model3, { name: 'fedavg', state: { moments: [3, 4] } });

  const loaded = (await store.load())!;
  assert.deepEqual(loaded.head, { task: TASK.name, paramCount: TASK.paramCount, round: 3, modelVersion: 2, lastStartedRound: 3 });
  assert.equal(loaded.historyFrom, 0);
  // A follower that holds round 1's record reads only what came after it. One whose last record differs from Redis's
  // at that place, in its round or in anything else (a record of its own disk checkpoint), or that holds more than
  // Redis, reads it all; one that holds everything reads nothing new.
  const rounds = (stored: Awaited<ReturnType<typeof store.load>>) => stored!.resume!.history.map((r) => r.round);
  const after1 = (await store.load({ length: 1, last: record(1, 1) }))!;
  assert.equal(after1.historyFrom, 1);
  assert.deepEqual(rounds(after1), [3]);
  for (const last of [record(2, 1), { ...record(1, 1), startedAt: 5 }]) {
    const mismatch = (await store.load({ length: 1, last }))!;
    assert.equal(mismatch.historyFrom, 0);
    assert.deepEqual(rounds(mismatch), [1, 3]);
  }
  assert.equal((await store.load({ length: 5, last: record(9, 9) }))!.historyFrom, 0);
  const upToDate = (await store.load({ length: 2, last: record(3, 2) }))!;
  assert.equal(upToDate.historyFrom, 2);
  assert.deepEqual(upToDate.resume!.history, []);
  // A record committed after the head was read (here: pushed without moving the head) waits for the next load.
  await db.client.rpush(keys.history, JSON.stringify(record(4, 3)));
  assert.deepEqual(rounds(await store.load()), [1, 3]);
  assert.deepEqual((await store.load({ length: 2, last: record(3, 2) }))!.resume!.history, []);
  await db.client.rpop(keys.history);
  assert.deepEqual(loaded.resume!.weights, model3.weights);
  assert.deepEqual(
    loaded.resume!.history.map((r) => r.round),
    [1, 3],
  );
  assert.deepEqual(loaded.strategy, { name: 'fedavg', state: { moments: [3, 4] } });
  // One model per version, only the current one kept.
  assert.equal(await db.client.exists(keys.model(1)), 0);
  assert.equal((await db.client.getBuffer(keys.model(2)))!.byteLength, TASK.paramCount * 4);

  // Another node leads now: the old term's writes are refused, and nothing of them lands.
  const newTerm = await db.client.incr(keys.term);
  await assert.rejects(store.commitRound(term, record(4, 3), makeModel(3, new Float32Array(5)), undefined), FencedWriteRefused);
  await assert.rejects(store.markRoundStarted(term, 9), FencedWriteRefused);
  // A deposed leader's round older than the head (what a leader frozen past its lease holds) is refused too, not taken as already stored.
  await assert.rejects(store.commitRound(term, record(2, 2), makeModel(2, new Float32Array(5)), undefined), FencedWriteRefused);
  // The same round from the current term is a retry of a stored round: accepted, and stored once.
  await store.commitRound(newTerm, record(3, 2), model3, undefined);
  assert.deepEqual((await store.load())!.head, loaded.head);
  assert.equal(await db.client.llen(keys.history), 2);
  await store.markRoundStarted(newTerm, 4);
  assert.equal((await store.head())!.lastStartedRound, 4);
});

test('a store of another task under the same keys is refused, not mixed in', async () => {
  const keys = clusterKeys('shared-name');
  const term = await db.client.incr(keys.term);
  await new FederationStore(db.client, new FencedStore(db.client, keys.term), keys, {
    name: 'shared-name',
    paramCount: 5,
  }).markRoundStarted(term, 1);
  await assert.rejects(
    new FederationStore(db.client, new FencedStore(db.client, keys.term), keys, { name: 'shared-name', paramCount: 7 }).load(),
    /holds federation shared-name with 5 parameters under these keys, not shared-name with 7/,
  );
});

test('a node that takes the federation up from Redis keeps the privacy spent, and charges the round that started but never completed', async () => {
  const dp = () =>
    new DpFedAvg({
      placement: 'central',
      noiseMultiplier: 1,
      clip: { kind: 'fixed', norm: 1 },
      sampleRate: 0.5,
      expectedClients: 2,
      delta: 1e-5,
      uniform: new SeededRandom(1),
    });
  const task = { name: 'dp-store', paramCount: 3 };
  const keys = clusterKeys(task.name);
  const term = await db.client.incr(keys.term);
  const store = new FederationStore(db.client, new FencedStore(db.client, keys.term), keys, task);
  // The first leader runs two rounds.
  const first = dp();
  let weights: Float32Array = new Float32Array(3);
  for (let round = 1; round <= 2; round++) {
    await store.markRoundStarted(term, round);
    const aggregator = first.beginRound({ round, globalWeights: weights });
    aggregator.add({ participantId: 'a', numExamples: 1, update: Float32Array.from([0.1, 0.2, 0.3]) });
    weights = aggregator.finish()!;
    await store.commitRound(term, record(round, round), makeModel(round, weights), { name: first.name, state: first.saveState() });
  }
  // It starts round 3 and dies before the round completes.
  await store.markRoundStarted(term, 3);
  const spentAtDeath = first.privacy().epsilon;
  first.chargeUnrecordedRounds(1);
  const expected = first.privacy();

  const second = dp();
  assert.equal(second.privacy().epsilon, 0);
  const runtime = await ClusterRuntime.connect({ redisUrl: db.redis.url, task, strategy: second, log: () => {} });
  try {
    const taken = (await runtime.resumePoint())!;
    assert.equal(taken.lastStartedRound, 3, 'numbering continues after the abandoned round 3');
    assert.equal(taken.resume!.round, 2);
    assert.deepEqual(taken.resume!.weights, weights);
    assert.ok(second.privacy().epsilon > spentAtDeath, 'the started round is charged');
    assert.equal(second.privacy().epsilon, expected.epsilon);
    assert.equal(second.privacy().rounds, 3);
  } finally {
    await runtime.close();
  }
});

test('the model a round trains from is in Redis before the round starts (version 0 too), and a member fetches each version once', async () => {
  const task = { name: 'model-versions', paramCount: 4 };
  const keys = clusterKeys(task.name);
  const term = await db.client.incr(keys.term);
  const store = new FederationStore(db.client, new FencedStore(db.client, keys.term), keys, task);
  const initial = makeModel(0, Float32Array.from([1, 2, 3, 4]));
  await store.markRoundStarted(term, 1, initial);
  assert.deepEqual(await store.model(0), initial.weights);
  const versions = new ModelVersions(store);
  assert.deepEqual(await versions.get(0), initial.weights);
  // Served from memory afterwards: gone from Redis, the node still has it.
  await db.client.del(keys.model(0));
  assert.deepEqual(await versions.get(0), initial.weights);
  await store.markRoundStarted(term, 1, initial); // stored again while absent (a resumed node's current model)
  const next = makeModel(1, Float32Array.from([5, 6, 7, 8]));
  await store.commitRound(term, record(1, 1), next, undefined);
  // One model per version: version 0 goes when version 1 is committed.
  assert.equal(await db.client.exists(keys.model(0)), 0);
  assert.deepEqual(await versions.get(1), next.weights);
  await assert.rejects(versions.get(0), /Redis no longer holds model version 0/);
});
