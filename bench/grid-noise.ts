import * as tf from '@tensorflow/tfjs';
import { noisyGradientSum } from '../core/privacy/dp-sgd.ts';
import { dpSgdGrid } from '../core/privacy/grid-noise.ts';
import { GaussianSampler } from '../core/privacy/update-privacy.ts';
import { initNodeBackend } from '../coordinator/tf-node.ts';
import { median } from './stats.ts';

/**
 * The cost of float-safe noise on one DP-SGD step of the FedAvg CNN
 * (1,663,370 values), measured in one run against the float32 noise it
 * replaced (draw N(0,1) per value in JS, upload, tf.add). Bounded: 7 reps each.
 * Usage: npx tsx bench/grid-noise.ts
 */
const D = 1_663_370;
const REPS = 7;

async function main(): Promise<void> {
  const backend = await initNodeBackend();
  const sums = [tf.randomNormal([D], 0, 0.01)];
  const sampler = new GaussianSampler();
  const float32Noise = (): tf.Tensor[] => {
    const noise = new Float32Array(D);
    for (let i = 0; i < D; i++) noise[i] = sampler.next();
    return [tf.add(sums[0]!, tf.tensor(noise, [D]))];
  };
  const gridNoise = (): tf.Tensor[] => noisyGradientSum(sums, 1, 1, 32, sampler);
  const times = { float32: [] as number[], grid: [] as number[] };
  for (let rep = 0; rep < REPS; rep++) {
    for (const [name, run] of [
      ['float32', float32Noise],
      ['grid', gridNoise],
    ] as const) {
      const started = performance.now();
      const out = run();
      await out[0]!.data();
      times[name].push(performance.now() - started);
      tf.dispose(out);
    }
  }
  const plan = dpSgdGrid(1, 1, D, 32);
  const f = median(times.float32.slice(1));
  const g = median(times.grid.slice(1));
  console.log(`backend ${backend}, d = ${D}, G = ${plan.stepsPerClip}, slack ${(100 * plan.slack).toFixed(2)}%`);
  console.log(
    `float32 noise ${f.toFixed(1)} ms, grid noise ${g.toFixed(1)} ms (${(g / f).toFixed(2)}x), median of ${REPS - 1} after a warm-up`,
  );
  sums[0]!.dispose();
}

void main();
