import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { FedAvg } from '../../core/aggregation/fedavg.ts';
import { decodePartial } from '../../core/aggregation/partial.ts';
import type { RoundAggregator, RoundContext } from '../../core/aggregation/strategy.ts';
import type { PartialReply, PartialRequest } from '../../coordinator/cluster/cluster-events.ts';
import { clusterKeys } from '../../coordinator/cluster/keys.ts';
import { MemberRounds, routeToMemberRounds } from '../../coordinator/cluster/member-rounds.ts';
import { PartialExchange } from '../../coordinator/cluster/partial-exchange.ts';
import { answerPartialRequests, gatherPartials } from '../../coordinator/cluster/partial-requests.ts';
import { ParticipantDirectory } from '../../coordinator/cluster/participant-directory.ts';
import { EngineHarness } from '../helpers/engine-harness.ts';
import { until } from '../helpers/until.ts';
import { AdapterNodes } from '../support/adapter-nodes.ts';
import { TestRedis } from '../support/redis.ts';

/**
 * A member's partial goes to Redis as soon as its sum is final (every
 * participant selected on it settled), before the leader asks
 * (member-rounds.ts): a member node collecting with the engine's own intake
 * (a RoundEngine on a manual clock), the leader's side a socket.io server on
 * the same Redis adapter. The leader hears `cluster:stored` before the report
 * that completes the node's part, reads the partial without a request, and
 * the member lets its round's aggregator go once the partial is stored.
 */

const DIM = 9;
const TERM = 3;
const ROUND = 1;
const keys = clusterKeys('eager-partial-test');
const ADAPTER_KEY = 'fl:eager-partial-test:socket.io';
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

/** Polls `ok` every 10 ms until it holds (test/helpers/until.ts). */
const holds = (ok: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000) => until(ok, (held) => held, timeoutMs, what, 10);

/** FedAvg whose round aggregators the test can watch being let go (a WeakRef does not keep them). */
class WatchedFedAvg extends FedAvg {
  readonly rounds: WeakRef<RoundAggregator>[] = [];
  override beginRound(context: RoundContext): RoundAggregator {
    const round = super.beginRound(context);
    this.rounds.push(new WeakRef(round));
    return round;
  }
}

