import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { buildModel } from '../../core/model/architectures.ts';
import { readWeights, writeWeights } from '../../core/model/weights.ts';
import {
  clipFactors,
  clippedGradientSum,
  disposeClippedSum,
  perExampleGradients,
  supportsFastPath,
  type GradientPath,
} from '../../core/privacy/per-example-gradients.ts';
import { initNodeBackend } from '../../coordinator/tf-node.ts';
import type { ModelSpec } from '../../core/protocol/messages.ts';

/*
 * The fast path runs on wasm, the reference (B separate tf.variableGrads
 * calls through model.apply) runs where it can: on wasm for Dense-only
 * models, on tfjs's CPU backend for Conv2D models, because
 * tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter kernel. The CPU
 * reference is also independent of every kernel the fast path uses.
 */

const TOL = 1e-5;
const mlp: ModelSpec = { architecture: 'mlp', inputShape: [784], numClasses: 10 };
const cnn: ModelSpec = { architecture: 'cnn', inputShape: [784], numClasses: 10 };

interface Batch {
  readonly x: Float32Array;
  readonly xShape: number[];
  readonly labels: number[];
  readonly classes: number;
}

function batch(b: number, inputShape: number[], classes: number, seed: number): Batch {
  const x = tf.tidy(() => tf.randomUniform([b, ...inputShape], 0, 1, 'float32', seed).dataSync() as Float32Array);
  return { x, xShape: [b, ...inputShape], labels: Array.from({ length: b }, (_, i) => (i * 7 + seed) % classes), classes };
}

function tensors(batchData: Batch): { x: tf.Tensor; y: tf.Tensor2D } {
  return {
    x: tf.tensor(batchData.x, batchData.xShape),
    y: tf.tidy(() => tf.oneHot(tf.tensor1d(batchData.labels, 'int32'), batchData.classes).toFloat() as tf.Tensor2D),
  };
}

async function perExample(model: tf.LayersModel, data: Batch, path: GradientPath): Promise<Float32Array> {
  const { x, y } = tensors(data);
  try {
    const out = perExampleGradients(model, x, y, { path });
    assert.equal(out.path, path);
    const values = (await out.grads.data()) as Float32Array;
    assert.deepEqual(out.grads.shape, [data.labels.length, model.countParams()]);
    out.grads.dispose();
    return values;
  } finally {
    tf.dispose([x, y]);
  }
}

/** The per-example-loop gradients of the same model and weights on tfjs's CPU backend. */
async function cpuReference(make: () => tf.LayersModel, weights: Float32Array, data: Batch): Promise<Float32Array> {
  const previous = tf.getBackend();
  await tf.setBackend('cpu');
  try {
    const model = make();
    writeWeights(model, weights);
    const values = await perExample(model, data, 'per-example-loop');
    model.dispose();
    return values;
  } finally {
    await tf.setBackend(previous);
  }
}

