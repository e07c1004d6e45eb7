import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { subset } from '../core/data/dataset.ts';
import { buildModel } from '../core/model/architectures.ts';
import { registerWasmTrainingKernels } from '../core/model/wasm-kernels.ts';
import { dpSgdStep } from '../core/privacy/dp-sgd.ts';
import { perExampleGradients } from '../core/privacy/per-example-gradients.ts';
import { GaussianSampler } from '../core/privacy/update-privacy.ts';
import type { ArchitectureName } from '../core/protocol/messages.ts';
import { featureTensor } from '../core/training/data-tensors.ts';
import { loadMnistDemo } from '../coordinator/task/demo-data.ts';
import { initNodeBackend } from '../coordinator/tf-node.ts';
import { median } from './stats.ts';
import { BoxMullerSampler } from './box-muller-sampler.ts';
import { tunedSgdStep } from './tuned-sgd-step.ts';

const COMMAND = 'npx tsx bench/dp-sgd.ts';

const USAGE = `Usage: ${COMMAND} [options]

Cost of one DP-SGD step against one non-private step, Node + tfjs wasm
backend, on a batch of MNIST demo digits. Per model it times (median of
--reps, after warm-up, alternating the variants):
  non-private   optimizer.minimize of the mean softmax cross-entropy (tf.train.sgd)
  tuned         a well-tuned non-private SGD step (bench/tuned-sgd-step.ts): the DP
                path's own forward and backward pass, then summed weight gradients;
                the baseline the ≤ 2× target is held to
  DP fast       dpSgdStep on the vectorised path: per-example norms, clipping,
                CSPRNG Gaussian noise (σ = 1, C = 1), SGD update
  DP fast σ=0   the same without noise, to show the cost of generating it
  DP fast, old  the same with the Box-Muller sampler that issue 17 replaced
                (bench/box-muller-sampler.ts): the noise cost before
  DP loop       dpSgdStep on the per-example-loop fallback (B tf.variableGrads calls)

tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter kernel, so the stock
gradient of a Conv2D model (the non-private baseline, the loop fallback)
fails on wasm. core/model/wasm-kernels.ts registers one, built from wasm's
own Conv2D and Transpose kernels (the kernel gradient as a convolution of the
input with dy), so that the baseline is a fast, fair one. The DP fast path
does not need it.

  --models LIST     comma-separated, from mlp, 2nn, cnn (default mlp,cnn)
  --batch N         batch size (default 64)
  --reps N          timed repetitions of each fast variant (default 15 for
                    dense models, 7 for the cnn)
  --loop-reps N     timed repetitions of the loop fallback (default 5 for dense
                    models, 2 for the cnn; 0 skips it)
  --help            show this text
`;

interface Row {
  readonly model: ArchitectureName;
  readonly params: number;
  readonly plainMs: number;
  readonly tunedMs: number;
  /** Largest |Δw| difference between one tuned step and one optimizer.minimize step from the same weights. */
  readonly tunedDiff: number;
  readonly fastMs: number;
  readonly fastNoNoiseMs: number;
  readonly fastOldSamplerMs: number;
  readonly loopMs: number;
  readonly forwardMs: number;
  readonly reps: number;
  readonly loopReps: number;
  readonly checkDiff: number;
}

/** Max |Δw_a − Δw_b| over all weights: the weight change of step `a` and of step `b`, each taken from the same starting weights. */
async function sameStep(model: tf.LayersModel, a: () => void, b: () => void): Promise<number> {
  const start = model.getWeights().map((w) => tf.clone(w));
  const deltaOf = (step: () => void): tf.Tensor[] => {
    model.setWeights(start);
    step();
    return tf.tidy(() => model.getWeights().map((w, i) => tf.sub(w, start[i]!)));
  };
  const da = deltaOf(a);
  const db = deltaOf(b);
  const diff = tf.tidy(() => tf.max(tf.stack(da.map((d, i) => tf.max(tf.abs(tf.sub(d, db[i]!)))))));
  const value = (await diff.data())[0]!;
  model.setWeights(start);
  tf.dispose([...start, ...da, ...db, diff]);
  return value;
}

