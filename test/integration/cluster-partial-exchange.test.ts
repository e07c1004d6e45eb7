import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FedAvg } from '../../core/aggregation/fedavg.ts';
import { encodePartial, PARTIAL_HEADER_BYTES } from '../../core/aggregation/partial.ts';
import { SeededRandom } from '../../core/random/prng.ts';
import { clusterKeys } from '../../coordinator/cluster/keys.ts';
import { combinePartials, PartialExchange } from '../../coordinator/cluster/partial-exchange.ts';
import { useTestRedis } from '../support/redis.ts';

/**
 * The partials of a round through a real Redis (coordinator/cluster/partial-exchange.ts): members write
 * their sums once under (term, round, node); the leader reads and combines them. A missing or malformed
 * partial is left out whole and named, and never changes what the good ones sum to.
 */

const DIM = 33;
const keys = clusterKeys('partial-exchange-test');
const db = useTestRedis();

function updates(seed: number, count: number) {
  const random = new SeededRandom(seed);
  return Array.from({ length: count }, (_, i) => ({
    participantId: `n${seed}-p${i}`,
    numExamples: 10 + Math.floor(random.next() * 90),
    update: Float32Array.from({ length: DIM }, () => random.next() - 0.5),
  }));
}

const globalWeights = new Float32Array(DIM).fill(0.25);
const strategy = () => new FedAvg({});
const begin = (claims: readonly number[]) => strategy().beginRound({ round: 3, globalWeights, claimedExamples: claims });

test('three members write once; the leader combines what arrived into the model one aggregator gives, and names the missing and the malformed', async () => {
  const exchange = new PartialExchange(db.client, keys);
  const term = 7;
  const own = updates(1, 4);
  const memberB = updates(2, 5);
  const memberC = updates(3, 3);
  const claims = [...own, ...memberB, ...memberC].map((u) => u.numExamples);

  const b = begin(claims);
  for (const u of memberB) b.add(u);
  assert.equal(await exchange.write(term, 3, 'b', b.partial!()), true);
  // Written once: a second write of the same node's round (a retried ack, a bug) never replaces the first.
  const poisoned = begin(claims);
  poisoned.add({ ...memberB[0]!, update: new Float32Array(DIM).fill(1e6) });
  assert.equal(await exchange.write(term, 3, 'b', poisoned.partial!()), false);

  const c = begin(claims);
  for (const u of memberC) c.add(u);
  const cBytes = encodePartial(c.partial!());
  // Node c's frame is cut short in Redis: refused whole by the frame's checks.
  await db.client.set(keys.partial(term, 3, 'c'), Buffer.from(cBytes.subarray(0, cBytes.byteLength - 8)));

  const leader = begin(claims);
  for (const u of own) leader.add(u);
  const read = await exchange.read(term, 3, ['b', 'c', 'd'], DIM);
  assert.equal(read[0]!.kind, 'ok');
  assert.equal(read[0]!.kind === 'ok' && read[0]!.bytes, PARTIAL_HEADER_BYTES + DIM * 8);
  assert.equal(read[1]!.kind, 'malformed');
  assert.match(read[1]!.kind === 'malformed' ? read[1]!.reason : '', /partial frame has \d+ bytes, expected/);
  assert.deepEqual(read[2], { kind: 'missing', node: 'd' });
  const lines: string[] = [];
  const lost = combinePartials(leader, read, 3, (line) => lines.push(line));
  assert.deepEqual(lost, ['c', 'd']);
  assert.match(lines.join('\n'), /node c's partial is refused .*count as dropped/);
  assert.match(lines.join('\n'), /node d wrote no partial/);
  const combined = leader.finish()!;

  // One aggregator fed the leader's and node b's updates (node c's are lost with its partial).
  const one = begin(claims);
  for (const u of [...own, ...memberB]) one.add(u);
  const expected = one.finish()!;
  for (let i = 0; i < DIM; i++) assert.ok(Math.abs(combined[i]! - expected[i]!) <= 1e-6, `weight ${i}: ${combined[i]} vs ${expected[i]}`);
  assert.notDeepEqual(combined, globalWeights);

  // Another term's round of the same number is another key: a deposed leader's partials never mix in.
  assert.deepEqual(await exchange.read(term + 1, 3, ['b'], DIM), [{ kind: 'missing', node: 'b' }]);
  await exchange.discard(term, 3, ['b', 'c']);
  assert.equal(await db.client.exists(keys.partial(term, 3, 'b'), keys.partial(term, 3, 'c')), 0);
  assert.ok((await db.client.pttl(keys.partial(term, 3, 'b'))) < 0);
});

test('a partial of the wrong length is refused by the leader, not added', async () => {
  const exchange = new PartialExchange(db.client, keys);
  await exchange.write(9, 1, 'x', { sum: new Float64Array(DIM + 1), weight: 1, count: 1, withinClip: 0 });
  const [member] = await exchange.read(9, 1, ['x'], DIM);
  assert.equal(member!.kind, 'malformed');
  assert.match(member!.kind === 'malformed' ? member!.reason : '', /partial sum has 34 values, the model has 33/);
});
