import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { BufferSeats, type Generation, type SeatRequest } from '../../coordinator/cluster/async-seats.ts';
import { TrainingSlots } from '../../coordinator/cluster/async-slots.ts';
import { FencedWriteRefused } from '../../coordinator/cluster/fenced-store.ts';
import { clusterKeys } from '../../coordinator/cluster/keys.ts';
import { useTestRedis } from '../support/redis.ts';

/**
 * The federation-wide FedBuff buffer's parts on a real Redis (docs/async.md "Cluster mode"):
 * seats in a buffer generation claimed atomically by any node (never more than K, a participant
 * at most once under client-level DP, staleness against the federation's version, fenced by the
 * leader's term), and training slots, at most C federation-wide, handed out longest-waiting first
 * whichever node a participant is on.
 */

const db = useTestRedis();
let federations = 0;

/** A fresh federation (its own keys) with term `term` current, as the lease would leave it. */
async function federation(term = 4): Promise<string> {
  const name = `async-buffer-${++federations}`;
  await db.client.set(clusterKeys(name).term, String(term));
  return name;
}

/** A participant of `node` takes its place in the queue: a grant with no slot free queues it, as every grant queues the ones it names. */
const queue = (node: TrainingSlots, id: string) => node.grant(0, 60_000, [id]);
/** Training slots held now in a federation (TrainingSlots' sorted set). */
const heldSlots = (name: string) => db.client.zcard(`fl:${name}:async:slots`);

/** How many seats each node took in a generation. */
async function seatsByNode(seats: BufferSeats, generation: Generation): Promise<Map<string, number>> {
  const byNode = new Map<string, number>();
  for (const { node } of await seats.seated(generation)) byNode.set(node, (byNode.get(node) ?? 0) + 1);
  return byNode;
}

const request = (over: Partial<SeatRequest> & Pick<SeatRequest, 'participantId' | 'node'>): SeatRequest => ({
  generation: { term: 4, round: 9 },
  baseVersion: 6,
  bufferSize: 3,
  maxStaleness: 5,
  oncePerParticipant: true,
  ...over,
});

test('three nodes claiming at once: exactly K seats, numbered 1..K, one of them fills the generation; the rest wait', async () => {
  const name = await federation();
  const seats = new BufferSeats(db.client, name);
  await seats.open({ term: 4, round: 9 }, 6);
  const nodes = ['a', 'b', 'c'];
  // Twelve updates from twelve participants over three nodes, each node on its own connection, all in flight at once.
  const clients = nodes.map(() => db.client.duplicate());
  try {
    const claims = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        new BufferSeats(clients[i % 3]!, name).claim(request({ participantId: `p${i}`, node: nodes[i % 3]! })),
      ),
    );
    const taken = claims.filter((c) => c.kind === 'seat');
    assert.deepEqual(taken.map((c) => c.kind === 'seat' && c.seat).sort(), [1, 2, 3]);
    assert.equal(taken.filter((c) => c.kind === 'seat' && c.full).length, 1);
    assert.equal(claims.filter((c) => c.kind === 'full').length, 9);
    const byNode = await seatsByNode(seats, { term: 4, round: 9 });
    assert.equal(
      [...byNode.values()].reduce((a, b) => a + b, 0),
      3,
    );
    // What the leader's refresh reads to close a full buffer whose filling node's notice was lost.
    assert.equal(await seats.taken({ term: 4, round: 9 }), 3);
    assert.equal(await seats.taken({ term: 4, round: 10 }), 0);
  } finally {
    for (const client of clients) client.disconnect();
  }
});

test('client-level DP: a participant holds at most one seat per generation, whichever node sends its second update; without DP it may hold two', async () => {
  const name = await federation();
  const seats = new BufferSeats(db.client, name);
  await seats.open({ term: 4, round: 9 }, 6);
  assert.equal((await seats.claim(request({ participantId: 'p', node: 'a' }))).kind, 'seat');
  // It moved to node b and sent again: still the same participant.
  assert.equal((await seats.claim(request({ participantId: 'p', node: 'b' }))).kind, 'duplicate');
  assert.deepEqual(await seats.seated({ term: 4, round: 9 }), [{ node: 'a', participantId: 'p', staleness: 0 }]);

  const plain = await federation();
  const plainSeats = new BufferSeats(db.client, plain);
  await plainSeats.open({ term: 4, round: 9 }, 6);
  const twice = [
    await plainSeats.claim(request({ participantId: 'p', node: 'a', oncePerParticipant: false })),
    await plainSeats.claim(request({ participantId: 'p', node: 'b', oncePerParticipant: false })),
  ];
  assert.deepEqual(
    twice.map((c) => c.kind === 'seat' && c.seat),
    [1, 2],
  );
  assert.deepEqual(
    (await plainSeats.seated({ term: 4, round: 9 })).sort((x, y) => x.node.localeCompare(y.node)),
    [
      { node: 'a', participantId: 'p', staleness: 0 },
      { node: 'b', participantId: 'p', staleness: 0 },
    ],
  );
});

