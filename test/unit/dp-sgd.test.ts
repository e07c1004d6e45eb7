import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { subset, type Dataset } from '../../core/data/dataset.ts';
import { buildModel } from '../../core/model/architectures.ts';
import { readWeights, writeWeights } from '../../core/model/weights.ts';
import { DpSgdTrainer, dpStepsPerEpoch, noisyGradientSum, poissonSample } from '../../core/privacy/dp-sgd.ts';
import { DpSgdRoundTrainer } from '../../core/participant/trainers.ts';
import { clippedGradientSum, disposeClippedSum } from '../../core/privacy/per-example-gradients.ts';
import { GaussianSampler } from '../../core/privacy/update-privacy.ts';
import type { ModelSpec } from '../../core/protocol/messages.ts';
import { SeededRandom, type UniformSource } from '../../core/random/prng.ts';
import { TrainingAborted } from '../../core/training/local-trainer.ts';
import { featureTensor } from '../../core/training/data-tensors.ts';
import { loadMnistDemo, type DemoData } from '../../coordinator/task/demo-data.ts';
import { initNodeBackend } from '../../coordinator/tf-node.ts';

const spec: ModelSpec = { architecture: 'mlp', inputShape: [784], numClasses: 10 };

function first(data: Dataset, n: number): Dataset {
  return subset(
    data,
    Uint32Array.from({ length: n }, (_, i) => i),
  );
}

async function initialWeights(seed = 1): Promise<Float32Array> {
  const m = buildModel(spec, seed);
  const w = await readWeights(m);
  m.dispose();
  return w;
}

function meanStd(values: ArrayLike<number>): { mean: number; std: number } {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]!;
  const mean = sum / values.length;
  let sq = 0;
  for (let i = 0; i < values.length; i++) sq += (values[i]! - mean) ** 2;
  return { mean, std: Math.sqrt(sq / (values.length - 1)) };
}

/** A uniform source that never selects an example (u ≥ q for every q < 1), counting its draws. */
class NeverSample implements UniformSource {
  draws = 0;
  next(): number {
    this.draws++;
    return 1 - 2 ** -40;
  }
}

