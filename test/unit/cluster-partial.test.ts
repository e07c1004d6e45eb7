import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DpFedAvg } from '../../core/aggregation/dp-fedavg.ts';
import { decodePartial, encodePartial, PARTIAL_HEADER_BYTES } from '../../core/aggregation/partial.ts';
import type { Strategy } from '../../core/aggregation/strategy.ts';
import { RoundDecoder } from '../../core/compression/round-decoder.ts';
import { rotationFor } from '../../core/compression/update-codec.ts';
import { SeededRandom } from '../../core/random/prng.ts';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { buildStrategy } from '../../coordinator/strategies.ts';

/**
 * The cluster's combine (core/aggregation/partial.ts): three nodes each sum
 * their own participants' updates through the strategy's own round
 * aggregator, send the partial as bytes, and the leader combines them. Over
 * several rounds that must give the model one coordinator fed every update
 * gives, server-optimizer moments, DP noise and adaptive clipping included.
 */

const DIM = 257;
const ROUNDS = 4;
const UPDATES_PER_ROUND = 11;

interface Update {
  readonly participantId: string;
  readonly numExamples: number;
  readonly update: Float32Array;
}

function roundUpdates(round: number): Update[] {
  const random = new SeededRandom(1000 + round);
  return Array.from({ length: UPDATES_PER_ROUND }, (_, i) => ({
    participantId: `p${i}`,
    numExamples: 20 + Math.floor(random.next() * 100),
    update: Float32Array.from({ length: DIM }, () => (random.next() - 0.5) * (i % 4 === 0 ? 3 : 0.4)),
  }));
}

function initialWeights(): Float32Array {
  const random = new SeededRandom(5);
  return Float32Array.from({ length: DIM }, () => random.next() - 0.5);
}

/** One coordinator: every update into one aggregator. */
function single(strategy: Strategy): Float32Array[] {
  let weights = initialWeights();
  const models: Float32Array[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const updates = roundUpdates(round);
    const aggregator = strategy.beginRound({ round, globalWeights: weights, claimedExamples: updates.map((u) => u.numExamples) });
    for (const u of updates) aggregator.add(u);
    weights = aggregator.finish()!;
    models.push(weights);
  }
  return models;
}

/** Three nodes: the leader's own participants go into its aggregator, the other two nodes' arrive as partial bytes. */
function cluster(leader: Strategy, followers: readonly Strategy[]): Float32Array[] {
  let weights = initialWeights();
  const models: Float32Array[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const updates = roundUpdates(round);
    const context = { round, globalWeights: weights, claimedExamples: updates.map((u) => u.numExamples) };
    // A follower reads the leader's strategy state (the clip norm) from the store before the round, as a node does.
    for (const follower of followers) follower.loadState?.(leader.saveState?.());
    const aggregators = [leader, ...followers].map((s) => s.beginRound(context));
    for (const [i, u] of updates.entries()) aggregators[i % aggregators.length]!.add(u);
    const [own, ...others] = aggregators;
    for (const node of others) {
      const bytes = encodePartial(node!.partial!());
      assert.equal(bytes.byteLength, PARTIAL_HEADER_BYTES + DIM * 8);
      own!.addPartial!(decodePartial(bytes, DIM));
    }
    weights = own!.finish()!;
    models.push(weights);
  }
  return models;
}

function assertClose(actual: readonly Float32Array[], expected: readonly Float32Array[], what: string): void {
  assert.equal(actual.length, expected.length);
  for (const [r, model] of actual.entries()) {
    for (let i = 0; i < DIM; i++) {
      const e = expected[r]![i]!;
      assert.ok(Math.abs(model[i]! - e) <= 1e-6 * Math.max(1, Math.abs(e)), `${what}: round ${r + 1}, weight ${i}: ${model[i]} vs ${e}`);
    }
  }
  // And the run really moved the model: equal models of an inert run would prove nothing.
  assert.notDeepEqual(actual.at(-1), initialWeights());
}

/**
 * The poisoning defences' reference windows (recent norms and claims) are
 * per node on a cluster (docs/cluster.md), so their thresholds differ from
 * one coordinator's: off here, where the combine itself is compared.
 */
const NO_WINDOWS = ['--outlier-norm-multiple', '0', '--claim-cap-multiple', '0'];
const configured = (flags: readonly string[]) => () => buildStrategy(parseConfig([...NO_WINDOWS, ...flags]) as CoordinatorConfig);