test("staleness is measured against the federation's version: past S refused, at S taken with its staleness, a base from the future refused", async () => {
  const name = await federation();
  const seats = new BufferSeats(db.client, name);
  // The open generation makes version 10 from model 9 (the leader's version, whatever a node has seen).
  await seats.open({ term: 4, round: 12 }, 9);
  const at = (baseVersion: number, participantId: string) =>
    seats.claim(request({ generation: { term: 4, round: 12 }, participantId, node: 'b', baseVersion, maxStaleness: 2, bufferSize: 5 }));
  assert.deepEqual(await at(6, 'old'), { kind: 'stale', staleness: 3, generationVersion: 9 });
  assert.deepEqual(await at(7, 'ok'), { kind: 'seat', seat: 1, full: false, staleness: 2, baseVersion: 9 });
  assert.deepEqual(await at(9, 'fresh'), { kind: 'seat', seat: 2, full: false, staleness: 0, baseVersion: 9 });
  assert.deepEqual(await at(10, 'future'), { kind: 'ahead', generationVersion: 9 });
  assert.deepEqual((await seats.seated({ term: 4, round: 12 })).map((seat) => seat.staleness).sort(), [0, 2]);
  assert.deepEqual(await seatsByNode(seats, { term: 4, round: 12 }), new Map([['b', 2]]));
});

test('a closed generation takes no seat, and a claim for an older one is told the generation open now', async () => {
  const name = await federation();
  const seats = new BufferSeats(db.client, name);
  await seats.open({ term: 4, round: 9 }, 6);
  await seats.close({ term: 4, round: 9 });
  const closed = await seats.claim(request({ participantId: 'p', node: 'a' }));
  assert.deepEqual(closed.kind === 'closed' && closed.current, undefined);
  await seats.open({ term: 4, round: 10 }, 7);
  const older = await seats.claim(request({ participantId: 'p', node: 'a', ticket: closed.kind === 'closed' ? closed.ticket : undefined }));
  assert.deepEqual(older.kind === 'closed' && older.current, { term: 4, round: 10, baseVersion: 7 });
  assert.equal(
    (
      await seats.claim(
        request({
          generation: { term: 4, round: 10 },
          participantId: 'p',
          node: 'a',
          ticket: older.kind === 'closed' ? older.ticket : undefined,
        }),
      )
    ).kind,
    'seat',
  );
  await seats.discard({ term: 4, round: 10 });
  assert.deepEqual(await seatsByNode(seats, { term: 4, round: 10 }), new Map());
});

test("a new term: the deposed leader cannot open or close a generation, claims in its generation are fenced, and the new term's opens none of the old", async () => {
  const name = await federation(4);
  const seats = new BufferSeats(db.client, name);
  await seats.open({ term: 4, round: 9 }, 6);
  await db.client.incr(clusterKeys(name).term); // another node won the lease: term 5
  assert.deepEqual(await seats.claim(request({ participantId: 'p', node: 'a' })), { kind: 'fenced' });
  await assert.rejects(seats.open({ term: 4, round: 10 }, 7), FencedWriteRefused);
  await assert.rejects(seats.close({ term: 4, round: 9 }), FencedWriteRefused);
  // A member that already heard of term 5 finds no generation of it yet (the old one is not its).
  const none = await seats.claim(request({ generation: { term: 5, round: 9 }, participantId: 'p', node: 'a' }));
  assert.equal(none.kind === 'closed' && none.current, undefined);
  assert.equal(none.kind, 'closed');
  await seats.open({ term: 5, round: 11 }, 7);
  const ticket = none.kind === 'closed' ? none.ticket : undefined;
  assert.equal((await seats.claim(request({ generation: { term: 5, round: 11 }, participantId: 'p', node: 'a', ticket }))).kind, 'seat');
});