describe('DP-SGD', () => {
  let demo: DemoData;
  before(async () => {
    assert.equal(await initNodeBackend(), 'wasm');
    demo = await loadMnistDemo();
  });

  it('adds N(0, (σC)²) per coordinate to the clipped sum: std σC, not σ²C² or σ or C', async () => {
    const sigma = 1.3;
    const C = 0.7;
    const model = buildModel(spec);
    const batch = first(demo.train, 16);
    const x = featureTensor(batch);
    const y = tf.tidy(() => tf.oneHot(tf.tensor1d(batch.labels, 'int32'), 10).toFloat());
    const clipped = clippedGradientSum(model, x, y, C);
    const noisy = noisyGradientSum(clipped.sums, C, sigma, 16, new GaussianSampler(new SeededRandom(5)));
    const diffs: number[] = [];
    for (let k = 0; k < noisy.length; k++) {
      const a = await noisy[k]!.data();
      const b = await clipped.sums[k]!.data();
      for (let i = 0; i < a.length; i++) diffs.push(a[i]! - b[i]!);
    }
    assert.ok(diffs.length > 100_000);
    const { mean, std } = meanStd(diffs);
    // 101,770 draws: the std's relative standard error is ~0.2%.
    assert.ok(Math.abs(std - sigma * C) < 0.015 * sigma * C, `std ${std}, expected ${sigma * C}`);
    assert.ok(Math.abs(mean) < 0.02, `mean ${mean}`);
    for (const wrong of [sigma * sigma * C * C, sigma, C, sigma * sigma * C])
      assert.ok(Math.abs(std - wrong) > 0.05, `std ${std} is not ${wrong}`);
    // σ = 0 adds nothing.
    const exact = noisyGradientSum(clipped.sums, C, 0, 16, new GaussianSampler(new SeededRandom(5)));
    assert.deepEqual(await exact[0]!.data(), await clipped.sums[0]!.data());
    tf.dispose([...noisy, ...exact, x, y]);
    disposeClippedSum(clipped);
    model.dispose();
  });

  it('an empty Poisson batch still takes a step of pure noise (what the accountant assumes)', async () => {
    const sigma = 1.3;
    const C = 0.7;
    const lr = 0.5;
    const B = 16;
    const never = new NeverSample();
    const data = first(demo.train, 64);
    const trainer = new DpSgdTrainer(spec, data, {
      clipNorm: C,
      noiseMultiplier: sigma,
      expectedBatchSize: B,
      samplingSource: never,
      noiseSource: new SeededRandom(9),
    });
    const w0 = await initialWeights();
    const result = await trainer.train(w0, { epochs: 1, batchSize: 999, learningRate: lr });
    assert.equal(result.steps, 4);
    assert.equal(never.draws, 4 * 64, 'one uniform per example per step');
    assert.ok(Number.isNaN(result.metrics.loss), 'no example was sampled');
    // update = −(lr/B) Σ over 4 steps of N(0, σ²C²) per coordinate: std (lr/B)·σC·2.
    const { mean, std } = meanStd(result.update);
    const expected = (lr / B) * sigma * C * 2;
    assert.ok(Math.abs(std - expected) < 0.015 * expected, `std ${std}, expected ${expected}`);
    assert.ok(Math.abs(mean) < 0.02 * expected, `mean ${mean}`);
    trainer.dispose();
  });

  it('Poisson sampling: each example independently with probability q, mean batch qn and binomial variance', () => {
    const n = 1000;
    const q = 0.05;
    const random = new SeededRandom(3);
    const sizes: number[] = [];
    for (let t = 0; t < 2000; t++) {
      const picked = poissonSample(n, q, random);
      for (let i = 1; i < picked.length; i++) assert.ok(picked[i]! > picked[i - 1]!, 'sorted, distinct');
      if (picked.length > 0) assert.ok(picked[0]! >= 0 && picked[picked.length - 1]! < n);
      sizes.push(picked.length);
    }
    const { mean, std } = meanStd(sizes);
    // E = qn = 50, Var = qn(1−q) = 47.5: a fixed-size batch would have variance 0.
    assert.ok(Math.abs(mean - q * n) < 0.7, `mean batch ${mean}`);
    assert.ok(Math.abs(std * std - q * n * (1 - q)) < 0.12 * q * n * (1 - q), `variance ${std * std}`);
    assert.equal(poissonSample(10, 0, random).length, 0);
    assert.equal(poissonSample(10, 1, random).length, 10);
    assert.throws(() => poissonSample(10, 1.5, random), RangeError);
  });

  it('counts steps as epochs × round(n / B), reports q, and caps B at n', async () => {
    assert.equal(dpStepsPerEpoch(1000, 64), 16); // 15.6
    assert.equal(dpStepsPerEpoch(100, 30), 3); // 3.33
    assert.equal(dpStepsPerEpoch(100, 100), 1);
    assert.equal(dpStepsPerEpoch(100, 300), 1);
    const data = first(demo.train, 50);
    const w0 = await initialWeights();
    const trainer = new DpSgdTrainer(spec, data, {
      clipNorm: 1,
      noiseMultiplier: 1,
      samplingSource: new SeededRandom(1),
      noiseSource: new SeededRandom(2),
    });
    const a = await trainer.train(w0, { epochs: 3, batchSize: 8, learningRate: 0.1 });
    assert.equal(a.steps, 3 * 6);
    assert.equal(a.samplingRate, 8 / 50);
    assert.equal(a.expectedBatchSize, 8);
    assert.equal(a.path, 'fast');
    assert.equal(a.numExamples, 50);
    assert.ok(a.update.some((v) => v !== 0));
    // Settings can change per round; a batch larger than the shard becomes q = 1.
    const b = await trainer.train(w0, { epochs: 2, batchSize: 8, learningRate: 0.1 }, {}, { expectedBatchSize: 80, noiseMultiplier: 0.5 });
    assert.equal(b.samplingRate, 1);
    assert.equal(b.expectedBatchSize, 50);
    assert.equal(b.steps, 2);
    assert.equal(b.noiseMultiplier, 0.5);
    await assert.rejects(trainer.train(w0, { epochs: 1, batchSize: 8, learningRate: 0.1 }, {}, { clipNorm: 0 }), RangeError);
    await assert.rejects(trainer.train(w0, { epochs: 1, batchSize: 8, learningRate: 0.1 }, {}, { noiseMultiplier: -1 }), RangeError);
    trainer.dispose();
  });

  it('plans before a round exactly the privacy steps the round then charges', async () => {
    const data = first(demo.train, 50);
    const w0 = await initialWeights();
    const trainer = new DpSgdRoundTrainer(
      new DpSgdTrainer(spec, data, {
        clipNorm: 1,
        noiseMultiplier: 1,
        samplingSource: new SeededRandom(1),
        noiseSource: new SeededRandom(2),
      }),
    );
    for (const expectedBatchSize of [8, 30, 80]) {
      const config = {
        epochs: 2,
        batchSize: 999,
        learningRate: 0.1,
        sampleDp: { clipNorm: 0.5, noiseMultiplier: 1.2, expectedBatchSize, delta: 1e-5 },
      };
      const planned = trainer.plannedPrivacySteps(config);
      const result = await trainer.train(w0, config);
      assert.deepEqual(planned, result.privacySpent, `B = ${expectedBatchSize}`);
    }
    assert.deepEqual(
      trainer.plannedPrivacySteps({
        epochs: 2,
        batchSize: 8,
        learningRate: 0.1,
        sampleDp: { clipNorm: 1, noiseMultiplier: 1, expectedBatchSize: 30, delta: 1e-5 },
      }),
      { sampleRate: 30 / 50, noiseMultiplier: 1, steps: 2 * 2 },
    );
  });

  it('with σ = 0 and a huge C it is plain SGD on the same Poisson batches (loss summed, divided by B)', async () => {
    const n = 200;
    const B = 32;
    const lr = 0.1;
    const data = first(demo.train, n);
    const w0 = await initialWeights(3);
    const trainer = new DpSgdTrainer(spec, data, {
      clipNorm: 1e9,
      noiseMultiplier: 0,
      expectedBatchSize: B,
      samplingSource: new SeededRandom(11),
    });
    const dp = await trainer.train(w0, { epochs: 2, batchSize: B, learningRate: lr });
    trainer.dispose();

    // Replay the same batches (the same seeded uniforms, in the same order) with optimizer.minimize.
    const random = new SeededRandom(11);
    const model = buildModel(spec);
    writeWeights(model, w0);
    const xs = featureTensor(data);
    const ys = tf.tidy(() => tf.oneHot(tf.tensor1d(data.labels, 'int32'), 10).toFloat());
    const optimizer = tf.train.sgd(lr);
    let batches = 0;
    for (let step = 0; step < dp.steps; step++) {
      const idx = poissonSample(n, B / n, random);
      if (idx.length === 0) continue;
      batches++;
      tf.tidy(() => {
        const t = tf.tensor1d(idx, 'int32');
        const x = tf.gather(xs, t);
        const y = tf.gather(ys, t);
        optimizer.minimize(
          () =>
            tf.div(tf.losses.softmaxCrossEntropy(y, model.apply(x) as tf.Tensor, undefined, undefined, tf.Reduction.SUM), B) as tf.Scalar,
        );
      });
    }
    assert.equal(dp.steps, 2 * Math.round(n / B));
    assert.ok(batches > 8);
    const plain = await readWeights(model);
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < plain.length; i++) {
      worst = Math.max(worst, Math.abs(w0[i]! + dp.update[i]! - plain[i]!));
      scale = Math.max(scale, Math.abs(plain[i]! - w0[i]!));
    }
    assert.ok(scale > 1e-3, 'training moved the weights');
    assert.ok(worst < 1e-5, `max |DP-SGD − SGD| = ${worst} (largest change ${scale})`);
    tf.dispose([xs, ys]);
    optimizer.dispose();
    model.dispose();
  });

  it('leaks no tensors: the count after round 2 equals the count after round 20, on both paths', async () => {
    const data = first(demo.train, 64);
    for (const [path, rounds] of [
      ['fast', 20],
      ['per-example-loop', 5],
    ] as const) {
      const trainer = new DpSgdTrainer(spec, data, { clipNorm: 1, noiseMultiplier: 1.1, expectedBatchSize: 16, path });
      let weights = await initialWeights();
      const counts: number[] = [];
      for (let round = 1; round <= rounds; round++) {
        const result = await trainer.train(weights, { epochs: 1, batchSize: 16, learningRate: 0.05 });
        assert.equal(result.path, path);
        weights = weights.map((w, i) => w + result.update[i]!);
        counts.push(tf.memory().numTensors);
      }
      assert.equal(counts[rounds - 1], counts[1], `${path}: tensor counts per round: ${counts.join(',')}`);
      trainer.dispose();
    }
  });

  it('stops when asked to abort, frees its tensors, and reports progress', async () => {
    const data = first(demo.train, 2000);
    const before = tf.memory().numTensors;
    const trainer = new DpSgdTrainer(spec, data, { clipNorm: 1, noiseMultiplier: 1, expectedBatchSize: 8 });
    const w = await initialWeights();
    const fractions: number[] = [];
    let polls = 0;
    await assert.rejects(
      trainer.train(
        w,
        { epochs: 50, batchSize: 8, learningRate: 0.01 },
        { shouldAbort: () => ++polls > 2, onProgress: (p) => fractions.push(p.fraction) },
      ),
      TrainingAborted,
    );
    assert.ok(
      fractions.length >= 2 && fractions.every((f, i) => f > 0 && f < 1 && (i === 0 || f >= fractions[i - 1]!)),
      `progress ${fractions.join(',')}`,
    );
    trainer.dispose();
    assert.equal(tf.memory().numTensors, before);
  });

  it('learns: 1,000 demo examples, σ = 1, C = 1, well above chance on held-out digits', async () => {
    const data = first(demo.train, 1000);
    const trainer = new DpSgdTrainer(spec, data, { clipNorm: 1, noiseMultiplier: 1, expectedBatchSize: 100 });
    const w0 = await initialWeights();
    const result = await trainer.train(w0, { epochs: 5, batchSize: 100, learningRate: 1 });
    trainer.dispose();
    assert.equal(result.steps, 50);
    const model = buildModel(spec);
    writeWeights(
      model,
      w0.map((w, i) => w + result.update[i]!),
    );
    const test = demo.test;
    const accuracy = tf.tidy(() => {
      const x = featureTensor(test);
      const predicted = tf.argMax(model.predict(x) as tf.Tensor, 1);
      return tf.mean(tf.cast(tf.equal(predicted, tf.tensor1d(test.labels, 'int32')), 'float32')).dataSync()[0]!;
    });
    model.dispose();
    // Chance is 0.1; this setting reaches ~0.8 (the noise is CSPRNG, so the run is not reproducible).
    assert.ok(accuracy > 0.6, `held-out accuracy ${accuracy}`);
    assert.ok(result.metrics.accuracy > 0.5, `training accuracy ${result.metrics.accuracy}`);
  });

  it('refuses bad settings and data that does not fit the model', () => {
    const data = first(demo.train, 10);
    assert.throws(() => new DpSgdTrainer(spec, data, { clipNorm: 0, noiseMultiplier: 1 }), RangeError);
    assert.throws(() => new DpSgdTrainer(spec, data, { clipNorm: 1, noiseMultiplier: NaN }), RangeError);
    const wrong = { count: 2, features: 10, numClasses: 10, labels: new Uint8Array(2), values: new Uint8Array(20) };
    assert.throws(() => new DpSgdTrainer(spec, wrong, { clipNorm: 1, noiseMultiplier: 1 }), /10 features per example, the model takes 784/);
  });
});
