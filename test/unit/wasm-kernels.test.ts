import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { subset } from '../../core/data/dataset.ts';
import { buildModel } from '../../core/model/architectures.ts';
import { readWeights } from '../../core/model/weights.ts';
import { registerWasmTrainingKernels } from '../../core/model/wasm-kernels.ts';
import type { ModelSpec } from '../../core/protocol/messages.ts';
import { LocalTrainer } from '../../core/training/local-trainer.ts';
import { loadMnistDemo, type DemoData } from '../../coordinator/task/demo-data.ts';
import { initNodeBackend } from '../../coordinator/tf-node.ts';

/*
 * tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter; core/model/wasm-kernels.ts
 * builds one from wasm's Conv2D, Transpose and Slice kernels. Reference: the
 * CPU backend's own Conv2DBackpropFilter, reached through tf.grad of a conv2d.
 */

type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];

interface Case {
  readonly batch: number;
  readonly size: [number, number];
  readonly kernel: [number, number];
  readonly channels: [number, number];
  readonly strides: [number, number];
  readonly pad: Pad;
}

const CASES: readonly Case[] = [
  // The built-in cnn's two layers.
  { batch: 4, size: [28, 28], kernel: [5, 5], channels: [1, 32], strides: [1, 1], pad: 'same' },
  { batch: 4, size: [14, 14], kernel: [5, 5], channels: [32, 64], strides: [1, 1], pad: 'same' },
  // Strided and 'valid': the last input rows no filter tap reads must not leak into dW.
  { batch: 1, size: [28, 28], kernel: [5, 5], channels: [1, 32], strides: [2, 2], pad: 'valid' },
  { batch: 1, size: [14, 14], kernel: [5, 5], channels: [32, 64], strides: [2, 2], pad: 'same' },
  { batch: 4, size: [13, 11], kernel: [2, 3], channels: [32, 64], strides: [2, 2], pad: 'valid' },
  { batch: 1, size: [13, 11], kernel: [2, 3], channels: [1, 32], strides: [1, 1], pad: 'valid' },
  { batch: 4, size: [9, 7], kernel: [2, 3], channels: [1, 32], strides: [2, 2], pad: 'same' },
  { batch: 1, size: [12, 10], kernel: [2, 3], channels: [32, 64], strides: [1, 1], pad: 'same' },
  // Stride larger than the kernel ('same' pads nothing and skips input rows), mixed strides, explicit padding.
  { batch: 4, size: [10, 9], kernel: [2, 3], channels: [1, 32], strides: [3, 2], pad: 'same' },
  { batch: 1, size: [11, 12], kernel: [5, 5], channels: [1, 32], strides: [1, 2], pad: 'valid' },
  {
    batch: 4,
    size: [8, 8],
    kernel: [2, 3],
    channels: [1, 32],
    strides: [1, 1],
    pad: [
      [0, 0],
      [1, 2],
      [0, 1],
      [0, 0],
    ],
  },
];

/** Deterministic values in [-1, 1). */
function values(count: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: count }, () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return ((s >>> 0) / 2 ** 32) * 2 - 1;
  });
}

/** ∂/∂W of Σ conv2d(x, W) ⊙ r on the current backend: Conv2DBackpropFilter(x, dy = r). */
function filterGradient(c: Case, x: Float32Array, w: Float32Array, r: Float32Array, rShape: number[]): Float32Array {
  return tf.tidy(() => {
    const xt = tf.tensor4d(x, [c.batch, c.size[0], c.size[1], c.channels[0]]);
    const wt = tf.tensor4d(w, [...c.kernel, ...c.channels]);
    const rt = tf.tensor(r, rShape);
    const grad = tf.grad((f: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(xt, f as tf.Tensor4D, c.strides, c.pad), rt)));
    return grad(wt).dataSync() as Float32Array;
  });
}

function label(c: Case): string {
  return `${c.batch}x${c.size.join('x')}x${c.channels[0]} * ${c.kernel.join('x')}->${c.channels[1]} stride ${c.strides.join(',')} ${typeof c.pad === 'string' ? c.pad : JSON.stringify(c.pad)}`;
}