test("updates that waited take the next generation's seats first, in the order they came, whichever node holds them; a dead node's wait no longer", async () => {
  const name = await federation();
  const seats = new BufferSeats(db.client, name);
  const at = (round: number) => ({ term: 4, round });
  await seats.open(at(9), 6);
  for (const id of ['s1', 's2', 's3']) assert.equal((await seats.claim(request({ participantId: id, node: 'a' }))).kind, 'seat');
  // Full: b's update, then c's, then a's wait, in that order.
  const waiting: { id: string; node: string; ticket: string }[] = [];
  for (const [id, node] of [
    ['w1', 'b'],
    ['w2', 'c'],
    ['w3', 'a'],
    ['w4', 'b'],
  ] as const) {
    const claim = await seats.claim(request({ participantId: id, node }));
    assert.equal(claim.kind, 'full');
    waiting.push({ id, node, ticket: claim.kind === 'full' ? claim.ticket : '' });
  }
  await seats.open(at(10), 7);
  const again = (i: number) => {
    const { id, node, ticket } = waiting[i]!;
    return seats.claim(request({ generation: at(10), participantId: id, node, baseVersion: 7, ticket }));
  };
  // a hears of version 10 first, but its update came third: with K = 3 it still finds a seat; a fresh update finds none.
  assert.equal((await again(2)).kind, 'seat');
  const fresh = await seats.claim(request({ generation: at(10), participantId: 'fresh', node: 'a', baseVersion: 7 }));
  assert.equal(fresh.kind, 'full');
  // b's second update came fourth: the two free seats are w1's and w2's.
  assert.equal((await again(3)).kind, 'full');
  assert.equal((await again(1)).kind, 'seat');
  // Node b dies holding w1 and w4: once the leader purges it, the last seat goes to the next in order, a's fresh update.
  assert.equal(await seats.purge(['a', 'c']), 2);
  assert.deepEqual((await seats.seated(at(10))).map((s) => s.participantId).sort(), ['w2', 'w3']);
  const ticket = fresh.kind === 'full' ? fresh.ticket : undefined;
  assert.equal(
    (await seats.claim(request({ generation: at(10), participantId: 'fresh', node: 'a', baseVersion: 7, ticket }))).kind,
    'seat',
  );
});

test('slots: at most C across nodes, the longest-waiting first whichever node it is on, never overtaken by a node that asks more often', async () => {
  const name = await federation();
  const a = new TrainingSlots(db.client, name, 'a');
  const b = new TrainingSlots(db.client, name, 'b');
  await queue(a, 'a1');
  await queue(b, 'b1');
  await queue(a, 'a2');
  // C = 2: the two free slots belong to a1 and b1; node a can hand out only a1, and a2 does not overtake b1.
  assert.deepEqual(await a.grant(2, 60_000), ['a1']);
  assert.deepEqual(await a.grant(2, 60_000), []);
  assert.deepEqual(await b.grant(2, 60_000), ['b1']);
  assert.deepEqual(await a.grant(2, 60_000), []);
  assert.equal(await heldSlots(name), 2);
  // a1's update arrived: its slot is free, and a1 queues again behind a2, who never had one.
  await a.release('a1');
  await queue(a, 'a1');
  assert.deepEqual(await a.grant(2, 60_000), ['a2']);
  await b.release('b1');
  await queue(b, 'b1');
  assert.deepEqual(await b.grant(2, 60_000), []);
  assert.deepEqual(await a.grant(2, 60_000), ['a1']);
});

test('slots are fair over many turns: with C = 1, five participants on one node and one on another each train in turn', async () => {
  const name = await federation();
  const a = new TrainingSlots(db.client, name, 'a');
  const b = new TrainingSlots(db.client, name, 'b');
  const owner = new Map<string, TrainingSlots>([...['a1', 'a2', 'a3', 'a4', 'a5'].map((id) => [id, a] as const), ['b1', b]]);
  for (const [id, node] of owner) await queue(node, id);
  const turns: string[] = [];
  for (let turn = 0; turn < 18; turn++) {
    // Node a asks first every time (and twice): greed gets it nothing that b's participant waited for.
    const granted = [...((await a.grant(1, 60_000)) ?? []), ...((await a.grant(1, 60_000)) ?? []), ...((await b.grant(1, 60_000)) ?? [])];
    assert.equal(granted.length, 1, `turn ${turn}: exactly one slot in the federation`);
    const id = granted[0]!;
    turns.push(id);
    await owner.get(id)!.release(id);
    await queue(owner.get(id)!, id);
  }
  const counts = new Map<string, number>();
  for (const id of turns) counts.set(id, (counts.get(id) ?? 0) + 1);
  assert.deepEqual([...counts.values()], [3, 3, 3, 3, 3, 3]);
  assert.deepEqual(turns.slice(0, 6), ['a1', 'a2', 'a3', 'a4', 'a5', 'b1']);
});

