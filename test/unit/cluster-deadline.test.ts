import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import type { ClusterEventServer, RoundAnnouncement, RoundReply } from '../../coordinator/cluster/cluster-events.ts';
import { clusterKeys } from '../../coordinator/cluster/keys.ts';
import { LeaderRounds } from '../../coordinator/cluster/leader-rounds.ts';
import { PartialExchange } from '../../coordinator/cluster/partial-exchange.ts';
import { answerRoundAnnouncements, heardRound } from '../../coordinator/cluster/round-announce.ts';
import { ManualClock } from '../../coordinator/rounds/clock.ts';
import type { OpenRound } from '../../coordinator/rounds/collection.ts';
import { makeModel } from '../../coordinator/rounds/engine-types.ts';
import { Participants } from '../../coordinator/rounds/participants.ts';
import { remoteRecord } from '../../coordinator/rounds/remote-rounds.ts';
import type { RoundStartMessage } from '../../core/protocol/messages.ts';
import { SeededRandom } from '../../core/random/prng.ts';

const announcement = (remainingMs: number): RoundAnnouncement => ({
  term: 3,
  round: 7,
  modelVersion: 6,
  config: { epochs: 1, batchSize: 16, learningRate: 0.1 },
  remainingMs,
  selected: { b: ['b1'] },
});

/**
 * The leader's LeaderRounds on an engine whose clock is `skewMs` off the
 * machine's, with one live member node `b` holding participant b1: opens a
 * round whose deadline the engine set 30 s ahead on its clock, and returns
 * what the leader announced to the members.
 */
async function announcedBy(engineClock: ManualClock): Promise<RoundAnnouncement> {
  const sent: RoundAnnouncement[] = [];
  const io: ClusterEventServer = {
    on: () => io,
    serverSideEmit: (_event: string, value: RoundAnnouncement) => {
      sent.push(value);
      return true;
    },
  } as unknown as ClusterEventServer;
  const member = { id: 'b', address: 'http://b', participants: 1, lastSeenMs: 0, bytesIn: 0, bytesOut: 0 };
  const leader = new LeaderRounds(
    { isLeader: true, nodeId: 'a', lease: { term: 3 }, status: () => ({ self: 'a', leader: 'a', redis: 'connected', nodes: [member] }) },
    { remoteCandidates: async () => [{ id: 'b1', numExamples: 10, deliveryKey: 'b1', node: 'b' }] },
    // Not reached: the partials are read at the round's close.
    new PartialExchange(new Redis({ lazyConnect: true }), clusterKeys('deadline-test')),
    () => {},
  );
  leader.attach(io, () => {}, { participants: new Participants({ graceMs: 1000, random: new SeededRandom(1) }), clock: engineClock });
  await leader.refresh();
  const open = { round: 7, collection: {} } as unknown as OpenRound;
  const message: RoundStartMessage = {
    round: 7,
    model: { version: 6, weights: new ArrayBuffer(0) },
    config: { epochs: 1, batchSize: 16, learningRate: 0.1 },
    deadline: engineClock.now() + 30_000,
  };
  leader.opened(open, [remoteRecord('b1', 10, 'b1')], message);
  assert.equal(sent.length, 1);
  return sent[0]!;
}

test("the leader announces the time left on its engine's clock, and a member keeps it on its own, whatever either clock's skew", async () => {
  const realNow = Date.now();
  for (const [leaderSkewMs, memberSkewMs] of [
    [-86_400_000, 3_600_000],
    [3_600_000, -1_000],
    [0, 250],
  ] as const) {
    const leaderClock = new ManualClock(realNow + leaderSkewMs);
    const sent = await announcedBy(leaderClock);
    // Converted on the engine's clock, which set the deadline: the whole 30 s, not 30 s plus the skew to the machine's clock.
    assert.equal(sent.remainingMs, 30_000, `leader skew ${leaderSkewMs} ms`);
    // A member whose clock is elsewhere again hears it some ms later: its deadline is 30 s from then on its own clock.
    const memberClock = new ManualClock(realNow + memberSkewMs + 4);
    const heard = heardRound(sent, memberClock.now());
    assert.equal(heard.deadline, memberClock.now() + 30_000, `member skew ${memberSkewMs} ms`);
  }
});

test('a round whose time ran out on the way (remainingMs not positive) ends at once on the member', () => {
  assert.equal(heardRound(announcement(-500), 1_000).deadline, 1_000);
  assert.equal(heardRound(announcement(0), 1_000).deadline, 1_000);
});

test('a member refuses an announcement without a finite, non-negative remainingMs (a leader of an older version sends `deadline`)', async () => {
  const handlers: ((sent: unknown, ack: (reply: RoundReply) => void) => void)[] = [];
  const io = {
    on: (_event: string, handler: (sent: unknown, ack: (reply: RoundReply) => void) => void) => handlers.push(handler),
    serverSideEmit: () => true,
  } as unknown as ClusterEventServer;
  const started: string[] = [];
  answerRoundAnnouncements({
    io,
    nodeId: 'b',
    clock: new ManualClock(),
    versions: { get: async () => new Float32Array(2) },
    modelOf: (version, weights) => makeModel(version, weights),
    send: (id) => started.push(id) > 0,
  });
  const reply = (sent: unknown) => new Promise<RoundReply>((resolve) => handlers[0]!(sent, resolve));
  const { remainingMs: _, ...old } = announcement(30_000);
  for (const sent of [{ ...old, deadline: 1_700_000_030_000 }, announcement(Number.NaN), announcement(-1)]) {
    const answer = await reply(sent);
    assert.ok('refused' in answer, JSON.stringify(answer));
    assert.match(answer.refused, /no valid remainingMs/);
  }
  assert.deepEqual(started, [], 'no participant was sent a round with a NaN deadline');
  const ok = await reply(announcement(0));
  assert.deepEqual(ok, { node: 'b', sent: 1 });
});
