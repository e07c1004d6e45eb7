import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DpFedAvg } from '../../core/aggregation/dp-fedavg.ts';
import { RdpAccountant } from '../../core/privacy/accountant.ts';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { describeDistributedNoise, withSkellam } from '../../coordinator/distributed-noise-config.ts';
import { buildStrategy } from '../../coordinator/strategies.ts';
import { noiseText } from '../../web/dashboard/privacy-text.ts';
import { distributedClientDp } from '../helpers/client-dp-flags.ts';

const BASE = ['--secure-aggregation', ...distributedClientDp(5), '--min-clients', '5', '--admin-token', 'distributed-noise-config-admin'];

const parse = (...flags: string[]) => parseConfig([...BASE, ...flags], {}) as CoordinatorConfig;
/** The flags with BASE's --expected-clients 5 replaced by M. */
const parseM = (m: number, ...flags: string[]) =>
  parseConfig([...BASE.map((flag, i) => (BASE[i - 1] === '--expected-clients' ? String(m) : flag)), ...flags], {}) as CoordinatorConfig;
/** Every refusal of Skellam names the explicit way to the weaker accounting. */
const GAUSSIAN_NAMED = /pass --distributed-noise gaussian to accept the weaker accounting explicitly/;

describe('--distributed-noise skellam', () => {
  it('is refused where the integer noise has no secure sum to live in, or where a released sum could lack the accounted shares', () => {
    assert.throws(
      () =>
        parseConfig(
          [
            '--client-dp',
            'distributed',
            '--client-noise-multiplier',
            '1',
            '--client-sample-rate',
            '1',
            '--admin-token',
            'distributed-noise-config-admin',
            '--distributed-noise',
            'skellam',
          ],
          {},
        ),
      /needs --client-dp distributed and --secure-aggregation/,
    );
    assert.throws(() => parse('--distributed-noise', 'laplace'), /must be gaussian or skellam/);
    assert.throws(
      () => parse('--distributed-noise', 'gaussian', '--tolerated-dropouts', '1'),
      /--tolerated-dropouts needs --distributed-noise skellam/,
    );
    assert.throws(
      () => parse('--distributed-noise', 'skellam', '--tolerated-dropouts', '1', '--min-updates', '3'),
      /needs --min-updates of at least 4/,
    );
    assert.throws(() => parse('--distributed-noise', 'skellam', '--tolerated-dropouts', '4', '--min-updates', '1'), /M − D − 1 ≥ 1/);
  });

  it("configures each share from the plan and charges the sum's noise once the model size is known", () => {
    const config = parse('--distributed-noise', 'skellam', '--tolerated-dropouts', '1', '--min-updates', '4');
    assert.deepEqual(config.distributedNoise, { kind: 'skellam', toleratedDropouts: 1 });
    const strategy = buildStrategy(withSkellam(config, 10_000)) as DpFedAvg;
    const plan = strategy.skellamPlan!;
    assert.equal(plan.step, 16 / 2 ** 22, 'the secure sum grid: 2c/R with c = 8, R = 2^22');
    assert.equal(plan.participantVariance, plan.targetVariance / 3);
    const fit = strategy.configureFit(1, { epochs: 1, batchSize: 8, learningRate: 0.1 });
    assert.deepEqual(fit.privacy, { clipNorm: 1, noiseStd: 0, skellamVariance: plan.participantVariance });
    // rdpOnly: z_eff bounds the Skellam's RDP only, so participants' ledgers convert it with RDP, not PLD.
    assert.deepEqual(fit.clientDp, {
      placement: 'distributed',
      sampleRate: 1,
      noiseMultiplier: plan.effectiveNoiseMultiplier,
      rdpOnly: true,
    });
    assert.equal(strategy.privacy().accountant, 'rdp');
    assert.equal(strategy.privacy().neighbouring, 'add-remove');
    // Asked for by name: Gaussian shares, accounted per participant (zero-out).
    const gaussian = buildStrategy(withSkellam(parse('--distributed-noise', 'gaussian'), 10_000)) as DpFedAvg;
    assert.equal(gaussian.skellamPlan, undefined);
    assert.equal(gaussian.privacy().neighbouring, 'zero-out');
  });
});

