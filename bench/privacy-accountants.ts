import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { findNoiseMultiplier, RdpAccountant } from '../core/privacy/accountant.ts';
import { accountEpsilon, findNoiseMultiplierPld } from '../core/privacy/epsilon.ts';
import { pldEpsilon } from '../core/privacy/pld.ts';

/**
 * PLD against RDP on the settings the coordinator and the participants'
 * ledgers account: ε of each (at δ = 1e-5), which one 'auto' (the default)
 * reports, and the compute time of each, one computation per setting (the
 * PLD module caches compositions, so each row is its first, cold, run).
 * Then what the tighter bound buys: rounds within a client-level budget, and
 * the DP-SGD noise that reaches a target ε.
 *
 *   npx tsx bench/privacy-accountants.ts [--json FILE] [--quick]
 *
 * --quick drops the 10^5-step row (seconds of FFT on a loaded machine).
 */

const COMMAND = 'npx tsx bench/privacy-accountants.ts';
const DELTA = 1e-5;

interface Setting {
  readonly group: 'client-level' | 'DP-SGD';
  readonly label: string;
  readonly sampleRate: number;
  readonly noiseMultiplier: number;
  readonly steps: number;
  /** The noise is known only by an RDP bound (Skellam): 'auto' must stay on RDP. */
  readonly rdpOnly?: boolean;
}

interface Row extends Setting {
  readonly rdpEpsilon: number;
  readonly pldEpsilon: number | undefined;
  readonly pldLower: number | undefined;
  readonly auto: 'pld' | 'rdp';
  readonly autoEpsilon: number;
  readonly rdpMs: number;
  readonly pldMs: number | undefined;
}

const SETTINGS: Setting[] = [
  // Client-level DP-FedAvg: one step per round (q = client sample rate, z).
  { group: 'client-level', label: 'docs/privacy.md example, central, 20 rounds', sampleRate: 0.2, noiseMultiplier: 1, steps: 20 },
  { group: 'client-level', label: 'docs/privacy.md example, central, 100 rounds', sampleRate: 0.2, noiseMultiplier: 1, steps: 100 },
  {
    group: 'client-level',
    label: 'privacy-utility bench, central (ε 8 by RDP), 15 rounds',
    sampleRate: 0.3,
    noiseMultiplier: 1.1,
    steps: 15,
  },
  { group: 'client-level', label: 'large population, central, 1,000 rounds', sampleRate: 0.01, noiseMultiplier: 1, steps: 1000 },
  {
    group: 'client-level',
    label: 'distributed Gaussian shares, z = 1, m = 20: z/√m, 1 round',
    sampleRate: 1,
    noiseMultiplier: 1 / Math.sqrt(20),
    steps: 1,
  },
  {
    group: 'client-level',
    label: 'distributed Gaussian shares, z = 1, m = 20: z/√m, 100 rounds',
    sampleRate: 1,
    noiseMultiplier: 1 / Math.sqrt(20),
    steps: 100,
  },
  {
    group: 'client-level',
    label: 'distributed Skellam in the secure sum, z_eff = 1, 100 rounds',
    sampleRate: 1,
    noiseMultiplier: 1,
    steps: 100,
    rdpOnly: true,
  },
  // DP-SGD in a participant: q = B/n, epochs · n/B steps per round.
  {
    group: 'DP-SGD',
    label: 'docs/privacy.md demo (B 64, n 1,000), 20 rounds × 16 steps',
    sampleRate: 0.064,
    noiseMultiplier: 1.1,
    steps: 320,
  },
  { group: 'DP-SGD', label: 'e2e / integration test (B 50, n 500), 5 rounds × 10 steps', sampleRate: 0.1, noiseMultiplier: 1.1, steps: 50 },
  { group: 'DP-SGD', label: 'privacy-utility bench (ε 8 by RDP), 120 steps', sampleRate: 0.128, noiseMultiplier: 1.202, steps: 120 },
  {
    group: 'DP-SGD',
    label: 'TF Privacy MNIST tutorial, σ 1.1, 60 epochs',
    sampleRate: 256 / 60000,
    noiseMultiplier: 1.1,
    steps: Math.ceil((60 * 60000) / 256),
  },
  { group: 'DP-SGD', label: 'TF Privacy q 0.01, σ 0.7, 120 steps', sampleRate: 0.01, noiseMultiplier: 0.7, steps: 120 },
  { group: 'DP-SGD', label: 'q 0.01, σ 1, 1,000 steps', sampleRate: 0.01, noiseMultiplier: 1, steps: 1000 },
  { group: 'DP-SGD', label: 'q 0.01, σ 1, 10,000 steps', sampleRate: 0.01, noiseMultiplier: 1, steps: 10000 },
  { group: 'DP-SGD', label: 'q 0.01, σ 1, 100,000 steps', sampleRate: 0.01, noiseMultiplier: 1, steps: 100000 },
];

function timed<T>(run: () => T): { value: T; ms: number } {
  const start = performance.now();
  const value = run();
  return { value, ms: performance.now() - start };
}