describe('wasm training kernels', () => {
  let demo: DemoData;
  before(async () => {
    assert.equal(await initNodeBackend('wasm'), 'wasm');
    demo = await loadMnistDemo();
  });

  it('initNodeBackend registers Conv2DBackpropFilter for wasm, and registering again changes nothing', () => {
    const kernel = tf.getKernel('Conv2DBackpropFilter', 'wasm');
    assert.ok(kernel, 'registered by initNodeBackend');
    registerWasmTrainingKernels();
    registerWasmTrainingKernels();
    assert.equal(tf.getKernel('Conv2DBackpropFilter', 'wasm'), kernel);
    assert.equal(tf.getKernelsForBackend('wasm').filter((k) => k.kernelName === 'Conv2DBackpropFilter').length, 1);
  });

  it('matches the CPU backend kernel gradient to 1e-4 relative', async () => {
    try {
      for (const [i, c] of CASES.entries()) {
        const x = values(c.batch * c.size[0] * c.size[1] * c.channels[0], 11 + i);
        const w = values(c.kernel[0] * c.kernel[1] * c.channels[0] * c.channels[1], 23 + i);
        const outShape = tf.tidy(
          () =>
            tf.conv2d(
              tf.zeros([c.batch, ...c.size, c.channels[0]]) as tf.Tensor4D,
              tf.zeros([...c.kernel, ...c.channels]) as tf.Tensor4D,
              c.strides,
              c.pad,
            ).shape,
        );
        const r = values(
          outShape.reduce((a, b) => a * b, 1),
          37 + i,
        );
        await tf.setBackend('cpu');
        const expected = filterGradient(c, x, w, r, outShape);
        await tf.setBackend('wasm');
        const tensorsBefore = tf.memory().numTensors;
        const actual = filterGradient(c, x, w, r, outShape);
        assert.equal(tf.memory().numTensors, tensorsBefore, `${label(c)}: tensors leaked`);
        assert.equal(actual.length, expected.length);
        let scale = 0;
        let diff = 0;
        for (let j = 0; j < expected.length; j++) {
          scale = Math.max(scale, Math.abs(expected[j]!));
          diff = Math.max(diff, Math.abs(actual[j]! - expected[j]!));
        }
        assert.ok(scale > 0, `${label(c)}: a non-zero reference`);
        assert.ok(diff <= 1e-4 * scale, `${label(c)}: max |wasm - cpu| = ${diff}, max |cpu| = ${scale}`);
      }
    } finally {
      await tf.setBackend('wasm');
    }
  });

  it('refuses what it cannot compute instead of returning a wrong gradient', () => {
    tf.tidy(() => {
      const x = tf.ones([1, 6, 6, 2]);
      const dy = tf.ones([1, 6, 6, 3]);
      const run = (attrs: tf.NamedAttrMap) =>
        tf
          .engine()
          .runKernel(
            'Conv2DBackpropFilter',
            { x, dy },
            { strides: 1, pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, 2, 3], ...attrs },
          );
      assert.throws(() => run({ dataFormat: 'NCHW' }), /NCHW is not supported/);
      assert.throws(() => run({ dilations: [2, 2] }), /dilations .* not supported/);
      assert.throws(() => run({ filterShape: [3, 3, 5, 3] }), /does not fit/);
      assert.throws(() => run({ strides: 2 }), /is not the output/);
      assert.throws(
        () =>
          run({
            pad: [
              [1, 0],
              [1, 1],
              [1, 1],
              [0, 0],
            ],
          }),
        /padding .* not supported/,
      );
    });
  });

  it('LocalTrainer trains the built-in cnn on wasm: finite update, conv kernels move, no tensor leak', async () => {
    assert.equal(tf.getBackend(), 'wasm');
    const spec: ModelSpec = { architecture: 'cnn', inputShape: [784], numClasses: 10 };
    const data = subset(
      demo.train,
      Uint32Array.from({ length: 64 }, (_, i) => i),
    );
    const trainer = new LocalTrainer(spec, data);
    const model = buildModel(spec);
    let weights = await readWeights(model);
    const shapes = model.weights.map((w) => ({ name: w.originalName, size: w.shape.reduce((a: number, b) => a * (b ?? 1), 1) }));
    model.dispose();
    const counts: number[] = [];
    try {
      for (let round = 1; round <= 2; round++) {
        const result = await trainer.train(weights, { epochs: 1, batchSize: 32, learningRate: 0.05 });
        assert.equal(result.update.length, weights.length);
        assert.ok(result.update.every(Number.isFinite), `round ${round}: finite update`);
        assert.ok(Number.isFinite(result.metrics.loss), `round ${round}: finite loss ${result.metrics.loss}`);
        // Every weight tensor, the two conv kernels included, received a gradient.
        let offset = 0;
        for (const s of shapes) {
          const part = result.update.subarray(offset, offset + s.size);
          assert.ok(
            part.some((v) => v !== 0),
            `round ${round}: ${s.name} did not change`,
          );
          offset += s.size;
        }
        weights = weights.map((w, i) => w + result.update[i]!);
        counts.push(tf.memory().numTensors);
      }
      assert.equal(counts[1], counts[0], `tensor counts per round: ${counts.join(',')}`);
    } finally {
      trainer.dispose();
    }
  });
});