for (const [name, make] of [
  ['fedavg', configured([])],
  ['fedavg with --max-update-norm', configured(['--max-update-norm', '100'])],
  ['fedprox', configured(['--strategy', 'fedprox'])],
  ['fedadam', configured(['--strategy', 'fedadam'])],
  ['fedyogi', configured(['--strategy', 'fedyogi'])],
] as const) {
  test(`${name}: a 3-node combine of partials gives the 1-node model, round after round`, () => {
    assertClose(cluster(make(), [make(), make()]), single(make()), name);
  });
}

test('dp-fedavg, central noise with adaptive clipping: the 3-node combine gives the 1-node model (same noise draws) and the same ε', () => {
  const make = () =>
    new DpFedAvg({
      placement: 'central',
      noiseMultiplier: 0.8,
      clip: { kind: 'adaptive', initialNorm: 5, targetQuantile: 0.5, learningRate: 0.2, countNoiseStd: UPDATES_PER_ROUND / 20 },
      sampleRate: 1,
      expectedClients: UPDATES_PER_ROUND,
      delta: 1e-5,
      uniform: new SeededRandom(42),
    });
  const one = make();
  const leader = make();
  assertClose(cluster(leader, [make(), make()]), single(one), 'dp-fedavg');
  assert.equal(leader.privacy().epsilon, one.privacy().epsilon);
  assert.equal(leader.privacy().clipNorm, one.privacy().clipNorm);
  assert.notEqual(one.privacy().clipNorm, 5, 'adaptive clipping moved the clip norm');
});

test('a partial frame that is not exactly one is refused before it reaches the sum', () => {
  const partial = { sum: Float64Array.from([1, 2, 3]), weight: 4, count: 2, withinClip: 1 };
  const bytes = encodePartial(partial);
  assert.deepEqual(decodePartial(bytes, 3), partial);
  assert.throws(() => decodePartial(bytes, 4), /partial sum has 3 values, the model has 4/);
  assert.throws(() => decodePartial(bytes.subarray(0, bytes.byteLength - 1), 3), /expected 56/);
  const badMagic = bytes.slice();
  badMagic[0] = 0;
  assert.throws(() => decodePartial(badMagic, 3), /bad magic/);
  const overCounted = encodePartial({ ...partial, withinClip: 3 });
  assert.throws(() => decodePartial(overCounted, 3), /withinClip must be an integer in \[0, count\]/);
  const nanWeight = encodePartial({ ...partial, weight: Number.NaN });
  assert.throws(() => decodePartial(nanWeight, 3), /weight must be finite/);
});

test('rules that need each update have no partial: a cluster could not combine them', () => {
  for (const strategy of ['median', 'trimmed-mean', 'krum']) {
    const rule = buildStrategy(
      parseConfig(['--strategy', strategy, '--min-updates', '5', '--clients-per-round', '10']) as CoordinatorConfig,
    );
    const aggregator = rule.beginRound({ round: 1, globalWeights: new Float32Array(3) });
    assert.equal(aggregator.partial, undefined, strategy);
    assert.equal(aggregator.addPartial, undefined, strategy);
  }
});

test('int4 rounds (rotated basis): three nodes partials combine at the leader, which rotates back once, into the 1-node model', () => {
  const compression = { encoding: 'int4', rotationSeed: 1234 } as const;
  const make = () => buildStrategy(parseConfig([...NO_WINDOWS]) as CoordinatorConfig);
  const weights = initialWeights();
  // What each node's decoder hands its aggregator: the update as it arrived, rotated (and padded) with the round's seed.
  const rotation = rotationFor(DIM, compression.rotationSeed);
  const updates = roundUpdates(1).map((u) => ({ ...u, update: rotation.rotate(u.update) }));
  const rotatedLength = updates[0]!.update.length;
  const context = { round: 1, globalWeights: weights, claimedExamples: updates.map((u) => u.numExamples) };
  const begin = (strategy: Strategy) => {
    const decoder = new RoundDecoder(DIM, compression, strategy);
    assert.ok(decoder.aggregatesRotated, 'FedAvg runs the round in the rotated basis');
    return decoder.beginRound(strategy, context);
  };
  const one = begin(make());
  for (const u of updates) one.add(u);
  const expected = one.finish()!;
  const nodes = [make(), make(), make()].map(begin);
  for (const [i, u] of updates.entries()) nodes[i % nodes.length]!.add(u);
  const [leader, ...members] = nodes;
  for (const member of members) leader!.addPartial!(decodePartial(encodePartial(member!.partial!()), rotatedLength));
  assertClose([leader!.finish()!], [expected], 'int4 fedavg');
});
