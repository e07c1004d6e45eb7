import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { DpFedAvg } from '../../core/aggregation/dp-fedavg.ts';
import { FedAvg } from '../../core/aggregation/fedavg.ts';
import { FedProx } from '../../core/aggregation/fedprox.ts';
import { NormBoundedStrategy } from '../../core/aggregation/norm-bound.ts';
import { CoordinateMedian, Krum, type KrumRound, selectKth, TrimmedMean } from '../../core/aggregation/robust.ts';
import { FedAdam, FedYogi, ServerOptimizer, type ServerOptimizerState } from '../../core/aggregation/server-optimizers.ts';
import type { Strategy } from '../../core/aggregation/strategy.ts';
import { findStrategy } from '../../core/aggregation/wrapper.ts';
import { shardIndices, subset } from '../../core/data/dataset.ts';
import { buildModel } from '../../core/model/architectures.ts';
import { readWeights } from '../../core/model/weights.ts';
import { ErrorCode, ProtocolError } from '../../core/protocol/errors.ts';
import type { FitConfig } from '../../core/protocol/messages.ts';
import { SeededRandom } from '../../core/random/prng.ts';
import { LocalTrainer } from '../../core/training/local-trainer.ts';
import { ConfigError, parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { buildStrategy } from '../../coordinator/strategies.ts';
import { loadMnistDemo, type DemoData } from '../../coordinator/task/demo-data.ts';
import { initNodeBackend } from '../../coordinator/tf-node.ts';
import { EngineHarness } from '../helpers/engine-harness.ts';

const result = (id: string, update: number[], numExamples = 1) => ({ participantId: id, numExamples, update: Float32Array.from(update) });

/** Runs one round of `strategy` from `global` over `updates` and returns the new weights. */
function aggregate(strategy: Strategy, global: number[], updates: number[][], counts?: number[]): Float32Array | null {
  const agg = strategy.beginRound({ round: 1, globalWeights: Float32Array.from(global) });
  updates.forEach((u, i) => {
    agg.add(result(`c${i}`, u, counts?.[i] ?? 1));
  });
  return agg.finish();
}

function assertClose(actual: ArrayLike<number>, expected: readonly number[], tolerance = 1e-6, what = ''): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= tolerance, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

describe('selectKth', () => {
  it('puts the k-th smallest in place, smaller before and larger after, with duplicates', () => {
    const random = new SeededRandom(5);
    for (let trial = 0; trial < 300; trial++) {
      const n = 1 + random.int(40);
      const values = Float64Array.from({ length: n }, () => random.int(7) - 3 + (random.next() < 0.3 ? random.next() : 0));
      const sorted = Float64Array.from(values).sort();
      const k = random.int(n);
      selectKth(values, 0, n - 1, k);
      assert.equal(values[k], sorted[k]);
      for (let i = 0; i < k; i++) assert.ok(values[i]! <= values[k]!);
      for (let i = k + 1; i < n; i++) assert.ok(values[i]! >= values[k]!);
    }
  });
});

describe('coordinate-wise median and trimmed mean', () => {
  const global = [0.5, 0, 1];
  const u = [
    [1, 10, -3],
    [2, 0, -1],
    [100, 5, 7],
  ];

  it('median, odd and even n (hand-computed)', () => {
    // Medians per coordinate: {1,2,100} -> 2, {10,0,5} -> 5, {-3,-1,7} -> -1.
    assertClose(aggregate(new CoordinateMedian(), global, u)!, [2.5, 5, 0]);
    // With [3,-2,0]: {1,2,3,100} -> 2.5, {-2,0,5,10} -> 2.5, {-3,-1,0,7} -> -0.5.
    assertClose(aggregate(new CoordinateMedian(), global, [...u, [3, -2, 0]])!, [3, 2.5, 0.5]);
  });

  it('is unweighted: a huge claimed example count buys nothing', () => {
    assertClose(aggregate(new CoordinateMedian(), global, u, [1, 1, 1_000_000])!, [2.5, 5, 0]);
  });

  it('trimmed mean drops floor(beta n) values at each end of every coordinate (hand-computed)', () => {
    const five = [...u, [3, -2, 0], [-50, 4, 2]];
    // beta = 0.2, n = 5: one dropped at each end.
    // {-50,1,2,3,100} -> (1+2+3)/3 = 2; {-2,0,4,5,10} -> (0+4+5)/3 = 3; {-3,-1,0,2,7} -> (-1+0+2)/3 = 1/3.
    assertClose(aggregate(new TrimmedMean({ trimFraction: 0.2 }), [0, 0, 0], five)!, [2, 3, 1 / 3]);
    // beta = 0.1, n = 5: floor(0.5) = 0, the plain unweighted mean.
    assertClose(aggregate(new TrimmedMean({ trimFraction: 0.1 }), [0, 0, 0], five)!, [56 / 5, 17 / 5, 5 / 5]);
    // beta = 0.4, n = 5: two dropped at each end leaves the median.
    assertClose(aggregate(new TrimmedMean({ trimFraction: 0.4 }), [0, 0, 0], five)!, [2, 4, 0]);
    const rule = new TrimmedMean({ trimFraction: 0.3 });
    assert.equal(rule.trimCount(10), 3, '0.3 x 10 is 3 even though it is 2.9999999999999996 in floating point');
    assert.throws(() => new TrimmedMean({ trimFraction: 0.5 }), RangeError);
  });

  it('applies a server learning rate, and returns null with no updates', () => {
    assertClose(aggregate(new CoordinateMedian({ serverLearningRate: 0.5 }), global, u)!, [1.5, 2.5, 0.5]);
    assert.equal(aggregate(new CoordinateMedian(), global, []), null);
    const agg = new CoordinateMedian().beginRound({ round: 1, globalWeights: new Float32Array(2) });
    assert.throws(() => agg.add(result('a', [1, 2, 3])), RangeError);
  });

  it('keeps a reference to each update, not a copy', () => {
    const agg = new CoordinateMedian().beginRound({ round: 1, globalWeights: new Float32Array(2) });
    const update = Float32Array.from([1, 2]);
    agg.add({ participantId: 'a', numExamples: 1, update });
    update[0] = 7; // the engine never does this; it shows what is buffered
    assertClose(agg.finish()!, [7, 2]);
  });
});

describe('Krum and Multi-Krum', () => {
  // n = 5, f = 1: each score sums the n - f - 2 = 2 smallest squared distances.
  const points = [
    [0, 0], // a: to b 1, c 2, d 100, e 400 -> 3
    [1, 0], // b: a 1, c 1, d 81, e 401 -> 2
    [1, 1], // c: a 2, b 1, d 82, e 442 -> 3
    [10, 0], // d: c 82, b 81 -> 163
    [0, -20], // e: a 400, b 401 -> 801
  ];

  it('Krum applies the best-scored update (hand-computed)', () => {
    const round = new Krum({ byzantine: 1 }).beginRound({ round: 1, globalWeights: Float32Array.from([5, 5]) });
    points.forEach((p, i) => {
      round.add(result('abcde'[i]!, p));
    });
    assertClose(round.finish()!, [6, 5]);
    assert.deepEqual(round.selected, ['b']);
    assert.deepEqual(Array.from(round.scores), [3, 2, 3, 163, 801]);
  });

  it('Multi-Krum averages the m best (ties by arrival), m = n - f by default', () => {
    // m = 2: b, then a (a and c tie at 3; a came first) -> mean [0.5, 0].
    assertClose(aggregate(new Krum({ byzantine: 1, multi: 2 }), [0, 0], points)!, [0.5, 0]);
    // m = n - f = 4: b, a, c, d -> [(1+0+1+10)/4, (0+0+1+0)/4].
    assertClose(aggregate(new Krum({ byzantine: 1, multiKrum: true }), [0, 0], points)!, [3, 0.25]);
    assert.equal(new Krum({ byzantine: 1, multiKrum: true }).name, 'multi-krum (f=1, m=n-f)');
  });

  it('picks from the honest cluster with f scaled and sign-flipped attackers', () => {
    const random = new SeededRandom(11);
    const dim = 50;
    const direction = Float32Array.from({ length: dim }, () => random.next() - 0.5);
    const honest = Array.from({ length: 6 }, () => Array.from(direction, (x) => x + 0.05 * (random.next() - 0.5)));
    const updates = [...honest, honest[0]!.map((x) => 100 * x), honest[1]!.map((x) => -x)];
    const ids = updates.map((_, i) => (i < 6 ? `honest${i}` : `attacker${i}`));
    const krum = new Krum({ byzantine: 2 }).beginRound({ round: 1, globalWeights: new Float32Array(dim) });
    updates.forEach((u, i) => {
      krum.add(result(ids[i]!, u));
    });
    const out = krum.finish()!;
    assert.equal(krum.selected.length, 1);
    assert.match(krum.selected[0]!, /^honest/);
    for (let j = 0; j < dim; j++) assert.ok(Math.abs(out[j]! - direction[j]!) < 0.05);
    const multi: KrumRound = new Krum({ byzantine: 2, multiKrum: true }).beginRound({ round: 1, globalWeights: new Float32Array(dim) });
    updates.forEach((u, i) => {
      multi.add(result(ids[i]!, u));
    });
    multi.finish();
    assert.deepEqual([...multi.selected].sort(), ids.slice(0, 6));
  });

  it('does not aggregate a round with fewer than 2f + 3 updates', () => {
    assert.equal(aggregate(new Krum({ byzantine: 2 }), [0, 0], points.slice(0, 5)!.concat([[1, 2]])), null);
    assert.throws(() => new Krum({ byzantine: -1 }), RangeError);
    assert.throws(() => new Krum({ byzantine: 1, multi: 0 }), RangeError);
  });
});

describe('FedAdam and FedYogi', () => {
  // x0 = [1, -1]; round 1's mean update [0.5, -0.25], round 2's [0.03125, 0.5] (exact in float32).
  // Defaults: eta = 0.01, beta1 = 0.9, beta2 = 0.99, tau = 1e-3; m starts at 0, v at tau^2 = 1e-6.
  const x0 = [1, -1];
  const d1 = [0.5, -0.25];
  const d2 = [0.03125, 0.5];

  function twoRounds(strategy: Strategy): [Float32Array, Float32Array] {
    // Two participants whose weighted mean is d (counts 1 and 3), so the base really is FedAvg's weighted mean.
    const round = (global: ArrayLike<number>, d: number[]) =>
      aggregate(strategy, Array.from(global), [d.map((x) => x + 3), d.map((x) => x - 1)], [1, 3])!;
    const x1 = round(x0, d1);
    return [x1, round(x1, d2)];
  }

  it('FedAdam: two steps (hand-computed)', () => {
    const [x1, x2] = twoRounds(new FedAdam());
    // Step 1, coordinate 0: m = 0.1 * 0.5 = 0.05; v = 0.99e-6 + 0.01 * 0.25 = 0.00250099;
    // x = 1 + 0.01 * 0.05 / (sqrt(0.00250099) + 0.001) = 1.0098020. Coordinate 1 likewise: -1.0096081.
    assertClose(
      x1,
      [1 + (0.01 * 0.05) / (Math.sqrt(0.00250099) + 1e-3), -1 + (0.01 * -0.025) / (Math.sqrt(0.00062599) + 1e-3)],
      1e-6,
      'x1',
    );
    assertClose(x1, [1.009802, -1.0096081], 1e-6, 'x1');
    // Step 2, coordinate 0: m = 0.9 * 0.05 + 0.1 * 0.03125 = 0.048125; v = 0.99 * 0.00250099 + 0.01 * 0.0009765625 = 0.002485745725.
    const m2 = [0.048125, 0.9 * -0.025 + 0.1 * 0.5];
    const v2 = [0.002485745725, 0.99 * 0.00062599 + 0.01 * 0.25];
    assertClose(
      x2,
      [x1[0]! + (0.01 * m2[0]!) / (Math.sqrt(v2[0]!) + 1e-3), x1[1]! + (0.01 * m2[1]!) / (Math.sqrt(v2[1]!) + 1e-3)],
      1e-6,
      'x2',
    );
    assertClose(x2, [1.0192648, -1.0047712], 1e-6, 'x2');
  });

  it('FedYogi: two steps, the second moment moving additively (hand-computed)', () => {
    const [x1, x2] = twoRounds(new FedYogi());
    // Step 1: v - d^2 < 0, so v = 1e-6 + 0.01 * 0.25 = 0.002501 (Adam: 0.00250099).
    assertClose(x1, [1 + (0.01 * 0.05) / (Math.sqrt(0.002501) + 1e-3), -1 + (0.01 * -0.025) / (Math.sqrt(0.000626) + 1e-3)], 1e-6, 'x1');
    // Step 2, coordinate 0: d^2 = 0.0009765625 < v, so v shrinks: 0.002501 - 0.01 * 0.0009765625 = 0.002491234375.
    // Coordinate 1: d^2 = 0.25 > v, so v grows: 0.000626 + 0.0025 = 0.003126.
    const m2 = [0.048125, 0.9 * -0.025 + 0.1 * 0.5];
    const v2 = [0.002491234375, 0.003126];
    assertClose(
      x2,
      [x1[0]! + (0.01 * m2[0]!) / (Math.sqrt(v2[0]!) + 1e-3), x1[1]! + (0.01 * m2[1]!) / (Math.sqrt(v2[1]!) + 1e-3)],
      1e-6,
      'x2',
    );
    assertClose(x2, [1.0192545, -1.0047759], 1e-6, 'x2');
  });

  it('the optimizer state round-trips through JSON and the run continues identically', () => {
    const yogi = new FedYogi({ learningRate: 0.05 });
    twoRounds(yogi);
    const state = JSON.parse(JSON.stringify(yogi.toJSON())) as ServerOptimizerState;
    assert.equal(state.steps, 2);
    assert.equal(state.rule, 'yogi');
    const restored = ServerOptimizer.fromJSON(state);
    assert.deepEqual(restored.toJSON(), yogi.toJSON());
    const third = (s: Strategy) => aggregate(s, [1.25, -0.75], [[0.1, 0.2]])!;
    assert.deepEqual(Array.from(third(restored)), Array.from(third(yogi)));
    // Through the checkpoint hooks as well, into a fresh optimizer with the same settings.
    const fresh = new FedYogi({ learningRate: 0.05 });
    fresh.loadState!(JSON.parse(JSON.stringify(yogi.saveState!())));
    assert.deepEqual(fresh.toJSON(), yogi.toJSON());
    // State of another optimizer, or damaged state, is refused.
    assert.throws(() => new FedAdam({ learningRate: 0.05 }).restore(state), /rule/);
    assert.throws(() => new FedYogi().restore(state), /learningRate/);
    assert.throws(() => ServerOptimizer.fromJSON({ ...state, v: [1] }), /equal lengths/);
    assert.equal(new FedAdam().toJSON().m, null);
  });

  it('takes a secure aggregation sum exactly when its base rule does', () => {
    const context = { round: 1, globalWeights: Float32Array.from([1, -1]) };
    const overFedAvg = new FedAdam().beginRound(context);
    assert.equal(typeof overFedAvg.addSum, 'function');
    overFedAvg.addSum!(Float64Array.from([1, -0.5]), 2);
    assert.equal(overFedAvg.count, 2);
    assert.equal(new FedAdam({ base: new CoordinateMedian() }).beginRound(context).addSum, undefined);
  });

  it('takes no step when the round produced no aggregate', () => {
    const adam = new FedAdam();
    assert.equal(aggregate(adam, [0, 0], []), null);
    assert.equal(adam.steps, 0);
  });
});

describe('update norm bound', () => {
  it('rejects an update above the bound with UPDATE_TOO_LARGE and accepts one exactly at it', () => {
    const strategy = new NormBoundedStrategy(new FedAvg(), 5);
    const agg = strategy.beginRound({ round: 1, globalWeights: new Float32Array(2) });
    agg.add(result('ok', [3, 4])); // norm exactly 5
    assert.throws(
      () => agg.add(result('big', [3, 4.001])),
      (error: unknown) =>
        error instanceof ProtocolError && error.code === ErrorCode.UpdateTooLarge && /5\.00080.* above the bound 5/.test(error.message),
    );
    assert.equal(agg.count, 1);
    assertClose(agg.finish()!, [3, 4]);
    assert.throws(() => new NormBoundedStrategy(new FedAvg(), 0), RangeError);
  });

  it('the engine answers UPDATE_TOO_LARGE and takes the sender out of the round', async () => {
    const h = new EngineHarness({ minClients: 2, clientsPerRound: 2 }, 4, new NormBoundedStrategy(new FedAvg(), 1));
    const a = h.join();
    const b = h.join();
    h.engine.start();
    await h.settle();
    const ack = h.engine.submitUpdate(b, h.update(1, [2, 0, 0, 0]));
    assert.equal(ack.ok ? undefined : ack.error.code, ErrorCode.UpdateTooLarge);
    assert.ok(h.engine.submitUpdate(a, h.update(1, [0.5, 0, 0, 0])).ok);
    await h.settle();
    const record = h.engine.status().history[0]!;
    assert.equal(record.outcome, 'aggregated');
    assert.equal(record.rejected, 1);
    assert.equal(record.received, 1);
    assert.equal(h.engine.status().rejections[ErrorCode.UpdateTooLarge], 1);
    assert.ok(Math.abs(h.engine.globalModel.weights[0]! - 0.5) < 1e-6);
  });

  it('wrappers pass on selection, privacy, release policy and checkpoint state', () => {
    const options = {
      placement: 'central',
      noiseMultiplier: 1,
      clip: { kind: 'fixed', norm: 1 },
      sampleRate: 0.5,
      expectedClients: 2,
      delta: 1e-5,
      uniform: new SeededRandom(1),
    } as const;
    const dp = new DpFedAvg({ ...options, selectionUniform: new SeededRandom(2) });
    const reference = new DpFedAvg({ ...options, selectionUniform: new SeededRandom(2) });
    const wrapped = new NormBoundedStrategy(new FedProx({ proximalMu: 0.1, base: dp }), 3);
    assert.equal(wrapped.releasesEveryRound, true);
    assert.equal(wrapped.privacy!().level, 'client');
    assert.ok(wrapped.saveState && wrapped.loadState);
    const picked = wrapped.select([1, 2, 3, 4, 5, 6, 7, 8], 8, new SeededRandom(2));
    assert.deepEqual(picked, reference.select([1, 2, 3, 4, 5, 6, 7, 8], 8, new SeededRandom(2)), 'Poisson sampling, not the default');
    assert.equal(findStrategy(wrapped, DpFedAvg), dp);
    const plain = new NormBoundedStrategy(new FedAvg(), 1);
    assert.equal(plain.privacy, undefined);
    assert.equal(plain.saveState, undefined);
    assert.equal(plain.releasesEveryRound, false);
  });
});

describe('FedProx', () => {
  let demo: DemoData;
  before(async () => {
    await initNodeBackend();
    demo = await loadMnistDemo();
  });
  const spec = { architecture: 'mlp' as const, inputShape: [784], numClasses: 10 };
  const base: FitConfig = { epochs: 2, batchSize: 32, learningRate: 0.1 };

  it('sends proximalMu in the fit config and aggregates like FedAvg', () => {
    const prox = new FedProx({ proximalMu: 0.01 });
    assert.deepEqual(prox.configureFit(1, base), { ...base, proximalMu: 0.01 });
    assertClose(
      aggregate(
        prox,
        [1, 2],
        [
          [1, 0],
          [-1, 4],
        ],
        [10, 30],
      )!,
      [0.5, 5],
    );
    assert.equal(prox.name, 'fedprox (μ=0.01)');
    assert.throws(() => new FedProx({ proximalMu: 0 }), RangeError);
  });

  /** Trains once from `start` with Math.random seeded, so the batch order is the same for every call. */
  async function trainSeeded(trainer: LocalTrainer, start: Float32Array, config: FitConfig) {
    const original = Math.random;
    const random = new SeededRandom(99);
    Math.random = () => random.next();
    try {
      return await trainer.train(start, config);
    } finally {
      Math.random = original;
    }
  }

  const norm = (x: Float32Array) => Math.sqrt(x.reduce((s, v) => s + v * v, 0));

  it('LocalTrainer: the proximal term pulls the weights towards the global model, and mu = 0 changes nothing', async () => {
    const data = subset(demo.train, shardIndices(demo.train.labels, { index: 1, count: 16, skew: 'iid' }));
    const trainer = new LocalTrainer(spec, data);
    const model = buildModel(spec, 3);
    const start = await readWeights(model);
    model.dispose();
    const plain = await trainSeeded(trainer, start, base);
    const zero = await trainSeeded(trainer, start, { ...base, proximalMu: 0 });
    assert.deepEqual(Array.from(zero.update), Array.from(plain.update), 'mu = 0 is plain training, bit for bit');
    const prox = await trainSeeded(trainer, start, { ...base, proximalMu: 1 });
    assert.ok(norm(prox.update) < 0.8 * norm(plain.update), `|update| with mu = 1: ${norm(prox.update)}, without: ${norm(plain.update)}`);
    assert.ok(prox.metrics.accuracy > 0.5, `still learns: ${prox.metrics.accuracy}`);
    await assert.rejects(trainer.train(start, { ...base, proximalMu: -1 }), RangeError);
    trainer.dispose();
  });

  it('LocalTrainer with a proximal term leaks no tensors', async () => {
    const data = subset(
      demo.train,
      Uint32Array.from({ length: 64 }, (_, i) => i),
    );
    const trainer = new LocalTrainer(spec, data);
    const model = buildModel(spec);
    let weights = await readWeights(model);
    model.dispose();
    const counts: number[] = [];
    for (let round = 1; round <= 6; round++) {
      const r = await trainer.train(weights, { epochs: 1, batchSize: 16, learningRate: 0.05, proximalMu: 0.1 });
      weights = weights.map((w, i) => w + r.update[i]!);
      counts.push(tf.memory().numTensors);
    }
    assert.equal(counts[5], counts[1], `tensor counts per round: ${counts.join(',')}`);
    trainer.dispose();
  });
});

describe('--strategy and its flags', () => {
  // Client-level DP needs an admin token (the status names who took part in each round).
  const parse = (...flags: string[]) =>
    parseConfig(flags.includes('--client-dp') ? [...flags, '--admin-token', 'robust-aggregation-test-admin'] : flags) as CoordinatorConfig;
  const fails = (pattern: RegExp, ...flags: string[]) =>
    assert.throws(
      () => parseConfig(flags),
      (e: unknown) => e instanceof ConfigError && pattern.test(e.message),
    );
  const base = (): FitConfig => ({ epochs: 1, batchSize: 8, learningRate: 0.1 });

  it('builds each strategy from its flags', () => {
    assert.equal(buildStrategy(parse()).name, 'fedavg');
    assert.equal(buildStrategy(parse('--strategy', 'median')).name, 'coordinate-wise median');
    assert.equal(
      buildStrategy(parse('--strategy', 'trimmed-mean', '--trim-fraction', '0.25')).name,
      'coordinate-wise trimmed mean (β=0.25)',
    );
    assert.equal(buildStrategy(parse('--strategy', 'krum', '--byzantine', '2', '--min-updates', '7')).name, 'krum (f=2)');
    assert.equal(buildStrategy(parse('--strategy', 'multi-krum', '--multi-krum', '3', '--min-updates', '5')).name, 'multi-krum (f=1, m=3)');
    assert.equal(buildStrategy(parse('--strategy', 'fedprox')).configureFit(1, base()).proximalMu, 0.01);
    assert.equal(buildStrategy(parse('--strategy', 'fedprox', '--proximal-mu', '0.5')).configureFit(1, base()).proximalMu, 0.5);
    // The poisoning defences (docs/poisoning.md) wrap every strategy that sees individual updates.
    const adam = findStrategy(buildStrategy(parse('--strategy', 'fedadam')), ServerOptimizer)!;
    assert.equal(adam.rule, 'adam');
    assert.equal(adam.learningRate, 0.01);
    const yogi = buildStrategy(parse('--strategy', 'fedyogi', '--server-learning-rate', '0.1', '--max-update-norm', '10'));
    assert.ok(yogi instanceof NormBoundedStrategy);
    assert.equal(findStrategy(yogi, ServerOptimizer)!.learningRate, 0.1);
    const dpAdam = buildStrategy(
      parse('--strategy', 'fedadam', '--client-dp', 'central', '--client-noise-multiplier', '1', '--client-sample-rate', '0.5'),
    );
    assert.ok(findStrategy(dpAdam, DpFedAvg));
    assert.ok(dpAdam.privacy);
  });

  it('refuses bad values and combinations with a reason', () => {
    fails(/--strategy must be one of fedavg, median/, '--strategy', 'mean');
    fails(
      /cannot be combined with --client-dp/,
      '--strategy',
      'median',
      '--client-dp',
      'central',
      '--client-noise-multiplier',
      '1',
      '--client-sample-rate',
      '0.5',
    );
    fails(/2f \+ 3 = 5 updates per round: raise --min-updates \(now 1\)/, '--strategy', 'krum');
    fails(/--multi-krum 5 is more than n − f = 4/, '--strategy', 'multi-krum', '--multi-krum', '5', '--min-updates', '5');
    fails(/trims ⌊0.1 × 8⌋ = 0 updates/, '--strategy', 'trimmed-mean', '--clients-per-round', '8');
    fails(/--trim-fraction must be a number in \[0, 0.5\)/, '--strategy', 'trimmed-mean', '--trim-fraction', '0.5');
    fails(/--byzantine applies to --strategy krum or multi-krum, not median/, '--strategy', 'median', '--byzantine', '1');
    fails(/--proximal-mu applies to --strategy fedprox/, '--proximal-mu', '0.1');
    fails(/DP-SGD trainer does not add the proximal term/, '--strategy', 'fedprox', '--dp-sgd-clip', '1', '--dp-sgd-noise-multiplier', '1');
    fails(/--max-update-norm 0.5 is below the norm participants clip to \(1\)/, '--max-update-norm', '0.5', '--clip-norm', '1');
    fails(/--max-update-norm must be a positive number, got "0"/, '--max-update-norm', '0');
    fails(/--server-learning-rate must be a positive number/, '--server-learning-rate', 'fast');
  });
});
