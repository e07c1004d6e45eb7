import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { FedAvg } from '../../core/aggregation/fedavg.ts';
import { SeededRandom } from '../../core/random/prng.ts';
import { clusterKeys } from '../../coordinator/cluster/keys.ts';
import { FederationStore } from '../../coordinator/cluster/federation-store.ts';
import { FencedStore } from '../../coordinator/cluster/fenced-store.ts';
import { ModelVersions } from '../../coordinator/cluster/model-versions.ts';
import { PartialExchange } from '../../coordinator/cluster/partial-exchange.ts';
import { announceRound, answerRoundAnnouncements } from '../../coordinator/cluster/round-announce.ts';
import type { RoundStartMessage } from '../../core/protocol/messages.ts';
import { decodeFrame, FrameKind } from '../../core/wire/frame.ts';
import { makeModel } from '../../coordinator/rounds/engine-types.ts';
import { answerPartialRequests, gatherPartials, storeContribution } from '../../coordinator/cluster/partial-requests.ts';
import type { PartialRequest } from '../../coordinator/cluster/cluster-events.ts';
import { AdapterNodes } from '../support/adapter-nodes.ts';
import { TestRedis } from '../support/redis.ts';

/**
 * The close of a round across nodes, through socket.io's Redis adapter on a real Redis (three in-process
 * socket.io servers, each with its own Redis clients): the leader asks, members store their partial and
 * acknowledge, the leader combines. A member that hangs (never answers) costs the adapter's timeout, and its
 * participants' updates are lost whole; what the others sent is combined exactly.
 */

const DIM = 17;
const keys = clusterKeys('partial-requests-test');
const ADAPTER_KEY = 'fl:partial-requests-test:socket.io';
const OTHER_KEY = 'fl:partial-requests-other:socket.io';
let redis: TestRedis;
let nodes: AdapterNodes;

before(async () => {
  redis = await TestRedis.start();
  nodes = new AdapterNodes(redis.url, ADAPTER_KEY);
});
after(async () => {
  nodes.disconnect();
  await redis.cleanup();
});

function updates(seed: number) {
  const random = new SeededRandom(seed);
  return Array.from({ length: 3 }, (_, i) => ({
    participantId: `s${seed}-${i}`,
    numExamples: 5 + Math.floor(random.next() * 50),
    update: Float32Array.from({ length: DIM }, () => random.next() - 0.5),
  }));
}

test('the leader asks, members store once and acknowledge, a hung member is lost whole, and the combine equals one aggregator of the rest', async () => {
  const globalWeights = new Float32Array(DIM);
  const byNode = { a: updates(1), b: updates(2), c: updates(3) };
  const claims = Object.values(byNode).flatMap((list) => list.map((u) => u.numExamples));
  const begin = () => new FedAvg({}).beginRound({ round: 4, globalWeights, claimedExamples: claims });
  const term = 2;

  const leaderIo = nodes.node();
  const bIo = nodes.node();
  const cIo = nodes.node();
  const b = begin();
  for (const u of byNode.b) b.add(u);
  const asked: PartialRequest[] = [];
  const bExchange = new PartialExchange(nodes.client(), keys);
  answerPartialRequests(bIo, (request) => {
    asked.push(request);
    const held = request.term === term && request.round === 4 ? { partial: b.partial!(), contributors: ['b1'], bytesIn: 1234 } : undefined;
    return storeContribution(bExchange, 'b', request, held);
  });
  // Node c is subscribed but never answers (a hung process).
  cIo.on('cluster:partial', (_request: PartialRequest, _ack: unknown) => {});
  await nodes.subscribed(3);
  const lines: string[] = [];
  const leader = begin();
  for (const u of byNode.a) leader.add(u);
  const started = Date.now();
  const { lost, bytesIn } = await gatherPartials({
    io: leaderIo,
    exchange: new PartialExchange(nodes.client(), keys),
    request: { term, round: 4 },
    members: ['b', 'c'],
    length: DIM,
    aggregator: leader,
    log: (line) => lines.push(line),
  });
  assert.ok(Date.now() - started >= 700, 'the leader waited for the hung member up to the adapter timeout');
  assert.deepEqual(asked, [{ term, round: 4 }]);
  assert.deepEqual(lost, ['c']);
  assert.equal(bytesIn, 1234, "the upload bytes of b's partial, as its reply gave them; c's are unknown");
  assert.match(lines.join('\n'), /timeout reached: only 1 responses received out of 2/);
  assert.match(lines.join('\n'), /node c wrote no partial; its selected participants count as dropped/);
  const combined = leader.finish()!;
  const one = begin();
  for (const u of [...byNode.a, ...byNode.b]) one.add(u);
  const expected = one.finish()!;
  for (let i = 0; i < DIM; i++) assert.ok(Math.abs(combined[i]! - expected[i]!) <= 1e-6, `weight ${i}: ${combined[i]} vs ${expected[i]}`);
  // Read and combined: the round's partial keys are gone.
  assert.equal(await nodes.client().exists(keys.partial(term, 4, 'b')), 0);
});