async function bench(architecture: ArchitectureName, batchSize: number, reps: number, loopReps: number): Promise<Row> {
  const demo = await loadMnistDemo();
  const data = subset(
    demo.train,
    Uint32Array.from({ length: batchSize }, (_, i) => i),
  );
  const x = featureTensor(data);
  const y = tf.tidy(() => tf.oneHot(tf.tensor1d(data.labels, 'int32'), 10).toFloat());
  const spec = { architecture, inputShape: [784], numClasses: 10 };
  const model = buildModel(spec);
  const optimizer = tf.train.sgd(0.01);
  const sampler = new GaussianSampler();
  const oldSampler = new BoxMullerSampler();
  const dp = { clipNorm: 1, noiseMultiplier: 1, expectedBatchSize: batchSize, learningRate: 0.01 };

  // Sanity: both per-example paths agree on a few examples (this also exercises the registered kernel).
  const few = Math.min(4, batchSize);
  const checkDiff = tf.tidy(() => {
    const xs = tf.slice(x, [0], [few]);
    const ys = tf.slice(y, [0], [few]);
    const fast = perExampleGradients(model, xs, ys, { path: 'fast' }).grads;
    const loop = perExampleGradients(model, xs, ys, { path: 'per-example-loop' }).grads;
    return tf.max(tf.abs(tf.sub(fast, loop))).dataSync()[0]!;
  });

  // Sanity: the tuned step moves the weights exactly as optimizer.minimize does.
  const tunedDiff = await sameStep(
    model,
    () => tunedSgdStep(model, x, y, 0.01).dispose(),
    () => {
      tf.train.sgd(0.01).minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar);
    },
  );

  const variants = {
    forward: async () => {
      const out = model.predict(x) as tf.Tensor;
      await out.data();
      out.dispose();
    },
    plain: async () => {
      const loss = optimizer.minimize(
        () => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
        true,
      );
      await loss!.data();
      loss!.dispose();
    },
    tuned: async () => {
      const loss = tunedSgdStep(model, x, y, 0.01);
      await loss.data();
      loss.dispose();
    },
    fast: async () => {
      const stats = dpSgdStep(model, { x, y }, { ...dp, path: 'fast' }, sampler)!;
      await stats.lossSum.data();
      tf.dispose([stats.lossSum, stats.correct]);
    },
    fastOldSampler: async () => {
      const stats = dpSgdStep(model, { x, y }, { ...dp, path: 'fast' }, oldSampler)!;
      await stats.lossSum.data();
      tf.dispose([stats.lossSum, stats.correct]);
    },
    fastNoNoise: async () => {
      const stats = dpSgdStep(model, { x, y }, { ...dp, noiseMultiplier: 0, path: 'fast' }, sampler)!;
      await stats.lossSum.data();
      tf.dispose([stats.lossSum, stats.correct]);
    },
    loop: async () => {
      const stats = dpSgdStep(model, { x, y }, { ...dp, path: 'per-example-loop' }, sampler)!;
      await stats.lossSum.data();
      tf.dispose([stats.lossSum, stats.correct]);
    },
  };
  const times: Record<keyof typeof variants, number[]> = {
    forward: [],
    plain: [],
    tuned: [],
    fast: [],
    fastOldSampler: [],
    fastNoNoise: [],
    loop: [],
  };
  // Warm-up: first calls compile kernels and grow the wasm heap.
  for (const name of [
    'forward',
    'plain',
    'tuned',
    'fast',
    'fastOldSampler',
    'fastNoNoise',
    ...(loopReps > 0 ? (['loop'] as const) : []),
  ] as const)
    await variants[name]();
  const tensorsBefore = tf.memory().numTensors;
  for (let r = 0; r < reps; r++) {
    const order = (
      ['forward', 'plain', 'tuned', 'fast', 'fastOldSampler', 'fastNoNoise', ...(r < loopReps ? (['loop'] as const) : [])] as const
    ).slice();
    if (r % 2 === 1) order.reverse();
    for (const name of order) {
      const started = performance.now();
      await variants[name]();
      times[name].push(performance.now() - started);
    }
  }
  if (tf.memory().numTensors !== tensorsBefore)
    throw new Error(`${architecture}: ${tf.memory().numTensors - tensorsBefore} tensors leaked`);
  const row: Row = {
    model: architecture,
    params: model.countParams(),
    plainMs: median(times.plain),
    tunedMs: median(times.tuned),
    tunedDiff,
    fastMs: median(times.fast),
    fastNoNoiseMs: median(times.fastNoNoise),
    fastOldSamplerMs: median(times.fastOldSampler),
    loopMs: median(times.loop),
    forwardMs: median(times.forward),
    reps,
    loopReps: Math.min(reps, loopReps),
    checkDiff,
  };
  tf.dispose([x, y]);
  optimizer.dispose();
  model.dispose();
  return row;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      models: { type: 'string', default: 'mlp,cnn' },
      batch: { type: 'string', default: '64' },
      reps: { type: 'string' },
      'loop-reps': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const models = values.models.split(',').map((m) => m.trim());
  for (const m of models) if (m !== 'mlp' && m !== '2nn' && m !== 'cnn') throw new Error(`unknown model ${m}`);
  const batch = Number(values.batch);
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`--batch must be a positive integer, got ${values.batch}`);
  const backend = await initNodeBackend('wasm');
  if (backend !== 'wasm') throw new Error(`the wasm backend did not initialise (got ${backend})`);
  registerWasmTrainingKernels(); // initNodeBackend already did; kept so the dependency is visible

  const rows: Row[] = [];
  for (const m of models as ArchitectureName[]) {
    const reps = values.reps !== undefined ? Number(values.reps) : m === 'cnn' ? 7 : 15;
    const loopReps = values['loop-reps'] !== undefined ? Number(values['loop-reps']) : m === 'cnn' ? 2 : 5;
    console.error(`benchmarking ${m} (batch ${batch}, ${reps} reps, ${loopReps} loop reps)...`);
    rows.push(await bench(m, batch, reps, loopReps));
  }

  const f = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms.toFixed(1));
  const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
  console.log(
    `\n\`${COMMAND} --models ${models.join(',')} --batch ${batch}\` — tfjs ${tf.version.tfjs}, backend ${tf.getBackend()}, Node ${process.version}, median ms per step\n`,
  );
  console.log(
    '| model | params | forward only | non-private step | tuned non-private | DP fast | DP fast / tuned | ratio | DP fast, old sampler | ratio | DP fast σ=0 | ratio | DP per-example loop | ratio | reps (loop) | max \\|fast − loop\\| | max \\|Δw tuned − Δw non-private\\| |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    console.log(
      `| ${r.model} | ${r.params.toLocaleString('en-US')} | ${f(r.forwardMs)} | ${f(r.plainMs)} | ${f(r.tunedMs)} | ${f(r.fastMs)} | **${ratio(r.fastMs, r.tunedMs)}** | ${ratio(r.fastMs, r.plainMs)} | ${f(r.fastOldSamplerMs)} | ${ratio(r.fastOldSamplerMs, r.plainMs)} | ${f(r.fastNoNoiseMs)} | ${ratio(r.fastNoNoiseMs, r.plainMs)} | ${f(r.loopMs)} | ${ratio(r.loopMs, r.plainMs)} | ${r.reps} (${r.loopReps}) | ${r.checkDiff.toExponential(1)} | ${r.tunedDiff.toExponential(1)} |`,
    );
  }
  console.log(
    '\nratio = DP step / non-private step; the target (DP fast ≤ 2.0×) is held against the tuned non-private step. DP steps include clipping, σ = 1 CSPRNG noise (except σ=0) and the weight update.',
  );
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.stack : error);
  process.exit(1);
});
