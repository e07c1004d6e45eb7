/// <reference types="vite/client" />
// The reference above: the root tsconfig (Node types) also checks this file, and backend.ts imports `?url` modules.
import * as tf from '@tensorflow/tfjs';
import { decodeDataset, subset, type Dataset } from '../../core/data/dataset.ts';
import { buildModel } from '../../core/model/architectures.ts';
import { readWeights, writeWeights } from '../../core/model/weights.ts';
import type { ArchitectureName, FitConfig, ModelSpec, TaskSummary } from '../../core/protocol/messages.ts';
import { permutation, SeededRandom } from '../../core/random/prng.ts';
import { featureTensor } from '../../core/training/data-tensors.ts';
import { LocalTrainer } from '../../core/training/local-trainer.ts';
import { chooseBackend, selectBackend, type SelectedBackend } from '../../web/participant/backend.ts';
import type { BenchBackend } from './backends.ts';
import { median } from '../stats.ts';

/**
 * Benchmark worker: on one backend, times LocalTrainer.train against a plain
 * model.fit on the same data, model and hyper-parameters. It runs in a
 * dedicated worker because the real participant trains in one.
 */

export interface BenchRequest {
  readonly backend: BenchBackend;
  readonly architecture: ArchitectureName;
  readonly examples: number;
  readonly reps: number;
  readonly batchSize: number;
  readonly learningRate: number;
}

export interface TensorCounts {
  /** After building both models and the data tensors, before any training. */
  readonly setup: number;
  readonly afterWarmup: number;
  /** After the last timed repetition, everything still alive. */
  readonly end: number;
}

export interface BenchOk {
  readonly status: 'ok';
  /** What was asked for (a backend, 'auto' or 'wasm1'). */
  readonly requested: BenchBackend;
  readonly backend: string;
  readonly adapter?: string;
  /** WASM threads in use. */
  readonly threads?: number;
  /** 'auto': how long the choice took, and what it measured. */
  readonly chooseMs?: number;
  readonly choice?: string;
  readonly architecture: ArchitectureName;
  readonly paramCount: number;
  readonly examples: number;
  readonly batchSize: number;
  readonly learningRate: number;
  readonly reps: number;
  readonly warmupMs: { readonly ours: number; readonly fit: number };
  /** Wall time of each timed 1-epoch repetition, in run order. */
  readonly oursMs: readonly number[];
  readonly fitMs: readonly number[];
  /** Medians over the repetitions. */
  readonly oursExamplesPerSecond: number;
  readonly fitExamplesPerSecond: number;
  /** ours / model.fit from the medians; 1 means as fast. */
  readonly ratio: number;
  /** ours / model.fit of each adjacent pair: their spread shows how noisy the machine was. */
  readonly pairRatios: readonly number[];
  /** Mean training loss of the last repetition: the two should be close, or they are not doing the same work. */
  readonly oursLoss: number;
  readonly fitLoss: number;
  readonly tensors: TensorCounts;
  readonly tensorsFlat: boolean;
  readonly userAgent: string;
}

export interface BenchUnavailable {
  readonly status: 'unavailable';
  readonly backend: BenchBackend;
  readonly reason: string;
}

export type BenchResult = BenchOk | BenchUnavailable;

export type BenchWorkerMessage =
  | { readonly type: 'progress'; readonly text: string }
  | { readonly type: 'result'; readonly result: BenchResult }
  | { readonly type: 'error'; readonly message: string };

interface WorkerScope {
  postMessage(message: BenchWorkerMessage): void;
  addEventListener(type: 'message', listener: (event: MessageEvent<BenchRequest>) => void): void;
}
const scope = self as unknown as WorkerScope;
const post = (message: BenchWorkerMessage) => scope.postMessage(message);
const progress = (text: string) => post({ type: 'progress', text });

scope.addEventListener('message', (event) => {
  run(event.data).then(
    (result) => post({ type: 'result', result }),
    (error: unknown) => post({ type: 'error', message: error instanceof Error ? `${error.message}\n${error.stack ?? ''}` : String(error) }),
  );
});

async function fetchOk(url: string): Promise<Response> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  return response;
}

/** A seeded sample of the demo data, so every backend trains on the same examples. */
async function loadData(task: TaskSummary, examples: number): Promise<Dataset> {
  if (task.demoData?.format !== 'dataset') throw new Error(`task ${task.name} has no demo dataset`);
  const all = decodeDataset(new Uint8Array(await (await fetchOk(task.demoData.url)).arrayBuffer()));
  if (examples > all.count) throw new Error(`asked for ${examples} examples, the demo data has ${all.count}`);
  return subset(all, permutation(all.count, new SeededRandom(7)).subarray(0, examples));
}