test("a partial the leader's check refuses adds neither its updates nor its upload bytes to the round", async () => {
  const key = 'fl:partial-requests-refused:socket.io';
  const leaderIo = nodes.node(key);
  const [bIo, cIo] = [nodes.node(key), nodes.node(key)];
  await nodes.subscribed(3, key);
  const globalWeights = new Float32Array(DIM);
  const begin = () => new FedAvg({}).beginRound({ round: 6, globalWeights });
  const term = 7;
  const member = (io: typeof bIo, node: string, seed: number, bytesIn: number) => {
    const aggregator = begin();
    for (const u of updates(seed)) aggregator.add(u);
    const exchange = new PartialExchange(nodes.client(), keys);
    answerPartialRequests(io, (request) =>
      storeContribution(exchange, node, request, { partial: aggregator.partial!(), contributors: [`${node}1`], bytesIn }),
    );
  };
  member(bIo, 'b', 11, 100);
  member(cIo, 'c', 12, 200);
  const leader = begin();
  const lines: string[] = [];
  const { lost, bytesIn } = await gatherPartials({
    io: leaderIo,
    exchange: new PartialExchange(nodes.client(), keys),
    request: { term, round: 6 },
    members: ['b', 'c'],
    length: DIM,
    aggregator: leader,
    log: (line) => lines.push(line),
    check: (node) => (node === 'c' ? 'claims more examples than its participants declared' : undefined),
  });
  assert.deepEqual(lost, ['c']);
  assert.equal(bytesIn, 100, "b's upload bytes only: c's partial was refused");
  assert.match(lines.join('\n'), /node c's partial is refused \(claims more examples than its participants declared\)/);
  const onlyB = begin();
  for (const u of updates(11)) onlyB.add(u);
  const expected = onlyB.finish()!;
  const combined = leader.finish()!;
  for (let i = 0; i < DIM; i++) assert.ok(Math.abs(combined[i]! - expected[i]!) <= 1e-6, `weight ${i}: ${combined[i]} vs ${expected[i]}`);
});

test('a member asked about a round it holds no partial of says so; the leader logs it and counts its participants out', async () => {
  // Another federation's adapter key: the first test's nodes do not hear these requests.
  const leaderIo = nodes.node(OTHER_KEY);
  const memberIo = nodes.node(OTHER_KEY);
  await nodes.subscribed(2, OTHER_KEY);
  const memberExchange = new PartialExchange(nodes.client(), keys);
  answerPartialRequests(memberIo, (request) => storeContribution(memberExchange, 'm', request, undefined));
  const lines: string[] = [];
  const aggregator = new FedAvg({}).beginRound({ round: 1, globalWeights: new Float32Array(DIM) });
  const { lost } = await gatherPartials({
    io: leaderIo,
    exchange: new PartialExchange(nodes.client(), keys),
    request: { term: 3, round: 1 },
    members: ['m'],
    length: DIM,
    aggregator,
    log: (line) => lines.push(line),
  });
  assert.deepEqual(lost, ['m']);
  assert.match(lines.join('\n'), /node m holds no partial of round 1 \(term 3\)/);
});

test("a Redis failure reading the partials counts every member as lost, and the round closes on the leader's own updates", async () => {
  const key = 'fl:partial-requests-failing:socket.io';
  const leaderIo = nodes.node(key);
  const memberIo = nodes.node(key);
  await nodes.subscribed(2, key);
  const memberExchange = new PartialExchange(nodes.client(), keys);
  answerPartialRequests(memberIo, (request) => storeContribution(memberExchange, 'm', request, undefined));
  // A real client whose connection is closed: every command it is given fails.
  const closed = nodes.client();
  await closed.ping();
  closed.disconnect();
  const lines: string[] = [];
  const own = updates(7);
  const aggregator = new FedAvg({}).beginRound({ round: 2, globalWeights: new Float32Array(DIM) });
  for (const u of own) aggregator.add(u);
  const { lost } = await gatherPartials({
    io: leaderIo,
    exchange: new PartialExchange(closed, keys),
    request: { term: 5, round: 2 },
    members: ['m', 'n'],
    length: DIM,
    aggregator,
    log: (line) => lines.push(line),
  });
  assert.deepEqual(lost, ['m', 'n']);
  assert.match(lines.join('\n'), /round 2: could not read the members' partials: Connection is closed/);
  assert.match(lines.join('\n'), /could not discard the partials/);
  const combined = aggregator.finish()!;
  const alone = new FedAvg({}).beginRound({ round: 2, globalWeights: new Float32Array(DIM) });
  for (const u of own) alone.add(u);
  const expected = alone.finish()!;
  for (let i = 0; i < DIM; i++) assert.ok(Math.abs(combined[i]! - expected[i]!) <= 1e-6, `weight ${i}`);
});

test('a round open reaches each member as a model version; each sends round:start with the weights it fetched from Redis to its own selected participants', async () => {
  const key = 'fl:round-announce-test:socket.io';
  const store = () => {
    const client = nodes.client();
    return new FederationStore(client, new FencedStore(client, keys.term), keys, { name: 'partial-requests-test', paramCount: DIM });
  };
  const weights = Float32Array.from({ length: DIM }, (_, i) => i / 7);
  await nodes.client().set(keys.model(2), Buffer.from(weights.buffer));
  const leaderIo = nodes.node(key);
  const sentBy: Record<string, [string, RoundStartMessage][]> = { b: [], c: [] };
  // The members' clocks are an hour behind and an hour ahead of the leader's: each keeps the round's deadline on its own.
  const skewMs = { b: -3_600_000, c: 3_600_000 };
  const clockOf = (name: 'b' | 'c') => ({ now: () => Date.now() + skewMs[name] });
  for (const name of ['b', 'c'] as const) {
    answerRoundAnnouncements({
      io: nodes.node(key),
      nodeId: name,
      clock: clockOf(name),
      versions: new ModelVersions(store()),
      modelOf: (version, w) => makeModel(version, w),
      // c's participant c2 has just disconnected: not sent.
      send: (id, message) => id !== 'c2' && sentBy[name]!.push([id, message]) > 0,
    });
  }
  await nodes.subscribed(3, key);
  const config: RoundStartMessage['config'] = { epochs: 1, batchSize: 16, learningRate: 0.1 };
  const remainingMs = 30_000;
  const announcement = { term: 1, round: 5, modelVersion: 2, config, remainingMs, selected: { b: ['b1', 'b2'], c: ['c1', 'c2'] } };
  const sentAt = { b: clockOf('b').now(), c: clockOf('c').now() };
  const replies = await announceRound(leaderIo, announcement, () => {});
  const repliedAt = { b: clockOf('b').now(), c: clockOf('c').now() };
  assert.deepEqual(
    replies.sort((x, y) => x.node.localeCompare(y.node)),
    [
      { node: 'b', sent: 2 },
      { node: 'c', sent: 1 },
    ],
  );
  assert.deepEqual(
    sentBy.b!.map(([id]) => id),
    ['b1', 'b2'],
  );
  const [, message] = sentBy.c![0]!;
  assert.equal(message.round, 5);
  assert.equal(message.model.version, 2);
  // Each member's round:start deadline is the time left on its own clock, within the announcement's transit time.
  for (const name of ['b', 'c'] as const) {
    const deadline = sentBy[name]![0]![1].deadline;
    assert.ok(
      deadline >= sentAt[name] + remainingMs && deadline <= repliedAt[name] + remainingMs,
      `${name}'s deadline ${deadline} is ${remainingMs} ms after it heard the round, on its clock`,
    );
  }
  assert.deepEqual(decodeFrame(message.model.weights, { kind: FrameKind.Weights, expectedCount: DIM }), weights);
  // A version Redis does not hold: each member with participants refuses the round, with the reason.
  const lines: string[] = [];
  const refused = await announceRound(leaderIo, { ...announcement, round: 6, modelVersion: 9 }, (line) => lines.push(line));
  assert.equal(refused.length, 2);
  for (const reply of refused)
    assert.match('refused' in reply ? reply.refused : '', /cannot start round 6: Redis no longer holds model version 9/);
});

test('a member whose round open throws refuses the announcement with the reason, and its process goes on', async () => {
  const key = 'fl:round-announce-throws:socket.io';
  const weights = Float32Array.from({ length: DIM }, (_, i) => i / 3);
  await nodes.client().set(keys.model(4), Buffer.from(weights.buffer));
  const client = nodes.client();
  const store = new FederationStore(client, new FencedStore(client, keys.term), keys, { name: 'partial-requests-test', paramCount: DIM });
  const leaderIo = nodes.node(key);
  answerRoundAnnouncements({
    io: nodes.node(key),
    nodeId: 'b',
    clock: { now: () => Date.now() },
    versions: new ModelVersions(store),
    modelOf: (version, w) => makeModel(version, w),
    send: () => true,
    opening: () => {
      throw new Error('the member round could not open');
    },
  });
  await nodes.subscribed(2, key);
  const config: RoundStartMessage['config'] = { epochs: 1, batchSize: 16, learningRate: 0.1 };
  const replies = await announceRound(
    leaderIo,
    { term: 1, round: 8, modelVersion: 4, config, remainingMs: 1, selected: { b: ['b1'] } },
    () => {},
  );
  assert.deepEqual(replies, [{ node: 'b', refused: 'node b cannot start round 8: the member round could not open' }]);
});