test('a member whose participants all settled stores its partial before the leader asks; the leader hears it first and reads it without a request; later updates are refused; the aggregator is let go', {
  timeout: 30_000,
}, async () => {
  const strategy = new WatchedFedAvg();
  // The member's engine never opens a round of its own: the leader's rounds are collected by MemberRounds.
  const harness = new EngineHarness({ minClients: 100, clientsPerRound: 3 }, DIM, strategy);
  const [p1, p2, p3] = [harness.join(), harness.join(), harness.join()];
  const leaderIo = nodes.node();
  const memberIo = nodes.node();
  const member = new MemberRounds({
    engine: harness.engine,
    io: memberIo,
    nodeId: 'm',
    directory: new ParticipantDirectory(nodes.client(), keys, 'm'),
    exchange: new PartialExchange(nodes.client(), keys),
    send: () => true,
    leads: () => false,
    log: () => {},
  });
  const requests: PartialRequest[] = [];
  answerPartialRequests(memberIo, (request) => {
    requests.push(request);
    return member.partialOf(request);
  });
  // What the leader hears from the member, in order.
  const heard: string[] = [];
  const notices: PartialReply[] = [];
  leaderIo.on('cluster:settled', (report) => heard.push(`settled ${report.participantId} ${report.outcome}`));
  leaderIo.on('cluster:stored', (notice) => {
    heard.push(`stored ${notice.contributors.join(',')}`);
    notices.push(notice);
  });
  await nodes.subscribed(2);

  const model = member.modelOf(0, new Float32Array(DIM));
  const config = { epochs: 1, batchSize: 8, learningRate: 0.1 };
  // The round as this member heard it: the leader's time left, and the deadline on the member's (manual) clock.
  const selected = { m: [p1!, p2!, p3!], leader: ['l1'] };
  const announcement = { term: TERM, round: ROUND, modelVersion: 0, config, remainingMs: 60_000, deadline: 60_000, selected };
  member.open(announcement, model);
  const engine = routeToMemberRounds(harness.engine, member);
  const values = [0.5, -0.25, 1, 0, 0.125, -1, 2, 0.75, -0.5];
  const upload = harness.update(ROUND, values, { numExamples: 20 });
  const accepted = engine.submitUpdate(p1!, upload);
  assert.equal(accepted.ok, true, JSON.stringify(accepted));
  assert.equal(engine.decline(p2!, { round: ROUND, reason: 'on battery', final: false }).ok, true);
  const partialKey = keys.partial(TERM, ROUND, 'm');
  assert.equal(await nodes.client().exists(partialKey), 0, 'nothing stored while p3 is still waited for');
  // The last of the node's participants settles: it disconnects.
  engine.leave(p3!);

  // In Redis with no request from the leader.
  await holds(async () => (await nodes.client().exists(partialKey)) === 1, "the member's partial in Redis before any close request");
  assert.deepEqual(requests, []);
  await holds(() => heard.length === 4, "the member's notice and three settlement reports");
  // The notice comes before the report that completed the node's part: a close on that report finds the partial stored.
  assert.deepEqual(heard.slice(-2), [`stored ${p1}`, `settled ${p3} dropped`]);
  assert.deepEqual(heard.slice(0, 2).sort(), [`settled ${p1} received`, `settled ${p2} declined`].sort());

  // After the partial: a participant's update of the round is refused with a code, and the stored sum stays one update.
  const late = engine.submitUpdate(p3!, harness.update(ROUND, values));
  assert.equal(late.ok, false);
  assert.equal(!late.ok && late.error.code, 'WRONG_ROUND');
  const again = engine.submitUpdate(p1!, harness.update(ROUND, values));
  assert.equal(!again.ok && again.error.code, 'WRONG_ROUND');
  const stored = decodePartial(new Uint8Array((await nodes.client().getBuffer(partialKey))!), DIM);
  assert.equal(stored.count, 1);
  assert.equal(stored.weight, 20);
  for (let i = 0; i < DIM; i++) assert.equal(stored.sum[i], 20 * values[i]!);

  // The leader's close: the notice is the acknowledgement, nothing is asked, and the combine is exact.
  const aggregator = new FedAvg({}).beginRound({ round: ROUND, globalWeights: new Float32Array(DIM) });
  const { lost, bytesIn, steps } = await gatherPartials({
    io: leaderIo,
    exchange: new PartialExchange(nodes.client(), keys),
    request: { term: TERM, round: ROUND },
    members: ['m'],
    stored: new Map(notices.map((n) => [n.node, n])),
    length: DIM,
    aggregator,
    log: () => {},
    check: (_node, partial, reply) => (reply?.stored && partial.count === reply.contributors.length ? undefined : 'mismatch'),
  });
  assert.deepEqual(lost, []);
  assert.equal(bytesIn, upload.update.byteLength, "the member's one upload, counted for the round's record");
  assert.equal(steps.asked, 0);
  assert.deepEqual(requests, []);
  const combined = aggregator.finish()!;
  for (let i = 0; i < DIM; i++) assert.ok(Math.abs(combined[i]! - Math.fround(values[i]!)) <= 1e-7, `weight ${i}`);
  // A request that comes anyway (a leader that missed the notice) gets the same answer, from memory.
  assert.deepEqual(await member.partialOf({ term: TERM, round: ROUND }), {
    node: 'm',
    stored: true,
    contributors: [p1],
    bytesIn: upload.update.byteLength,
  });
  // One write of the partial in all (nothing else in this test SETs a key).
  assert.equal(/cmdstat_set:calls=(\d+)/.exec(await nodes.client().info('commandstats'))?.[1], '1');

  // The member let the round's aggregator go once its partial was stored (before the next round).
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  await holds(
    async () => {
      await new Promise((resolve) => setImmediate(resolve));
      gc();
      return strategy.rounds.length === 1 && strategy.rounds[0]!.deref() === undefined;
    },
    "the member's round aggregator collected",
    3_000,
  );
});
