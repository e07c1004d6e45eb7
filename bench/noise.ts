import { parseArgs } from 'node:util';
import { GaussianSampler } from '../core/privacy/update-privacy.ts';
import { median } from './stats.ts';
import { BoxMullerSampler } from './box-muller-sampler.ts';

const COMMAND = 'npx tsx bench/noise.ts';

const USAGE = `Usage: ${COMMAND} [--samples N] [--reps N]

Time to draw N standard normals from the CSPRNG into a Float32Array (what a
DP-SGD step does once per weight): the ziggurat sampler's fill() against the
Box-Muller sampler it replaced (one next() per value). Alternated, medians.

  --samples N   (default 1,663,370: the FedAvg CNN's parameter count)
  --reps N      timed repetitions of each, after a warm-up (default 15)
`;

function main(): void {
  const { values } = parseArgs({ options: { samples: { type: 'string' }, reps: { type: 'string' }, help: { type: 'boolean' } } });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const samples = Number(values.samples ?? 1_663_370);
  const reps = Number(values.reps ?? 15);
  if (!Number.isInteger(samples) || samples < 1 || !Number.isInteger(reps) || reps < 1)
    throw new Error(`--samples and --reps must be positive integers\n\n${USAGE}`);
  const out = new Float32Array(samples);
  const ziggurat = new GaussianSampler();
  const boxMuller = new BoxMullerSampler();
  const time = (sampler: GaussianSampler) => {
    const started = performance.now();
    sampler.fill(out, 1);
    return performance.now() - started;
  };
  for (let i = 0; i < 3; i++) {
    time(ziggurat);
    time(boxMuller);
  }
  const zigguratMs: number[] = [];
  const boxMullerMs: number[] = [];
  for (let r = 0; r < reps; r++) {
    if (r % 2 === 0) {
      zigguratMs.push(time(ziggurat));
      boxMullerMs.push(time(boxMuller));
    } else {
      boxMullerMs.push(time(boxMuller));
      zigguratMs.push(time(ziggurat));
    }
  }
  const z = median(zigguratMs);
  const b = median(boxMullerMs);
  console.log(`\n\`${COMMAND} --samples ${samples} --reps ${reps}\` — Node ${process.version}, median ms\n`);
  console.log('| samples | Box-Muller, next() per value (before) | ziggurat fill() (after) | speed-up |');
  console.log('|---:|---:|---:|---:|');
  console.log(`| ${samples.toLocaleString('en-US')} | ${b.toFixed(1)} | ${z.toFixed(1)} | ${(b / z).toFixed(1)}× |`);
}

main();