function assertClose(actual: Float32Array, expected: Float32Array, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: lengths`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (!(d <= worst)) {
      worst = d;
      at = i;
    }
  }
  assert.ok(worst <= tol, `${what}: max |diff| ${worst} at ${at} (${actual[at]} vs ${expected[at]})`);
}

function rowNorms(values: Float32Array, rows: number): number[] {
  const cols = values.length / rows;
  return Array.from({ length: rows }, (_, i) => {
    let s = 0;
    for (let j = 0; j < cols; j++) s += values[i * cols + j]! ** 2;
    return Math.sqrt(s);
  });
}

/**
 * A small conv model that exercises what the FedAvg CNN does not: stride 2
 * with 'valid' and with 'same' padding, an even, non-square kernel (uneven
 * 'same' padding), a bias-free conv, 'same' pooling, Dropout, an Activation
 * layer, tanh, sigmoid and a bias-free Dense.
 */
function smallConvModel(): tf.LayersModel {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const m = tf.sequential();
  m.add(tf.layers.reshape({ inputShape: [81], targetShape: [9, 9, 1] }));
  m.add(tf.layers.conv2d({ filters: 3, kernelSize: 3, strides: 2, padding: 'valid', activation: 'relu', kernelInitializer: init(11) }));
  m.add(tf.layers.conv2d({ filters: 4, kernelSize: [2, 3], padding: 'same', useBias: false, kernelInitializer: init(12) }));
  m.add(tf.layers.activation({ activation: 'tanh' }));
  m.add(tf.layers.maxPooling2d({ poolSize: 2, strides: 1, padding: 'same' }));
  m.add(
    tf.layers.conv2d({
      filters: 2,
      kernelSize: 3,
      strides: 2,
      padding: 'same',
      activation: 'sigmoid',
      kernelInitializer: init(13),
      biasInitializer: 'ones',
    }),
  );
  m.add(tf.layers.flatten());
  m.add(tf.layers.dropout({ rate: 0.5 }));
  m.add(tf.layers.dense({ units: 6, activation: 'tanh', useBias: false, kernelInitializer: init(14) }));
  m.add(tf.layers.dense({ units: 5, kernelInitializer: init(15), biasInitializer: 'ones' }));
  return m;
}

describe('per-example gradients', () => {
  before(async () => {
    assert.equal(await initNodeBackend(), 'wasm');
  });

  it('fast path equals B separate tf.grad calls for the mlp', async () => {
    const model = buildModel(mlp, 3);
    assert.deepEqual(supportsFastPath(model), { ok: true });
    const data = batch(4, [784], 10, 1);
    const before = tf.memory().numTensors;
    const fast = await perExample(model, data, 'fast');
    const loop = await perExample(model, data, 'per-example-loop');
    assert.equal(tf.memory().numTensors, before);
    assertClose(fast, loop, TOL, 'mlp');
    assert.ok(
      rowNorms(loop, 4).every((n) => n > 0.1),
      'the gradients are not trivially zero',
    );
    model.dispose();
  });

  it('fast path (wasm) equals B separate tf.grad calls (CPU backend) for the FedAvg CNN', async () => {
    const model = buildModel(cnn, 5);
    assert.deepEqual(supportsFastPath(model), { ok: true });
    const data = batch(4, [784], 10, 2);
    const before = tf.memory().numTensors;
    const fast = await perExample(model, data, 'fast');
    assert.equal(tf.memory().numTensors, before);
    const reference = await cpuReference(() => buildModel(cnn, 5), await readWeights(model), data);
    assertClose(fast, reference, TOL, 'cnn');
    model.dispose();
  });

  it('fast path equals the reference on a conv model with strides, valid/uneven same padding, no biases, pooling of negative values and dropout', async () => {
    const model = smallConvModel();
    assert.deepEqual(supportsFastPath(model), { ok: true });
    const data = batch(5, [81], 5, 3);
    const fast = await perExample(model, data, 'fast');
    const reference = await cpuReference(smallConvModel, await readWeights(model), data);
    assertClose(fast, reference, TOL, 'small conv');
    model.dispose();
  });

  it('clipped sums and norms from the fast path match clipping the raw per-example gradients', async () => {
    for (const [name, make, inputShape, classes] of [
      ['mlp', () => buildModel(mlp, 4), [784], 10],
      ['small conv', smallConvModel, [81], 5],
    ] as const) {
      const model = make();
      const data = batch(6, [...inputShape], classes, 4);
      const raw = await perExample(model, data, 'fast');
      const norms = rowNorms(raw, 6);
      // A bound between the norms, so that some examples are clipped and some are not.
      const sorted = [...norms].sort((a, b) => a - b);
      const clip = (sorted[2]! + sorted[3]!) / 2;
      assert.ok(
        norms.some((n) => n > clip) && norms.some((n) => n < clip),
        `${name}: some examples clipped, some not (${norms.join(', ')})`,
      );
      const P = raw.length / 6;
      const expected = new Float32Array(P);
      norms.forEach((n, i) => {
        const c = Math.min(1, clip / (n + 1e-12));
        for (let j = 0; j < P; j++) expected[j]! += c * raw[i * P + j]!;
      });
      for (const path of ['fast', 'per-example-loop'] as const) {
        if (path === 'per-example-loop' && name !== 'mlp') continue; // no Conv2DBackpropFilter on wasm
        const { x, y } = tensors(data);
        const before = tf.memory().numTensors;
        const result = clippedGradientSum(model, x, y, clip, { path });
        assert.equal(result.path, path);
        const sums = new Float32Array(P);
        let offset = 0;
        for (const s of result.sums) {
          sums.set((await s.data()) as Float32Array, offset);
          offset += s.size;
        }
        assert.deepEqual(
          result.sums.map((s) => s.shape),
          model.trainableWeights.map((w) => w.shape),
        );
        assertClose(sums, expected, TOL, `${name} ${path} clipped sum`);
        const sq = Array.from(await result.squaredNorms.data());
        sq.forEach((s, i) => {
          assert.ok(Math.abs(Math.sqrt(s) - norms[i]!) <= 1e-5 * Math.max(1, norms[i]!), `${name} ${path} norm ${i}`);
        });
        const losses = await result.losses.data();
        assert.equal(losses.length, 6);
        assert.ok(Array.from(losses).every((l) => l > 0 && Number.isFinite(l)));
        disposeClippedSum(result);
        assert.equal(tf.memory().numTensors, before, `${name} ${path}: no tensors leaked`);
        tf.dispose([x, y]);
      }
      model.dispose();
    }
  });

  it('after clipping every per-example gradient norm is at most C', async () => {
    const model = buildModel(mlp, 6);
    const data = batch(8, [784], 10, 5);
    const C = 0.7;
    for (let i = 0; i < 8; i++) {
      const one: Batch = { x: data.x.slice(i * 784, (i + 1) * 784), xShape: [1, 784], labels: [data.labels[i]!], classes: 10 };
      const raw = await perExample(model, one, 'fast');
      const { x, y } = tensors(one);
      const result = clippedGradientSum(model, x, y, C);
      let sq = 0;
      for (const s of result.sums) for (const v of await s.data()) sq += v * v;
      const norm = Math.sqrt(sq);
      assert.ok(norm <= C + 1e-6, `example ${i}: clipped norm ${norm} > ${C}`);
      const before = rowNorms(raw, 1)[0]!;
      assert.ok(Math.abs(norm - Math.min(before, C)) <= 1e-5, `example ${i}: ${norm} vs min(${before}, ${C})`);
      disposeClippedSum(result);
      tf.dispose([x, y]);
    }
    model.dispose();
  });

  it('a zero gradient gets factor 1 and no NaN: an unlabelled example, and a zero input to a bias-free path', async () => {
    // An all-zero label row: the example's loss is 0 for every weight, so is its gradient.
    const model = buildModel(mlp, 7);
    const data = batch(3, [784], 10, 6);
    const { x } = tensors(data);
    const y = tf.tensor2d([
      [0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
      [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
      [0, 0, 0, 1, 0, 0, 0, 0, 0, 0],
    ]);
    for (const path of ['fast', 'per-example-loop'] as const) {
      const result = clippedGradientSum(model, x, y, 1, { path });
      const sq = await result.squaredNorms.data();
      assert.equal(sq[1], 0, `${path}: the unlabelled example has a zero gradient`);
      assert.ok(sq[0]! > 0 && sq[2]! > 0);
      const c = clipFactors(result.squaredNorms, 1);
      assert.equal((await c.data())[1], 1);
      for (const s of result.sums) assert.ok((await s.data()).every(Number.isFinite), `${path}: finite sums`);
      c.dispose();
      disposeClippedSum(result);
    }
    tf.dispose([x, y]);
    model.dispose();

    // Zero input into bias-free layers: logits are 0, every weight gradient is 0.
    const m = tf.sequential();
    m.add(
      tf.layers.dense({
        inputShape: [4],
        units: 3,
        useBias: false,
        activation: 'relu',
        kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
      }),
    );
    m.add(tf.layers.dense({ units: 2, useBias: false, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }));
    const zx = tf.zeros([2, 4]);
    const zy = tf.tensor2d([
      [1, 0],
      [0, 1],
    ]);
    for (const path of ['fast', 'per-example-loop'] as const) {
      const result = clippedGradientSum(m, zx, zy, 0.5, { path });
      assert.deepEqual(Array.from(await result.squaredNorms.data()), [0, 0]);
      for (const s of result.sums)
        assert.ok(
          (await s.data()).every((v) => v === 0),
          `${path}: zero sums, not NaN`,
        );
      disposeClippedSum(result);
    }
    const zero = clipFactors(tf.tensor1d([0, 0]), 1e-3);
    assert.deepEqual(Array.from(await zero.data()), [1, 1]);
    tf.dispose([zx, zy, zero]);
    m.dispose();
  });

  it('says which path a model gets; other layers fall back to the per-example loop, which is still correct', async () => {
    const m = tf.sequential();
    m.add(
      tf.layers.dense({ inputShape: [6], units: 5, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }),
    );
    m.add(tf.layers.layerNormalization({ name: 'norm' }));
    m.add(tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }) }));
    const support = supportsFastPath(m);
    assert.equal(support.ok, false);
    assert.match(support.ok ? '' : support.reason, /norm \(LayerNormalization\)/);
    const data = batch(4, [6], 3, 7);
    const raw = await perExample(m, data, 'per-example-loop');
    const { x, y } = tensors(data);
    assert.throws(() => clippedGradientSum(m, x, y, 1, { path: 'fast' }), /LayerNormalization/);
    const auto = clippedGradientSum(m, x, y, 0.1);
    assert.equal(auto.path, 'per-example-loop');
    const norms = rowNorms(raw, 4);
    const sq = await auto.squaredNorms.data();
    norms.forEach((n, i) => {
      assert.ok(Math.abs(Math.sqrt(sq[i]!) - n) < 1e-5);
    });
    disposeClippedSum(auto);
    tf.dispose([x, y]);
    m.dispose();

    const dilated = tf.sequential({
      layers: [tf.layers.conv2d({ inputShape: [5, 5, 1], filters: 1, kernelSize: 2, dilationRate: 2 }), tf.layers.flatten()],
    });
    const d = supportsFastPath(dilated);
    assert.ok(!d.ok && /dilated/.test(d.reason), JSON.stringify(d));
    dilated.dispose();

    const softmaxOut = tf.sequential({ layers: [tf.layers.dense({ inputShape: [3], units: 2, activation: 'softmax' })] });
    const s = supportsFastPath(softmaxOut);
    assert.ok(!s.ok && /activation "softmax"/.test(s.reason), JSON.stringify(s));
    softmaxOut.dispose();
  });

  it('rejects a bad clip norm and mismatched shapes', () => {
    const model = buildModel(mlp, 8);
    const x = tf.zeros([2, 784]);
    const y = tf.zeros([2, 10]);
    assert.throws(() => clippedGradientSum(model, x, y, 0), RangeError);
    assert.throws(() => clippedGradientSum(model, x, y, NaN), RangeError);
    assert.throws(() => clippedGradientSum(model, x, tf.zeros([3, 10]), 1), /examples/);
    assert.throws(() => clippedGradientSum(model, tf.zeros([2, 785]), y, 1), /does not fit/);
    tf.dispose([x, y]);
    model.dispose();
  });
});
