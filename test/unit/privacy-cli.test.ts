import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { privacyCli } from '../../coordinator/privacy-cli.ts';
import { computeRdp, epsilonFromRdp } from '../../core/privacy/accountant.ts';
import { nodeEntryArgs } from '../helpers/entry-bundle.ts';

const root = path.resolve(import.meta.dirname, '../..');
const privacyCliArgs = await nodeEntryArgs('coordinator/privacy-cli.ts');

/** Runs the CLI the way `npm run privacy` does, as its own process. */
function run(args: readonly string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [...privacyCliArgs, ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

interface EpsilonJson {
  readonly epsilon: number;
  readonly optimalOrder: number;
}

describe('privacy CLI (child process)', () => {
  it('reproduces TF Privacy compute_dp_sgd_privacy_test Test0 with --json', () => {
    // tensorflow/privacy tensorflow_privacy/privacy/analysis/compute_dp_sgd_privacy_test.py, Test0:
    // n 60000, batch 150, σ 1.3, 15 epochs, δ 1e-5 → 0.7242234026109595 (improved; 0.941870567 classic
    // in the 2019-2020 file), optimal order 19 in both.
    const { status, stdout, stderr } = run([
      '--dataset-size',
      '60000',
      '--batch-size',
      '150',
      '--epochs',
      '15',
      '--noise-multiplier',
      '1.3',
      '--delta',
      '1e-5',
      '--json',
    ]);
    assert.equal(status, 0, stderr);
    const out = JSON.parse(stdout) as { sampleRate: number; steps: number; improved: EpsilonJson; classic: EpsilonJson };
    assert.equal(out.sampleRate, 150 / 60000);
    assert.equal(out.steps, 6000);
    assert.ok(Math.abs(out.improved.epsilon - 0.7242234026109595) < 1e-8 * 0.7242234026109595, `improved ${out.improved.epsilon}`);
    assert.ok(Math.abs(out.classic.epsilon - 0.941870567) < 1e-8 * 0.941870567, `classic ${out.classic.epsilon}`);
    assert.equal(out.improved.optimalOrder, 19);
    assert.equal(out.classic.optimalOrder, 19);
  });

  it('prints both conversions as text, labelled, for the TF Privacy tutorial command (classic ε 3.01)', () => {
    // tensorflow/privacy tutorials/README.md: compute_dp_sgd_privacy.py --N=60000 --batch_size=256
    // --noise_multiplier=1.1 --epochs=60 --delta=1e-5 → "eps = 3.01" (classic conversion).
    const { status, stdout, stderr } = run([
      '--dataset-size',
      '60000',
      '--batch-size',
      '256',
      '--epochs',
      '60',
      '--noise-multiplier',
      '1.1',
      '--delta',
      '1e-5',
    ]);
    assert.equal(status, 0, stderr);
    assert.match(stdout, /steps\s+14063/);
    const classic = /epsilon, classic conversion[^:]*: ([\d.]+)\s+\(optimal order ([\d.]+)\)/.exec(stdout);
    const improved = /epsilon, improved conversion[^:]*: ([\d.]+)\s+\(optimal order ([\d.]+)\)/.exec(stdout);
    assert.ok(classic && improved, stdout);
    assert.equal(Number(classic[1]).toFixed(2), '3.01');
    assert.ok(Number(improved[1]) < Number(classic[1]));
  });

  it('exits 2 with a clear message when --delta is missing', () => {
    const { status, stdout, stderr } = run(['--sample-rate', '0.01', '--steps', '1000', '--noise-multiplier', '1.1']);
    assert.equal(status, 2);
    assert.equal(stdout, '');
    assert.match(stderr, /missing --delta/);
    assert.match(stderr, /--help/);
  });

  it('exits 2 on an unknown flag', () => {
    const { status, stderr } = run(['--sample-rate', '0.01', '--steps', '10', '--noise', '1', '--delta', '1e-5']);
    assert.equal(status, 2);
    assert.match(stderr, /Unknown option '--noise'/);
  });
});

describe('privacy CLI (in process)', () => {
  it('--help prints usage and exits 0', () => {
    const result = privacyCli(['--help']);
    assert.equal(result.exitCode, 0);
    assert.match(result.stdout, /Usage: npm run privacy/);
    assert.match(result.stdout, /--target-epsilon/);
  });

  it('finds the noise multiplier for a target ε (TF Privacy compute_noise_from_budget_test Test0)', () => {
    // tensorflow/privacy .../compute_noise_from_budget_test.py: target 0.941870567 (classic) → σ 1.3
    const result = privacyCli([
      '--dataset-size',
      '60000',
      '--batch-size',
      '150',
      '--epochs',
      '15',
      '--target-epsilon',
      '0.941870567',
      '--delta',
      '1e-5',
      '--json',
    ]);
    assert.equal(result.exitCode, 0, result.stderr);
    const out = JSON.parse(result.stdout) as {
      classic: { noiseMultiplier: number };
      improved: { noiseMultiplier: number; epsilon: number };
    };
    assert.ok(Math.abs(out.classic.noiseMultiplier - 1.3) < 5e-8, `classic σ ${out.classic.noiseMultiplier}`);
    assert.ok(out.improved.noiseMultiplier < out.classic.noiseMultiplier);
    assert.ok(out.improved.epsilon <= 0.941870567);
  });

  it('rejects bad and conflicting flags with exit code 2', () => {
    const bad: readonly (readonly [string[], RegExp])[] = [
      [[], /missing sampling/],
      [['--sample-rate', 'abc', '--steps', '10', '--noise-multiplier', '1', '--delta', '1e-5'], /--sample-rate must be a number/],
      [['--sample-rate', '1.5', '--steps', '10', '--noise-multiplier', '1', '--delta', '1e-5'], /--sample-rate must be in \(0, 1\]/],
      [['--sample-rate', '0.1', '--noise-multiplier', '1', '--delta', '1e-5'], /missing --steps/],
      [['--sample-rate', '0.1', '--steps', '2.5', '--noise-multiplier', '1', '--delta', '1e-5'], /--steps must be a whole number/],
      [['--sample-rate', '0.1', '--steps', '10', '--delta', '1e-5'], /exactly one of --noise-multiplier and --target-epsilon/],
      [['--sample-rate', '0.1', '--steps', '10', '--noise-multiplier', '1', '--target-epsilon', '1', '--delta', '1e-5'], /exactly one of/],
      [['--sample-rate', '0.1', '--steps', '10', '--noise-multiplier', '0', '--delta', '1e-5'], /--noise-multiplier must be > 0/],
      [['--sample-rate', '0.1', '--steps', '10', '--noise-multiplier', '1', '--delta', '1'], /--delta must be in \(0, 1\)/],
      [['--sample-rate', '0.1', '--steps', '10', '--dataset-size', '100', '--noise-multiplier', '1', '--delta', '1e-5'], /not both/],
      [['--dataset-size', '100', '--batch-size', '200', '--epochs', '1', '--noise-multiplier', '1', '--delta', '1e-5'], /must not exceed/],
      [['--dataset-size', '100', '--batch-size', '10', '--noise-multiplier', '1', '--delta', '1e-5'], /missing --epochs/],
      [['--sample-rate', '0.1', '--steps', '10', '--noise-multiplier', '1', '--delta', '1e-5', 'extra'], /Unexpected argument/],
      [['--steps'], /argument missing/],
      [
        ['--sample-rate', '0.1', '--steps', '10', '--noise-multiplier', '1', '--delta', '1e-5', '--accountant', 'prv'],
        /--accountant must be auto, pld or rdp/,
      ],
      [
        ['--sample-rate', '0.1', '--steps', '10', '--noise-multiplier', '1', '--delta', '1e-5', '--series', 'absolute'],
        /--series must be abs or signed/,
      ],
      [['--sample-rate', '0.1', '--steps', '10', '--noise-multiplier', '1', '--delta', '1e-5', '--orders', '2,1,3'], /--orders must be/],
      [['--sample-rate', '0.1', '--steps', '10', '--noise-multiplier', '1', '--delta', '1e-5', '--orders', 'tf'], /--orders must be/],
    ];
    for (const [args, message] of bad) {
      const result = privacyCli(args);
      assert.equal(result.exitCode, 2, `${args.join(' ')} → ${result.stdout}`);
      assert.match(result.stderr, message, args.join(' '));
    }
  });
});

describe('privacy CLI: --accountant, --orders, --series', () => {
  interface AccountedJson {
    readonly epsilon: number;
    readonly accountant: 'pld' | 'rdp';
    readonly pld?: { readonly epsilon: number; readonly epsilonLower: number; readonly discretisationInterval: number };
    readonly improved: EpsilonJson;
  }

  it('gives PLD epsilon 1.83 (dp_accounting) for q 0.01, σ 1, 1,000 steps, next to RDP 2.10; auto picks the tighter', () => {
    const args = ['--sample-rate', '0.01', '--steps', '1000', '--noise-multiplier', '1', '--delta', '1e-5', '--json'];
    const pld = JSON.parse(privacyCli([...args, '--accountant', 'pld']).stdout) as AccountedJson;
    assert.equal(pld.accountant, 'pld');
    assert.equal(pld.epsilon.toFixed(2), '1.83');
    assert.ok(pld.pld && pld.pld.epsilonLower <= pld.epsilon && pld.pld.discretisationInterval === 1e-4);
    assert.equal(pld.improved.epsilon.toFixed(2), '2.10');
    const auto = JSON.parse(privacyCli(args).stdout) as AccountedJson;
    assert.equal(auto.accountant, 'pld');
    assert.equal(auto.epsilon, pld.epsilon);
    const rdp = JSON.parse(privacyCli([...args, '--accountant', 'rdp']).stdout) as AccountedJson;
    assert.equal(rdp.accountant, 'rdp');
    assert.equal(rdp.epsilon, rdp.improved.epsilon);
    assert.equal(rdp.pld, undefined);
  });

  it('--orders and --series reach the RDP path (TF Privacy rdp_accountant_test orders, signed series)', () => {
    const orders = [1.25, 1.5, 1.75, 2, 2.5, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 64, 256];
    const base = [
      '--sample-rate',
      '0.1',
      '--steps',
      '100',
      '--noise-multiplier',
      '2',
      '--delta',
      '1e-5',
      '--accountant',
      'rdp',
      '--json',
      '--orders',
      orders.join(','),
    ];
    const signed = JSON.parse(privacyCli([...base, '--series', 'signed']).stdout) as AccountedJson;
    const abs = JSON.parse(privacyCli([...base, '--series', 'abs']).stdout) as AccountedJson;
    const expected = epsilonFromRdp(orders, computeRdp(0.1, 2, 100, orders, { fractionalSeries: 'signed' }), 1e-5);
    assert.equal(signed.epsilon, expected.epsilon);
    assert.equal(signed.improved.optimalOrder, expected.optimalOrder);
    assert.ok(abs.epsilon >= signed.epsilon);
    const opacus = privacyCli([
      '--sample-rate',
      '0.1',
      '--steps',
      '100',
      '--noise-multiplier',
      '2',
      '--delta',
      '1e-5',
      '--accountant',
      'rdp',
      '--orders',
      'opacus',
    ]);
    assert.match(opacus.stdout, /Opacus default, 151 orders/);
  });

  it('--target-epsilon under PLD needs less noise than under RDP, and reaches the target', () => {
    const out = JSON.parse(
      privacyCli(['--sample-rate', '0.01', '--steps', '1000', '--target-epsilon', '2', '--delta', '1e-5', '--json', '--accountant', 'pld'])
        .stdout,
    ) as { noiseMultiplier: number; epsilon: number; accountant: string; improved: { noiseMultiplier: number } };
    assert.equal(out.accountant, 'pld');
    assert.ok(out.epsilon <= 2, `${out.epsilon}`);
    assert.ok(out.noiseMultiplier < out.improved.noiseMultiplier, `${out.noiseMultiplier} vs ${out.improved.noiseMultiplier}`);
  });
});