async function run(request: BenchRequest): Promise<BenchResult> {
  const task = (await (await fetchOk('/api/task')).json()) as TaskSummary;
  const spec: ModelSpec = { ...task.model, architecture: request.architecture };
  let selected: SelectedBackend;
  try {
    if (request.backend === 'auto') {
      // A fresh browser context: nothing cached, so this is a first visit's full measurement.
      selected = await chooseBackend({ model: spec, batchSize: request.batchSize, dp: false });
    } else if (request.backend === 'wasm1') {
      // Before the backend starts (the import registers the flag): tfjs then loads the single-threaded SIMD binary.
      await import('@tensorflow/tfjs-backend-wasm');
      tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
      selected = await selectBackend('wasm');
    } else {
      selected = await selectBackend(request.backend);
    }
  } catch (error) {
    return { status: 'unavailable', backend: request.backend, reason: error instanceof Error ? error.message : String(error) };
  }
  const choice = selected.measurements
    .map(
      (m) =>
        `${m.backend}: ${m.examplesPerSecond === undefined ? m.note : Math.round(m.examplesPerSecond)}${m.ms === undefined ? '' : ` [${(m.ms / 1000).toFixed(2)} s]`}`,
    )
    .join('; ');
  progress(
    `backend ${selected.backend} (${selected.adapter ?? 'no adapter info'}${selected.threads ? `, ${selected.threads} threads` : ''})${request.backend === 'auto' ? ` chosen in ${Math.round(selected.chooseMs)} ms: ${choice}` : ''}`,
  );

  const data = await loadData(task, request.examples);
  const n = data.count;
  const config: FitConfig = { epochs: 1, batchSize: request.batchSize, learningRate: request.learningRate };

  // (a) our loop; it builds its own model with seed 1 and its own copy of the data tensors.
  const trainer = new LocalTrainer(spec, data);
  // (b) model.fit: same architecture and seed, the data tensors built exactly as LocalTrainer builds them.
  const fitModel = buildModel(spec, 1);
  const fitOptimizer = tf.train.sgd(request.learningRate);
  fitModel.compile({ optimizer: fitOptimizer, loss: (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.losses.softmaxCrossEntropy(yTrue, yPred) });
  const xs = featureTensor(data);
  const ys = tf.tidy(() => tf.oneHot(tf.tensor1d(data.labels, 'int32'), spec.numClasses).toFloat());
  // Both start every repetition from these weights, so the work (and the loss) is the same each time.
  const initial = await readWeights(fitModel);

  const runOurs = async (): Promise<{ ms: number; loss: number }> => {
    const started = performance.now();
    const result = await trainer.train(initial, config);
    return { ms: performance.now() - started, loss: result.metrics.loss };
  };
  // The same job as a round of ours: set the weights, train, read the trained weights back
  // (which also waits for all queued GPU work, which fit alone does not).
  const runFit = async (): Promise<{ ms: number; loss: number }> => {
    const started = performance.now();
    writeWeights(fitModel, initial);
    const history = await fitModel.fit(xs, ys, { batchSize: request.batchSize, epochs: 1, shuffle: true, verbose: 0 });
    await readWeights(fitModel);
    const losses = history.history.loss ?? [];
    return { ms: performance.now() - started, loss: Number(losses[losses.length - 1]) };
  };

  try {
    const setup = tf.memory().numTensors;
    progress(`warm-up on ${n} examples`);
    const warmOurs = await runOurs();
    const warmFit = await runFit();
    const afterWarmup = tf.memory().numTensors;

    const oursMs: number[] = [];
    const fitMs: number[] = [];
    let oursLoss = NaN;
    let fitLoss = NaN;
    // Alternating A B A B: drift on a shared machine hits both sides alike.
    for (let rep = 0; rep < request.reps; rep++) {
      const ours = await runOurs();
      oursMs.push(ours.ms);
      oursLoss = ours.loss;
      const fit = await runFit();
      fitMs.push(fit.ms);
      fitLoss = fit.loss;
      progress(`rep ${rep + 1}/${request.reps}: ours ${ours.ms.toFixed(0)} ms, fit ${fit.ms.toFixed(0)} ms`);
    }
    const end = tf.memory().numTensors;

    const oursExamplesPerSecond = median(oursMs.map((ms) => (n * 1000) / ms));
    const fitExamplesPerSecond = median(fitMs.map((ms) => (n * 1000) / ms));
    return {
      status: 'ok',
      requested: request.backend,
      backend: selected.backend,
      adapter: selected.adapter,
      threads: selected.threads,
      chooseMs: request.backend === 'auto' ? selected.chooseMs : undefined,
      choice: request.backend === 'auto' ? choice : undefined,
      architecture: request.architecture,
      paramCount: initial.length,
      examples: n,
      batchSize: request.batchSize,
      learningRate: request.learningRate,
      reps: request.reps,
      warmupMs: { ours: warmOurs.ms, fit: warmFit.ms },
      oursMs,
      fitMs,
      oursExamplesPerSecond,
      fitExamplesPerSecond,
      ratio: oursExamplesPerSecond / fitExamplesPerSecond,
      pairRatios: oursMs.map((ms, i) => fitMs[i]! / ms),
      oursLoss,
      fitLoss,
      tensors: { setup, afterWarmup, end },
      tensorsFlat: end === afterWarmup && afterWarmup === setup,
      userAgent: navigator.userAgent,
    };
  } finally {
    trainer.dispose();
    fitModel.dispose();
    fitOptimizer.dispose();
    xs.dispose();
    ys.dispose();
  }
}