test('slots: C holds under concurrent grants from three nodes; a timed-out slot goes free; a dead node neither holds slots nor blocks the queue', async () => {
  const name = await federation();
  const clients = ['a', 'b', 'c'].map(() => db.client.duplicate());
  try {
    const nodes = ['a', 'b', 'c'].map((id, i) => new TrainingSlots(clients[i]!, name, id));
    for (let i = 0; i < 12; i++) await queue(nodes[i % 3]!, `p${i}`);
    const granted = (await Promise.all([...nodes, ...nodes].map((node) => node.grant(3, 60_000)))).flat();
    // The first three in the queue are one of each node's: all three get their slot, nobody else.
    assert.deepEqual(granted.sort(), ['p0', 'p1', 'p2']);

    // Held for 150 ms only: past that, the slot goes free at the next grant.
    const short = await federation();
    const x = new TrainingSlots(db.client, short, 'x');
    await queue(x, 'x1');
    await queue(x, 'x2');
    assert.deepEqual(await x.grant(1, 150), ['x1']);
    assert.deepEqual(await x.grant(1, 150), []);
    await sleep(250);
    assert.deepEqual(await x.grant(1, 150), ['x2']);

    // Node b dies holding p1's slot. Its p4 then heads the queue and blocks it (nobody overtakes it) until the leader purges b.
    const [nodeA, , nodeC] = nodes as [TrainingSlots, TrainingSlots, TrainingSlots];
    await nodeA.release('p0');
    assert.deepEqual(await nodeA.grant(3, 60_000), ['p3']);
    await nodeC.release('p2');
    assert.deepEqual(await nodeC.grant(3, 60_000), []);
    assert.equal(await nodeA.purge(['a', 'c']), 4); // p1's slot; p4's, p7's and p10's places
    assert.deepEqual(await nodeC.grant(3, 60_000), ['p5']);
    assert.deepEqual(await nodeA.grant(3, 60_000), ['p6']);
    assert.equal(await heldSlots(name), 3);
  } finally {
    for (const client of clients) client.disconnect();
  }
});

test("a live node's waiting ticket that the leader purged (the node looked dead) comes back at its old place at its next claim", async () => {
  const name = await federation();
  const seats = new BufferSeats(db.client, name);
  const at = (round: number) => ({ term: 4, round });
  await seats.open(at(9), 6);
  for (const id of ['s1', 's2', 's3']) assert.equal((await seats.claim(request({ participantId: id, node: 'a' }))).kind, 'seat');
  const first = await seats.claim(request({ participantId: 'w1', node: 'b' }));
  const second = await seats.claim(request({ participantId: 'w2', node: 'c' }));
  assert.ok(first.kind === 'full' && second.kind === 'full');
  // b was slow to beat: its ticket goes. Its next claim (the generation still full) puts it back where it was.
  assert.equal(await seats.purge(['a', 'c']), 1);
  assert.equal((await seats.claim(request({ participantId: 'w1', node: 'b', ticket: first.ticket }))).kind, 'full');
  await seats.open(at(10), 7);
  const again = (id: string, node: string, ticket: string) =>
    seats.claim(request({ generation: at(10), participantId: id, node, baseVersion: 7, bufferSize: 1, ticket }));
  // One seat: w1 came first, so c's w2 (heard of version 10 first) does not take it.
  assert.equal((await again('w2', 'c', second.ticket)).kind, 'full');
  assert.equal((await again('w1', 'b', first.ticket)).kind, 'seat');
});

test("slots: a live node's queue place that the leader purged comes back at its next grant, ahead of those who waited less", async () => {
  const name = await federation();
  const a = new TrainingSlots(db.client, name, 'a');
  const b = new TrainingSlots(db.client, name, 'b');
  assert.deepEqual(await a.grant(1, 60_000, ['a1']), ['a1']);
  assert.deepEqual(await b.grant(1, 60_000, ['b1']), []);
  // b looked dead for a moment: its b1's place goes; b names b1 again at its next grant (a1 still trains), and b1 is queued again.
  assert.equal(await a.purge(['a']), 1);
  assert.deepEqual(await b.grant(1, 60_000, ['b1']), []);
  await a.release('a1');
  // a1 had a slot, b1 never: b1 is first, and a asking first (and naming a1) does not overtake it.
  assert.deepEqual(await a.grant(1, 60_000, ['a1']), []);
  assert.deepEqual(await b.grant(1, 60_000, ['b1']), ['b1']);
});

test('slots: once the federation finished no node gets a slot; a leader that runs it again opens them', async () => {
  const name = await federation();
  const a = new TrainingSlots(db.client, name, 'a');
  const b = new TrainingSlots(db.client, name, 'b');
  await a.finish();
  assert.equal(await a.grant(2, 60_000, ['a1']), undefined);
  assert.equal(await b.grant(2, 60_000, ['b1']), undefined);
  assert.equal(await heldSlots(name), 0);
  await b.run();
  assert.deepEqual(await a.grant(2, 60_000, ['a1']), ['a1']);
  assert.deepEqual(await b.grant(2, 60_000, ['b1']), ['b1']);
});