function measure(setting: Setting): Row {
  const { sampleRate, noiseMultiplier, steps } = setting;
  const rdp = timed(() => new RdpAccountant().step({ sampleRate, noiseMultiplier, steps }).getEpsilon(DELTA));
  // What the coordinator and the ledgers compute under the default: the same function they call.
  const accountant = new RdpAccountant().step({ sampleRate, noiseMultiplier, steps, rdpOnly: setting.rdpOnly === true });
  if (setting.rdpOnly) {
    const auto = accountEpsilon(accountant, DELTA, 'auto');
    return {
      ...setting,
      rdpEpsilon: rdp.value,
      pldEpsilon: undefined,
      pldLower: undefined,
      auto: auto.accountant,
      autoEpsilon: auto.epsilon,
      rdpMs: rdp.ms,
      pldMs: undefined,
    };
  }
  const pld = timed(() => pldEpsilon([{ sampleRate, noiseMultiplier, steps }], DELTA));
  const auto = accountEpsilon(accountant, DELTA, 'auto');
  return {
    ...setting,
    rdpEpsilon: rdp.value,
    pldEpsilon: pld.value.epsilon,
    pldLower: pld.value.epsilonLower,
    auto: auto.accountant,
    autoEpsilon: auto.epsilon,
    rdpMs: rdp.ms,
    pldMs: pld.ms,
  };
}

/** The most rounds of (q, z) whose ε stays within the budget, by `epsilonOf`. */
function roundsWithin(budget: number, epsilonOf: (rounds: number) => number): number {
  let lo = 0;
  let hi = 1;
  while (epsilonOf(hi) <= budget) {
    lo = hi;
    hi *= 2;
  }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (epsilonOf(mid) <= budget) lo = mid;
    else hi = mid;
  }
  return lo;
}

const fmt = (x: number | undefined, digits = 3) => (x === undefined ? '—' : x.toFixed(digits));

function main(): void {
  const { values } = parseArgs({ options: { json: { type: 'string' }, quick: { type: 'boolean' } } });
  const started = performance.now();
  const settings = values.quick ? SETTINGS.filter((s) => s.steps < 100000) : SETTINGS;
  const rows: Row[] = [];
  for (const setting of settings) {
    const row = measure(setting);
    rows.push(row);
    console.error(`  ${row.label}: RDP ${fmt(row.rdpEpsilon)}, PLD ${fmt(row.pldEpsilon)} (${fmt(row.pldMs, 0)} ms)`);
  }

  const lines = [
    '| kind | setting | q | σ or z | steps | RDP ε | PLD ε [lower bound] | RDP / PLD | auto reports | RDP ms | PLD ms |',
    '|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|',
    ...rows
      .map((r) =>
        [
          r.group,
          r.label,
          Number(r.sampleRate.toPrecision(4)),
          Number(r.noiseMultiplier.toPrecision(4)),
          r.steps.toLocaleString('en'),
          fmt(r.rdpEpsilon),
          r.pldEpsilon === undefined ? '— (RDP bound only)' : `${fmt(r.pldEpsilon)} [${fmt(r.pldLower)}]`,
          r.pldEpsilon === undefined ? '—' : (r.rdpEpsilon / r.pldEpsilon).toFixed(2),
          `${r.auto.toUpperCase()} ${fmt(r.autoEpsilon)}`,
          fmt(r.rdpMs, 0),
          fmt(r.pldMs, 0),
        ].join(' | '),
      )
      .map((line) => `| ${line} |`),
  ];

  // What the tighter bound buys, at the same δ.
  const q = 0.2;
  const z = 1;
  const budget = 4;
  const rdpRounds = roundsWithin(budget, (t) =>
    new RdpAccountant().step({ sampleRate: q, noiseMultiplier: z, steps: t }).getEpsilon(DELTA),
  );
  const pldRounds = roundsWithin(budget, (t) => pldEpsilon([{ sampleRate: q, noiseMultiplier: z, steps: t }], DELTA).epsilon);
  const sgd = { sampleRate: 0.128, steps: 120, delta: DELTA, targetEpsilon: 8 };
  const rdpSigma = findNoiseMultiplier(sgd);
  const pldSigma = timed(() => findNoiseMultiplierPld({ ...sgd, start: rdpSigma, relativeTolerance: 1e-3 }));
  const gains = [
    `Client-level, q = ${q}, z = ${z}, ε budget ${budget} (--epsilon-budget ${budget}): ${rdpRounds} rounds under RDP, ${pldRounds} under PLD (${((pldRounds / rdpRounds - 1) * 100).toFixed(0)}% more).`,
    `DP-SGD, q = ${sgd.sampleRate}, ${sgd.steps} steps, target ε ${sgd.targetEpsilon}: σ = ${rdpSigma.toFixed(3)} under RDP, ${pldSigma.value.toFixed(3)} under PLD (${((1 - pldSigma.value / rdpSigma) * 100).toFixed(1)}% less noise; search ${(pldSigma.ms / 1000).toFixed(1)} s).`,
  ];

  const command = [COMMAND, ...process.argv.slice(2)].join(' ');
  console.log(`\nδ = ${DELTA}; RDP: improved conversion, dp_accounting's orders; PLD: Δ = 1e-4, pessimistic (connect the dots).\n`);
  console.log(lines.join('\n'));
  console.log(`\n${gains.join('\n')}\n`);
  console.log(`Command: ${command}`);
  console.log(`Total wall time: ${((performance.now() - started) / 1000).toFixed(0)} s`);
  if (values.json) {
    writeFileSync(
      values.json,
      `${JSON.stringify({ command, delta: DELTA, rows, rounds: { q, z, budget, rdpRounds, pldRounds }, dpSgdNoise: { ...sgd, rdpSigma, pldSigma: pldSigma.value }, date: new Date().toISOString() }, null, 2)}\n`,
    );
  }
}

main();
