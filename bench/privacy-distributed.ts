import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { isPositiveInt, numberFlag } from '../coordinator/flags.ts';
import { addSkellamNoiseMod32, distributedSumNoiseStd, planDistributedNoise } from '../core/privacy/distributed-noise.ts';
import { addGaussianNoise, clipToNorm, GaussianSampler } from '../core/privacy/update-privacy.ts';
import { SeededRandom } from '../core/random/prng.ts';
import { sha256 } from '../core/secagg/bytes.ts';
import { recommendedThreshold, type SecAggConfig } from '../core/secagg/protocol.ts';
import { runLocalRound } from '../core/secagg/simulate.ts';

const COMMAND = 'npx tsx bench/privacy-distributed.ts';

const USAGE = `Usage: ${COMMAND} [options]

The secure sum's noise with 0, 2 and 4 of 10 participants dropped (before
sending their masked input), through the real secure aggregation round
(core/secagg/simulate.ts runLocalRound: keys, masks, Shamir shares, unmasking
of the dropped participants' masks) on clipped random updates whose plain sum
is known, so the residual of the decoded sum is the noise alone:

  gaussian  --distributed-noise gaussian: each participant adds its float
            share N(0, (zC)²/n) before quantising (not over-provisioned);
            target: central DP's std zC.
  skellam   --distributed-noise skellam --tolerated-dropouts D: each adds
            Skellam(μ/(n − D − 1)) integers after quantising
            (core/privacy/distributed-noise.ts planDistributedNoise);
            target: central DP's std zΔ₂γ on the grid (what the accountant
            charges).

  --coordinates L        values per update (default 100000)
  --participants N       (default 10)
  --tolerated-dropouts D (default 4)
  --json FILE            write the raw results as JSON
  --help                 show this text

z = 1, C = 1, clip range 2, quantisation range 2^22 (γ = 2^-20).
`;

const Z = 1;
const CLIP = 1;
const DROPPED = [0, 2, 4];

function fail(message: string): never {
  console.error(`${message}\n\n${USAGE}`);
  process.exit(2);
}

interface Row {
  readonly mechanism: 'gaussian' | 'skellam';
  readonly dropped: number;
  readonly contributors: number;
  readonly measuredStd: number;
  readonly predictedStd: number;
  readonly targetStd: number;
}

/** The sample std of the decoded sum minus the plain sum of the contributors' updates. */
function residualStd(sum: Float64Array, updates: ReadonlyMap<number, Float32Array>, contributors: readonly number[]): number {
  const residual = Float64Array.from(sum);
  for (const u of contributors) {
    const update = updates.get(u)!;
    for (let i = 0; i < residual.length; i++) residual[i] = residual[i]! - update[i]!;
  }
  let mean = 0;
  for (const r of residual) mean += r;
  mean /= residual.length;
  let squares = 0;
  for (const r of residual) squares += (r - mean) ** 2;
  return Math.sqrt(squares / (residual.length - 1));
}

