import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { shardIndices, subset } from '../../core/data/dataset.ts';
import { buildModel } from '../../core/model/architectures.ts';
import { readWeights } from '../../core/model/weights.ts';
import { LocalTrainer, TrainingAborted } from '../../core/training/local-trainer.ts';
import { loadMnistDemo, type DemoData } from '../../coordinator/task/demo-data.ts';
import { initNodeBackend } from '../../coordinator/tf-node.ts';

const spec = { architecture: 'mlp' as const, inputShape: [784], numClasses: 10 };

describe('local trainer', () => {
  let demo: DemoData;
  before(async () => {
    await initNodeBackend();
    demo = await loadMnistDemo();
  });

  it('returns the weight delta and learns', async () => {
    const data = subset(demo.train, shardIndices(demo.train.labels, { index: 0, count: 8, skew: 'iid' }));
    const trainer = new LocalTrainer(spec, data);
    const model = buildModel(spec);
    const start = await readWeights(model);
    model.dispose();
    const first = await trainer.train(start, { epochs: 1, batchSize: 32, learningRate: 0.1 });
    assert.equal(first.numExamples, data.count);
    assert.equal(first.update.length, start.length);
    assert.ok(first.update.some((x) => x !== 0));
    const next = start.map((w, i) => w + first.update[i]!);
    const second = await trainer.train(next, { epochs: 2, batchSize: 32, learningRate: 0.1 });
    assert.ok(second.metrics.loss < first.metrics.loss, `loss ${second.metrics.loss} < ${first.metrics.loss}`);
    assert.ok(second.metrics.accuracy > 0.7, `accuracy ${second.metrics.accuracy}`);
    trainer.dispose();
  });

  it('leaks no tensors: the count after round 2 equals the count after round 20', async () => {
    const data = subset(
      demo.train,
      Uint32Array.from({ length: 64 }, (_, i) => i),
    );
    const trainer = new LocalTrainer(spec, data);
    let weights = await (async () => {
      const m = buildModel(spec);
      const w = await readWeights(m);
      m.dispose();
      return w;
    })();
    const counts: number[] = [];
    for (let round = 1; round <= 20; round++) {
      const result = await trainer.train(weights, { epochs: 1, batchSize: 16, learningRate: 0.05 });
      weights = weights.map((w, i) => w + result.update[i]!);
      counts.push(tf.memory().numTensors);
    }
    assert.equal(counts[19], counts[1], `tensor counts per round: ${counts.join(',')}`);
    trainer.dispose();
  });

  it('stops when asked to abort and still frees its tensors', async () => {
    const data = subset(
      demo.train,
      Uint32Array.from({ length: 2000 }, (_, i) => i),
    );
    const trainer = new LocalTrainer(spec, data);
    const before = tf.memory().numTensors;
    const m = buildModel(spec);
    const w = await readWeights(m);
    m.dispose();
    await assert.rejects(trainer.train(w, { epochs: 50, batchSize: 8, learningRate: 0.01 }, { shouldAbort: () => true }), TrainingAborted);
    assert.equal(tf.memory().numTensors, before);
    trainer.dispose();
  });

  it('refuses data that does not fit the model', () => {
    const data = { count: 2, features: 10, numClasses: 10, labels: new Uint8Array(2), values: new Uint8Array(20) };
    assert.throws(() => new LocalTrainer(spec, data), /10 features per example, the model takes 784/);
  });
});
