/**
 * `npm run privacy -- ...`: (ε, δ) of DP-SGD / DP-FedAvg with Poisson
 * sampling, from the PLD accountant (core/privacy/pld.ts) and the RDP
 * accountant (core/privacy/accountant.ts; both conversions, improved and
 * classic). `epsilon` is the chosen accountant's (--accountant; by default
 * the tighter of the two). With --target-epsilon, the noise multiplier that
 * reaches a budget. Bad or missing flags exit with code 2.
 */

import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import {
  DEFAULT_ORDERS,
  computeRdp,
  epsilonFromRdp,
  findNoiseMultiplier,
  type Conversion,
  type EpsilonResult,
  type FractionalSeries,
} from '../core/privacy/accountant.ts';
import { findNoiseMultiplierPld, isAccountantKind, type AccountantKind } from '../core/privacy/epsilon.ts';
import { pldEpsilon, type PldEpsilon } from '../core/privacy/pld.ts';

const USAGE = `Usage: npm run privacy -- [options]

Privacy of the Poisson-subsampled Gaussian mechanism (DP-SGD, DP-FedAvg)
by PLD and RDP accounting, with add/remove-one neighbours (the worse of
adding and removing a record).

Sampling, one of:
  --sample-rate Q        Poisson sampling probability per step, 0 < Q <= 1
  --steps T              number of steps (integer >= 1)
or
  --dataset-size N       examples (or clients) in the population
  --batch-size B         expected batch (or clients per round); q = B/N
  --epochs E             passes over the data; steps = ceil(E*N/B)

Noise, one of:
  --noise-multiplier Z   noise std / clipping norm; prints epsilon
  --target-epsilon X     finds the smallest noise multiplier with epsilon <= X

Required:
  --delta D              target delta, 0 < D < 1

Accounting:
  --accountant A         auto (default: the tighter of pld and rdp), pld, rdp;
                         the one that gives "epsilon"
  --orders LIST          RDP orders: dp_accounting (default), opacus, or a
                         comma-separated list of orders > 1
  --series S             fractional RDP orders summed with abs (default,
                         dp_accounting since 2024) or signed (Opacus, older
                         TF Privacy) binomial terms

Output:
  --json                 one JSON object instead of text
  --help                 this message

Both RDP -> (epsilon, delta) conversions are printed: "improved" (Balle et al.
2020; what dp_accounting, Opacus and TF Privacy report since 2021) and
"classic" (Mironov 2017; what older tables, e.g. the TF Privacy MNIST tutorial,
report). PLD: connect-the-dots discretisation on a loss grid of 1e-4, FFT
composition; it prints an upper bound (charged) and a lower bound on the true
epsilon, whose gap bounds the discretisation error.`;

const OPTIONS = {
  'sample-rate': { type: 'string' },
  steps: { type: 'string' },
  'dataset-size': { type: 'string' },
  'batch-size': { type: 'string' },
  epochs: { type: 'string' },
  'noise-multiplier': { type: 'string' },
  'target-epsilon': { type: 'string' },
  delta: { type: 'string' },
  accountant: { type: 'string' },
  orders: { type: 'string' },
  series: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export interface CliResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

class UsageError extends Error {}

/** Parses a flag value as a finite number, strictly (no "12abc", no empty string). */
function numberFlag(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const value = raw.trim() === '' ? NaN : Number(raw);
  if (!Number.isFinite(value)) throw new UsageError(`--${name} must be a number, got "${raw}"`);
  return value;
}

function integerFlag(name: string, raw: string | undefined): number | undefined {
  const value = numberFlag(name, raw);
  if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) {
    throw new UsageError(`--${name} must be a whole number >= 1, got "${raw}"`);
  }
  return value;
}

interface Plan {
  readonly sampleRate: number;
  readonly steps: number;
  readonly delta: number;
  readonly noiseMultiplier?: number;
  readonly targetEpsilon?: number;
  readonly dataset?: { readonly datasetSize: number; readonly batchSize: number; readonly epochs: number };
  readonly accountant: AccountantKind;
  readonly orders: { readonly name: string; readonly values: readonly number[] };
  readonly series: FractionalSeries;
  readonly json: boolean;
}

/** Order lists of the libraries whose published tables one may want to reproduce. */
const ORDER_PRESETS: Readonly<Record<string, { readonly values: readonly number[]; readonly note: string }>> = {
  dp_accounting: {
    values: DEFAULT_ORDERS,
    note: `dp_accounting default, ${DEFAULT_ORDERS.length} orders: 1.1..10.9 by 0.1, 11..63, 128, 256, 512, 1024`,
  },
  // opacus/accountants/rdp.py DEFAULT_ALPHAS: [1 + x/10 for x in 1..99] + list(range(12, 64))
  opacus: {
    values: [...Array.from({ length: 99 }, (_, k) => 1 + (k + 1) / 10), ...Array.from({ length: 52 }, (_, k) => 12 + k)],
    note: 'Opacus default, 151 orders: 1.1..10.9 by 0.1, 12..63',
  },
};