async function main(): Promise<void> {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: process.argv.slice(2),
      strict: true,
      options: {
        coordinates: { type: 'string' },
        participants: { type: 'string' },
        'tolerated-dropouts': { type: 'string' },
        json: { type: 'string' },
        help: { type: 'boolean' },
      },
    }).values;
  } catch (error) {
    fail((error as Error).message);
  }
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const flag = (name: string, fallback: number, ok: (n: number) => boolean, expected: string): number =>
    numberFlag(values[name] as string | undefined, name, ok, expected, fail) ?? fallback;
  const length = flag('coordinates', 100_000, isPositiveInt, 'a positive integer');
  const n = flag('participants', 10, (x) => isPositiveInt(x) && x >= 6, 'an integer ≥ 6 (4 may drop, 2 must stay)');
  const tolerated = flag('tolerated-dropouts', 4, (x) => Number.isInteger(x) && x >= 0 && n - x - 1 >= 1, 'an integer with n − D − 1 ≥ 1');

  const config: SecAggConfig = {
    round: 1,
    participants: n,
    neighbours: 'all',
    threshold: recommendedThreshold(n, 'all'),
    roundSeed: await sha256(new TextEncoder().encode('privacy-distributed-bench')),
    vectorLength: length,
    quantization: { clipRange: 2, quantizationRange: 2 ** 22 },
  };
  const step = (2 * config.quantization.clipRange) / config.quantization.quantizationRange;
  const plan = planDistributedNoise({
    clipNorm: CLIP,
    noiseMultiplier: Z,
    dimension: length,
    step,
    expectedContributors: n,
    toleratedDropouts: tolerated,
  });
  const updates = new Map<number, Float32Array>();
  for (let u = 1; u <= n; u++) {
    const random = new SeededRandom(50 + u);
    const update = Float32Array.from({ length }, () => 2 * random.next() - 1);
    clipToNorm(update, CLIP);
    updates.set(u, update);
  }

  const rows: Row[] = [];
  const started = performance.now();
  for (const dropped of DROPPED) {
    const gone = Array.from({ length: dropped }, (_, k) => n - k);
    const dropouts = { beforeMaskedInput: gone };
    const gaussian = await runLocalRound(config, (u) => updates.get(u)!, {
      dropouts,
      maskOptions: (u) => ({
        beforeQuantize: (update) => addGaussianNoise(update, (Z * CLIP) / Math.sqrt(n), new GaussianSampler(new SeededRandom(900 + u))),
      }),
    });
    const skellam = await runLocalRound(config, (u) => updates.get(u)!, {
      dropouts,
      maskOptions: (u) => ({
        afterQuantize: (encoded) => addSkellamNoiseMod32(encoded, plan.participantVariance, new SeededRandom(700 + u)),
      }),
    });
    for (const [mechanism, round] of [
      ['gaussian', gaussian],
      ['skellam', skellam],
    ] as const) {
      const contributors = round.result.contributors;
      if (contributors.length !== n - dropped)
        throw new Error(`${mechanism}: ${contributors.length} contributors, expected ${n - dropped}`);
      rows.push({
        mechanism,
        dropped,
        contributors: contributors.length,
        measuredStd: residualStd(round.result.sum, updates, contributors),
        predictedStd:
          mechanism === 'gaussian' ? Z * CLIP * Math.sqrt(contributors.length / n) : distributedSumNoiseStd(plan, contributors.length),
        targetStd: mechanism === 'gaussian' ? Z * CLIP : Z * plan.sensitivityL2 * step,
      });
    }
    console.error(`  ${dropped} of ${n} dropped: done (${((performance.now() - started) / 1000).toFixed(1)} s)`);
  }

  const lines = [
    `| noise | dropped of ${n} | shares in the sum | measured std | predicted std | target std (central) | measured / target |`,
    '|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.mechanism === 'gaussian' ? 'Gaussian shares (accounted alone)' : `Skellam, D = ${tolerated}`} | ${r.dropped} | ${r.contributors} | ` +
        `${r.measuredStd.toFixed(5)} | ${r.predictedStd.toFixed(5)} | ${r.targetStd.toFixed(5)} | ${(r.measuredStd / r.targetStd).toFixed(3)} |`,
    ),
  ];
  const command = [COMMAND, ...process.argv.slice(2)].join(' ');
  console.log(`\n${lines.join('\n')}\n`);
  console.log(
    `Skellam plan: Δ₂ = ${plan.sensitivityL2.toFixed(1)} grid steps (C/γ = ${(CLIP / step).toFixed(0)}), μ = (zΔ₂)² = ${plan.targetVariance.toExponential(4)}, ` +
      `μ_i = μ/(n − D − 1) = ${plan.participantVariance.toExponential(4)}, z_eff = ${plan.effectiveNoiseMultiplier.toFixed(6)}`,
  );
  console.log(`Std error of each std estimate: about 1/√(2L) = ${(100 / Math.sqrt(2 * length)).toFixed(2)}%`);
  console.log(`Command: ${command}`);
  console.log(`Total wall time: ${((performance.now() - started) / 1000).toFixed(0)} s`);
  if (values.json) {
    const report = { command, z: Z, clipNorm: CLIP, coordinates: length, participants: n, plan, rows, date: new Date().toISOString() };
    await writeFile(values.json as string, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`Raw results: ${values.json}`);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
