import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { buildModel } from '../core/model/architectures.ts';
import { dpSgdStep } from '../core/privacy/dp-sgd.ts';
import { GaussianSampler } from '../core/privacy/update-privacy.ts';
import type { ArchitectureName } from '../core/protocol/messages.ts';
import { initNodeBackend } from '../coordinator/tf-node.ts';
import { tunedSgdStep } from './tuned-sgd-step.ts';

const USAGE = `Usage: npx tsx bench/dp-sgd-profile.ts [--model cnn] [--batch 64] [--top 20]

Where one step's time goes: tf.profile of one DP-SGD step (σ = 1, C = 1) and
of one tuned non-private step (bench/tuned-sgd-step.ts), Node + tfjs wasm,
after two warm-up steps each. Prints the kernels by total time, and the wall
time of the step beside the sum of its kernel times (the gap is JavaScript:
for DP-SGD mostly drawing the noise). customGrad wrappers appear as kernels
named "forward"; their time is also counted in the kernels they ran.
`;

interface KernelRow {
  readonly name: string;
  readonly ms: number;
  readonly calls: number;
}

async function profileStep(step: () => Promise<void>): Promise<{ wallMs: number; rows: KernelRow[] }> {
  await step();
  await step();
  const started = performance.now();
  const info = await tf.profile(step);
  const wallMs = performance.now() - started;
  const byName = new Map<string, { ms: number; calls: number }>();
  for (const k of info.kernels) {
    const key = `${k.name} ${JSON.stringify(k.inputShapes)}`;
    const row = byName.get(key) ?? { ms: 0, calls: 0 };
    row.ms += Number(k.kernelTimeMs);
    row.calls++;
    byName.set(key, row);
  }
  return { wallMs, rows: [...byName.entries()].map(([name, r]) => ({ name, ...r })).sort((a, b) => b.ms - a.ms) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string', default: 'cnn' },
      batch: { type: 'string', default: '64' },
      top: { type: 'string', default: '20' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const architecture = values.model;
  if (architecture !== 'mlp' && architecture !== '2nn' && architecture !== 'cnn') throw new Error(`unknown model ${architecture}`);
  const batch = Number(values.batch);
  const top = Number(values.top);
  if (!Number.isInteger(batch) || batch < 1 || !Number.isInteger(top) || top < 1)
    throw new Error('--batch and --top must be positive integers');
  if ((await initNodeBackend('wasm')) !== 'wasm') throw new Error('the wasm backend did not initialise');
  const model = buildModel({ architecture: architecture as ArchitectureName, inputShape: [784], numClasses: 10 });
  const x = tf.randomUniform([batch, 784]);
  const y = tf.tidy(() => tf.oneHot(tf.randomUniform([batch], 0, 10, 'int32'), 10).toFloat());
  const sampler = new GaussianSampler();
  const dp = { clipNorm: 1, noiseMultiplier: 1, expectedBatchSize: batch, learningRate: 0.01, path: 'fast' as const };
  const steps = {
    'DP-SGD': async () => {
      const stats = dpSgdStep(model, { x, y }, dp, sampler)!;
      await stats.lossSum.data();
      tf.dispose([stats.lossSum, stats.correct]);
    },
    'tuned non-private': async () => {
      const loss = tunedSgdStep(model, x, y, 0.01);
      await loss.data();
      loss.dispose();
    },
  };
  for (const [label, step] of Object.entries(steps)) {
    const { wallMs, rows } = await profileStep(step);
    const kernelMs = rows.filter((r) => !r.name.startsWith('forward ')).reduce((a, r) => a + r.ms, 0);
    console.log(
      `\n${label}, ${architecture}, batch ${batch}: ${wallMs.toFixed(0)} ms wall, ${kernelMs.toFixed(0)} ms in kernels (customGrad wrappers not counted twice)\n`,
    );
    console.log('| kernel, input shapes | ms | calls |\n|---|---:|---:|');
    for (const r of rows.slice(0, top)) console.log(`| ${r.name} | ${r.ms.toFixed(1)} | ${r.calls} |`);
  }
  tf.dispose([x, y]);
  model.dispose();
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.stack : error);
  process.exit(1);
});