function parseOrders(raw: string | undefined): Plan['orders'] {
  if (raw === undefined) return { name: 'dp_accounting', values: DEFAULT_ORDERS };
  const preset = ORDER_PRESETS[raw];
  if (preset) return { name: raw, values: preset.values };
  const values = raw.split(',').map((part) => (part.trim() === '' ? NaN : Number(part)));
  if (values.length === 0 || values.some((v) => !(v > 1) || v === Infinity)) {
    throw new UsageError(`--orders must be dp_accounting, opacus or a comma-separated list of finite orders > 1, got "${raw}"`);
  }
  return { name: 'custom', values };
}

/** The flags as parseArgs reads them; it explains unknown flags, missing values and stray arguments. */
function readFlags(argv: readonly string[]) {
  try {
    return parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

function plan(argv: readonly string[]): Plan | 'help' {
  const values = readFlags(argv);
  if (values.help) return 'help';
  const accountant = values.accountant ?? 'auto';
  if (!isAccountantKind(accountant)) throw new UsageError(`--accountant must be auto, pld or rdp, got "${accountant}"`);
  const seriesFlag = values.series ?? 'abs';
  if (seriesFlag !== 'abs' && seriesFlag !== 'signed') throw new UsageError(`--series must be abs or signed, got "${seriesFlag}"`);
  const orders = parseOrders(values.orders);

  const q = numberFlag('sample-rate', values['sample-rate']);
  const steps = integerFlag('steps', values.steps);
  const datasetSize = integerFlag('dataset-size', values['dataset-size']);
  const batchSize = integerFlag('batch-size', values['batch-size']);
  const epochs = numberFlag('epochs', values.epochs);
  const noiseMultiplier = numberFlag('noise-multiplier', values['noise-multiplier']);
  const targetEpsilon = numberFlag('target-epsilon', values['target-epsilon']);
  const delta = numberFlag('delta', values.delta);

  const direct = q !== undefined || steps !== undefined;
  const fromDataset = datasetSize !== undefined || batchSize !== undefined || epochs !== undefined;
  if (direct && fromDataset) {
    throw new UsageError('give either --sample-rate/--steps or --dataset-size/--batch-size/--epochs, not both');
  }
  if (!direct && !fromDataset) {
    throw new UsageError('missing sampling: give --sample-rate and --steps, or --dataset-size, --batch-size and --epochs');
  }

  let sampleRate: number;
  let totalSteps: number;
  let dataset: Plan['dataset'];
  if (direct) {
    if (q === undefined) throw new UsageError('missing --sample-rate');
    if (steps === undefined) throw new UsageError('missing --steps');
    if (!(q > 0 && q <= 1)) throw new UsageError(`--sample-rate must be in (0, 1], got ${q}`);
    sampleRate = q;
    totalSteps = steps;
  } else {
    if (datasetSize === undefined) throw new UsageError('missing --dataset-size');
    if (batchSize === undefined) throw new UsageError('missing --batch-size');
    if (epochs === undefined) throw new UsageError('missing --epochs');
    if (batchSize > datasetSize) throw new UsageError('--batch-size must not exceed --dataset-size');
    if (!(epochs > 0)) throw new UsageError(`--epochs must be > 0, got ${epochs}`);
    // As TF Privacy's compute_dp_sgd_privacy: q = B/N, steps = ceil(E·N/B).
    sampleRate = batchSize / datasetSize;
    totalSteps = Math.ceil((epochs * datasetSize) / batchSize);
    dataset = { datasetSize, batchSize, epochs };
  }

  if (delta === undefined) throw new UsageError('missing --delta');
  if (!(delta > 0 && delta < 1)) throw new UsageError(`--delta must be in (0, 1), got ${delta}`);

  if ((noiseMultiplier === undefined) === (targetEpsilon === undefined)) {
    throw new UsageError('give exactly one of --noise-multiplier and --target-epsilon');
  }
  if (noiseMultiplier !== undefined && !(noiseMultiplier > 0)) {
    throw new UsageError(`--noise-multiplier must be > 0 (0 means no privacy: epsilon = infinity), got ${noiseMultiplier}`);
  }
  if (targetEpsilon !== undefined && !(targetEpsilon > 0)) {
    throw new UsageError(`--target-epsilon must be > 0, got ${targetEpsilon}`);
  }
  return {
    sampleRate,
    steps: totalSteps,
    delta,
    json: values.json === true,
    accountant,
    orders,
    series: seriesFlag === 'abs' ? 'absolute' : 'signed',
    ...(noiseMultiplier !== undefined ? { noiseMultiplier } : {}),
    ...(targetEpsilon !== undefined ? { targetEpsilon } : {}),
    ...(dataset ? { dataset } : {}),
  };
}

const CONVERSIONS: readonly { readonly key: Conversion; readonly label: string }[] = [
  { key: 'improved', label: 'improved conversion of RDP (Balle et al. 2020; dp_accounting, Opacus, TF Privacy since 2021)' },
  { key: 'classic', label: 'classic conversion of RDP  (Mironov 2017; pre-2021 tables such as the TF Privacy tutorial)' },
];

function ordersNote(orders: Plan['orders']): string {
  return ORDER_PRESETS[orders.name]?.note ?? `${orders.values.length} orders: ${orders.values.join(', ')}`;
}

function fmt(x: number): string {
  return Number.isFinite(x) ? String(Number(x.toPrecision(6))) : String(x);
}

function header(p: Plan): string[] {
  const lines = ['Poisson-subsampled Gaussian mechanism, add/remove-one neighbours (worse of add and remove)'];
  lines.push(
    `  sample rate q     ${fmt(p.sampleRate)}${p.dataset ? `  (batch ${p.dataset.batchSize} / dataset ${p.dataset.datasetSize})` : ''}`,
  );
  if (p.noiseMultiplier !== undefined) lines.push(`  noise multiplier  ${p.noiseMultiplier}`);
  lines.push(`  steps             ${p.steps}${p.dataset ? `  (${p.dataset.epochs} epochs, ceil(E*N/B))` : ''}`);
  lines.push(`  delta             ${p.delta}`);
  lines.push(`  RDP orders        ${ordersNote(p.orders)}; ${p.series === 'absolute' ? 'abs' : 'signed'} series`);
  lines.push(`  accountant        ${p.accountant}${p.accountant === 'auto' ? ' (the tighter of PLD and RDP-improved)' : ''}`);
  return lines;
}

function pldJson(r: PldEpsilon): Record<string, unknown> {
  return {
    epsilon: r.epsilon,
    epsilonLower: r.epsilonLower,
    discretisationInterval: r.discretisationInterval,
    truncatedMass: r.truncatedMass,
    worstRelation: r.worstRelation,
    method: r.method,
  };
}

function pldLine(r: PldEpsilon): string {
  const how =
    r.method === 'analytic-gaussian'
      ? 'closed form (q = 1: one Gaussian)'
      : `grid ${r.discretisationInterval}, truncated mass ${r.truncatedMass.toExponential(1)} charged to delta, worse relation: ${r.worstRelation}`;
  return `  epsilon, PLD (upper bound, charged): ${fmt(r.epsilon)}  (true epsilon >= ${fmt(r.epsilonLower)}; ${how})`;
}

/** Which accountant gives "epsilon": the chosen one, or under auto the smaller of PLD and RDP-improved. */
function chosen(kind: AccountantKind, pld: number | undefined, rdp: number): { accountant: 'pld' | 'rdp'; epsilon: number } {
  if (kind === 'rdp' || pld === undefined) return { accountant: 'rdp', epsilon: rdp };
  if (kind === 'pld' || pld <= rdp) return { accountant: 'pld', epsilon: pld };
  return { accountant: 'rdp', epsilon: rdp };
}

function execute(p: Plan): string {
  const orders = p.orders.values;
  const rdpOptions = { fractionalSeries: p.series };
  const base = {
    sampleRate: p.sampleRate,
    steps: p.steps,
    delta: p.delta,
    ...(p.dataset ?? {}),
    orders: p.orders.name === 'dp_accounting' ? 'dp_accounting-default' : p.orders.name === 'custom' ? orders : `${p.orders.name}-default`,
    series: p.series === 'absolute' ? 'abs' : 'signed',
    neighbours: 'add/remove one record (worse of the two)',
  };
  const withPld = p.accountant !== 'rdp';
  if (p.noiseMultiplier !== undefined) {
    const rdp = computeRdp(p.sampleRate, p.noiseMultiplier, p.steps, orders, rdpOptions);
    const results = new Map<Conversion, EpsilonResult>(CONVERSIONS.map(({ key }) => [key, epsilonFromRdp(orders, rdp, p.delta, key)]));
    const pld = withPld
      ? pldEpsilon([{ sampleRate: p.sampleRate, noiseMultiplier: p.noiseMultiplier, steps: p.steps }], p.delta)
      : undefined;
    const pick = chosen(p.accountant, pld?.epsilon, results.get('improved')!.epsilon);
    if (p.json) {
      return JSON.stringify({
        ...base,
        noiseMultiplier: p.noiseMultiplier,
        epsilon: pick.epsilon,
        accountant: pick.accountant,
        ...(pld ? { pld: pldJson(pld) } : {}),
        improved: results.get('improved'),
        classic: results.get('classic'),
      });
    }
    const lines = header(p);
    lines.push('');
    lines.push(`  epsilon: ${fmt(pick.epsilon)}  (${pick.accountant.toUpperCase()})`);
    if (pld) lines.push(pldLine(pld));
    for (const { key, label } of CONVERSIONS) {
      const r = results.get(key)!;
      lines.push(`  epsilon, ${label}: ${fmt(r.epsilon)}  (optimal order ${r.optimalOrder})`);
    }
    return lines.join('\n');
  }

  const targetEpsilon = p.targetEpsilon!;
  const found = CONVERSIONS.map(({ key, label }) => {
    const sigma = findNoiseMultiplier({
      sampleRate: p.sampleRate,
      steps: p.steps,
      delta: p.delta,
      targetEpsilon,
      conversion: key,
      orders,
      fractionalSeries: p.series,
    });
    const reached = epsilonFromRdp(orders, computeRdp(p.sampleRate, sigma, p.steps, orders, rdpOptions), p.delta, key);
    return { key, label, noiseMultiplier: sigma, ...reached };
  });
  const improved = found.find((f) => f.key === 'improved')!;
  let pldFound: { noiseMultiplier: number; result: PldEpsilon } | undefined;
  if (withPld) {
    const sigma = findNoiseMultiplierPld({
      sampleRate: p.sampleRate,
      steps: p.steps,
      delta: p.delta,
      targetEpsilon,
      start: improved.noiseMultiplier,
    });
    pldFound = {
      noiseMultiplier: sigma,
      result: pldEpsilon([{ sampleRate: p.sampleRate, noiseMultiplier: sigma, steps: p.steps }], p.delta),
    };
  }
  // The smaller σ that reaches the target under the chosen accountant.
  const pick =
    p.accountant === 'rdp' || !pldFound || (p.accountant === 'auto' && improved.noiseMultiplier < pldFound.noiseMultiplier)
      ? { accountant: 'rdp' as const, noiseMultiplier: improved.noiseMultiplier, epsilon: improved.epsilon }
      : { accountant: 'pld' as const, noiseMultiplier: pldFound.noiseMultiplier, epsilon: pldFound.result.epsilon };
  if (p.json) {
    const byKey = Object.fromEntries(
      found.map((f) => [f.key, { noiseMultiplier: f.noiseMultiplier, epsilon: f.epsilon, optimalOrder: f.optimalOrder }]),
    );
    return JSON.stringify({
      ...base,
      targetEpsilon,
      ...pick,
      ...(pldFound ? { pld: { noiseMultiplier: pldFound.noiseMultiplier, ...pldJson(pldFound.result) } } : {}),
      ...byKey,
    });
  }
  const lines = header(p);
  lines.push(`  target epsilon    ${targetEpsilon}`);
  lines.push('');
  lines.push(`  noise multiplier: ${fmt(pick.noiseMultiplier)}  (${pick.accountant.toUpperCase()}, epsilon ${fmt(pick.epsilon)})`);
  if (pldFound)
    lines.push(
      `  noise multiplier, PLD: ${fmt(pldFound.noiseMultiplier)}  (epsilon ${fmt(pldFound.result.epsilon)}, true epsilon >= ${fmt(pldFound.result.epsilonLower)})`,
    );
  for (const f of found) {
    lines.push(`  noise multiplier, ${f.label}: ${fmt(f.noiseMultiplier)}  (epsilon ${fmt(f.epsilon)} at order ${f.optimalOrder})`);
  }
  return lines.join('\n');
}

/** The whole CLI as a function of its arguments, for tests and for main(). */
export function privacyCli(argv: readonly string[]): CliResult {
  try {
    const p = plan(argv);
    if (p === 'help') return { exitCode: 0, stdout: `${USAGE}\n`, stderr: '' };
    return { exitCode: 0, stdout: `${execute(p)}\n`, stderr: '' };
  } catch (error) {
    if (error instanceof UsageError) {
      return { exitCode: 2, stdout: '', stderr: `privacy: ${error.message}\nRun with --help for usage.\n` };
    }
    // RangeErrors from the accountant (e.g. an unreachable target epsilon) are input problems too.
    if (error instanceof RangeError) return { exitCode: 2, stdout: '', stderr: `privacy: ${error.message}\n` };
    throw error;
  }
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  const result = privacyCli(process.argv.slice(2));
  process.stdout.write(result.stdout);
  process.stderr.write(result.stderr);
  process.exitCode = result.exitCode;
}