describe('Skellam, the default distributed noise under secure aggregation', () => {
  it('is what --client-dp distributed --secure-aggregation gets without --distributed-noise', () => {
    const config = parse();
    assert.deepEqual(config.distributedNoise, { kind: 'skellam', toleratedDropouts: 0 });
    const strategy = buildStrategy(withSkellam(config, 10_000)) as DpFedAvg;
    assert.ok(strategy.skellamPlan);
    assert.equal(strategy.privacy().neighbouring, 'add-remove');
    // Without a secure sum there is nowhere for integer noise to live: distributed noise stays Gaussian shares there.
    const plain = parseConfig(
      BASE.filter((flag) => flag !== '--secure-aggregation'),
      {},
    ) as CoordinatorConfig;
    assert.equal(plain.distributedNoise, undefined);
    assert.equal(plain.settings.minUpdates, 1);
    assert.throws(
      () => parseConfig([...BASE.filter((flag) => flag !== '--secure-aggregation'), '--tolerated-dropouts', '1'], {}),
      /--tolerated-dropouts needs --distributed-noise skellam/,
    );
    // --distributed-noise gaussian is a choice for distributed noise only.
    assert.throws(
      () => parseConfig(['--distributed-noise', 'gaussian', '--secure-aggregation', '--min-clients', '3'], {}),
      /--distributed-noise gaussian needs --client-dp distributed/,
    );
  });

  it('tolerates M − --min-updates dropouts, or ⌊M/10⌋ with --min-updates raised to M − D', () => {
    // Without --min-updates: D = ⌊M/10⌋ and only sums of at least M − D updates are released.
    for (const [m, d] of [
      [5, 0],
      [10, 1],
      [20, 2],
    ]) {
      const config = parseM(m, '--clients-per-round', String(m));
      assert.deepEqual(config.distributedNoise, { kind: 'skellam', toleratedDropouts: d }, `M = ${m}`);
      assert.equal(config.settings.minUpdates, m - d, `M = ${m}`);
      const plan = (buildStrategy(withSkellam(config, 10_000)) as DpFedAvg).skellamPlan!;
      assert.equal(plan.participantVariance, plan.targetVariance / (m - d - 1), `M = ${m}: each share over-provisioned for D dropouts`);
    }
    // With --min-updates N: the N − M missing that it already accepts, so every released sum keeps the target noise.
    const fromMinUpdates = parse('--min-updates', '3');
    assert.deepEqual(fromMinUpdates.distributedNoise, { kind: 'skellam', toleratedDropouts: 2 });
    assert.equal(fromMinUpdates.settings.minUpdates, 3);
    assert.deepEqual(parse('--min-updates', '9').distributedNoise, { kind: 'skellam', toleratedDropouts: 0 });
    // An explicit D without --min-updates sets the default --min-updates to M − D.
    const explicit = parse('--tolerated-dropouts', '1');
    assert.deepEqual(explicit.distributedNoise, { kind: 'skellam', toleratedDropouts: 1 });
    assert.equal(explicit.settings.minUpdates, 4);
    // Gaussian shares keep --min-updates as given (default 1).
    assert.equal(parse('--distributed-noise', 'gaussian').settings.minUpdates, 1);
  });

  it('refuses what Skellam cannot do, naming --distributed-noise gaussian, never falling back to it silently', () => {
    const refusals: [string, () => unknown, RegExp][] = [
      [
        'a non-integer M',
        () => parse('--expected-clients', '4.5'),
        /Skellam noise \(the default of .*\) needs an integer --expected-clients M/,
      ],
      ['M − D − 1 < 1 from --min-updates', () => parse('--min-updates', '1'), /M − D − 1 ≥ 1 \(M = 5, D = 4, from M − --min-updates\)/],
      ['M − D − 1 < 1 from --tolerated-dropouts', () => parse('--tolerated-dropouts', '4'), /M − D − 1 ≥ 1 \(M = 5, D = 4\)/],
      ['M = 1', () => parseM(1), /M − D − 1 ≥ 1 \(M = 1, D = 0\)/],
      [
        'M − D above --clients-per-round',
        () => parseM(20, '--clients-per-round', '10'),
        /releases only sums of at least M − D = 18 updates .* more than --clients-per-round 10 selects/,
      ],
      [
        '--accountant pld',
        () => parse('--accountant', 'pld'),
        /--accountant pld cannot account --distributed-noise skellam \(the default with --client-dp distributed and --secure-aggregation\)/,
      ],
    ];
    for (const [what, start, message] of refusals) {
      assert.throws(start, message, what);
      assert.throws(start, GAUSSIAN_NAMED, what);
    }
    // The same settings start with Gaussian shares when asked for by name.
    for (const flags of [
      ['--expected-clients', '4.5'],
      ['--min-updates', '1'],
      ['--accountant', 'pld'],
    ]) {
      assert.equal(parse('--distributed-noise', 'gaussian', ...flags).distributedNoise, undefined, flags.join(' '));
    }
    // Adaptive clipping has no secure-sum mode at all, Skellam or Gaussian: refused before the noise is chosen.
    assert.throws(() => parse('--adaptive-clip'), /--adaptive-clip needs each update norm on the coordinator/);
  });

  it("charges the Skellam sum's noise by default: ε is the plan's at q = 1, far below the per-share ε", () => {
    const strategy = buildStrategy(withSkellam(parseM(20, '--clients-per-round', '20'), 10_000)) as DpFedAvg;
    const plan = strategy.skellamPlan!;
    strategy.chargeUnrecordedRounds(100);
    const report = strategy.privacy();
    assert.equal(report.noiseMultiplier, plan.effectiveNoiseMultiplier);
    assert.equal(report.sampleRate, 1);
    assert.equal(report.neighbouring, 'add-remove');
    assert.equal(report.accountant, 'rdp');
    assert.equal(
      noiseText(report),
      "distributed Skellam noise in the secure sum, accounted as the sum's noise (add/remove one participant)",
      'the dashboard names the noise and the neighbour relation',
    );
    assert.equal(
      describeDistributedNoise(parseM(20, '--clients-per-round', '20')),
      "client-level DP: Skellam noise in the secure sum, accounted as the sum's noise (add/remove one participant); " +
        'tolerates 2 of 20 expected updates missing (sums of fewer than 18 are not released); a full sum carries 1.085× the target noise std',
      'the start names the noise, the neighbour relation, D and its cost',
    );
    assert.match(
      describeDistributedNoise(parseM(20, '--clients-per-round', '20', '--distributed-noise', 'gaussian'))!,
      /distributed Gaussian shares, each participant's accounted alone \(zero-out/,
    );
    const sum = new RdpAccountant().step({ sampleRate: 1, noiseMultiplier: plan.effectiveNoiseMultiplier, steps: 100, rdpOnly: true });
    assert.ok(Math.abs(report.epsilon - sum.getEpsilon(1e-5)) < 1e-9, `ε = ${report.epsilon}`);
    // z_eff is z within the grid's slack, so ε is central DP's at q = 1 (96.12 after 100 rounds, docs/privacy-mechanisms.md) …
    assert.ok(Math.abs(plan.effectiveNoiseMultiplier - 1) < 1e-3, `z_eff = ${plan.effectiveNoiseMultiplier}`);
    assert.ok(Math.abs(report.epsilon - 96.12) < 0.5, `ε = ${report.epsilon}`);
    // … where the Gaussian shares, each accounted alone (z/√20), give 1,212.
    const perShare = buildStrategy(
      withSkellam(parseM(20, '--clients-per-round', '20', '--distributed-noise', 'gaussian'), 10_000),
    ) as DpFedAvg;
    perShare.chargeUnrecordedRounds(100);
    assert.equal(perShare.privacy().neighbouring, 'zero-out');
    assert.match(noiseText(perShare.privacy()), /^distributed Gaussian shares, each participant's accounted alone \(zero-out/);
    assert.ok(perShare.privacy().epsilon > 1000, `per-share ε = ${perShare.privacy().epsilon}`);
  });
});
