import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DpFedAvg } from '../../core/aggregation/dp-fedavg.ts';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { withSkellam } from '../../coordinator/distributed-noise-config.ts';
import { buildStrategy } from '../../coordinator/strategies.ts';

const BASE = [
  '--secure-aggregation',
  '--client-dp',
  'distributed',
  '--client-noise-multiplier',
  '1',
  '--client-sample-rate',
  '1',
  '--client-clip',
  '1',
  '--expected-clients',
  '5',
  '--min-clients',
  '5',
  '--admin-token',
  'distributed-noise-config-admin',
];

const parse = (...flags: string[]) => parseConfig([...BASE, ...flags], {}) as CoordinatorConfig;

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
    assert.throws(() => parse('--tolerated-dropouts', '1'), /--tolerated-dropouts needs --distributed-noise skellam/);
    assert.throws(() => parse('--distributed-noise', 'skellam', '--tolerated-dropouts', '1'), /needs --min-updates of at least 4/);
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
    // Without the flag: today's Gaussian shares, accounted per participant (zero-out).
    const gaussian = buildStrategy(withSkellam(parse(), 10_000)) as DpFedAvg;
    assert.equal(gaussian.skellamPlan, undefined);
    assert.equal(gaussian.privacy().neighbouring, 'zero-out');
  });
});
