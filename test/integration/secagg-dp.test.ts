import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { RdpAccountant } from '../../core/privacy/accountant.ts';
import { pldEpsilon } from '../../core/privacy/pld.ts';
import { planDistributedNoise } from '../../core/privacy/distributed-noise.ts';
import { rotatedLengthFor } from '../../core/compression/update-codec.ts';
import { startTestFederation, type TestFederation } from '../helpers/federation.ts';

/**
 * Secure aggregation with distributed client-level DP: each participant adds
 * its share of the noise before quantising, the coordinator decodes only the
 * noised sum, and ε is charged per round.
 */
describe('secure aggregation with distributed DP noise', () => {
  let federation: TestFederation | undefined;
  after(() => federation?.close());

  it('with --distributed-noise gaussian: masked rounds whose participants add N(0, z²S²/m) before quantising', {
    timeout: 180_000,
  }, async () => {
    federation = await startTestFederation(
      [
        '--rounds',
        '2',
        '--min-clients',
        '5',
        '--round-timeout',
        '60',
        '--secure-aggregation',
        '--client-dp',
        'distributed',
        '--fresh-privacy-budget',
        '--client-noise-multiplier',
        '1',
        '--client-sample-rate',
        '1',
        '--client-clip',
        '1',
        '--expected-clients',
        '5',
        '--distributed-noise',
        'gaussian',
        '--admin-token',
        'secagg-dp-test-admin-token',
      ],
      5,
      { totalShards: 16 },
    );
    const { coordinator, participants } = federation;
    const final = await coordinator.done;
    assert.equal(final.history.length, 2);
    for (const record of final.history) {
      assert.equal(record.outcome, 'aggregated', record.reason);
      assert.equal(record.secagg?.masked, 5);
      assert.equal(record.privacy?.neighbouring, 'zero-out');
    }
    // Every upload was masked, clipped and noised on the participant.
    const uploads = participants.flatMap((p) => p.events.filter((e) => e.type === 'uploaded'));
    assert.equal(uploads.length, 10);
    assert.ok(uploads.every((e) => e.type === 'uploaded' && e.masked === true && e.noised));
    // Distributed noise is accounted without sampling amplification: q = 1, z/√m per round. By default ('auto') the
    // PLD accountant gives it, here the Gaussian's exact ε, below RDP's.
    const expected = pldEpsilon([{ sampleRate: 1, noiseMultiplier: 1 / Math.sqrt(5), steps: 2 }], 1e-5).epsilon;
    assert.equal(final.privacy!.accountant, 'pld');
    assert.ok(Math.abs(final.privacy!.epsilon - expected) < 1e-9);
    assert.ok(
      final.privacy!.epsilon < new RdpAccountant().step({ sampleRate: 1, noiseMultiplier: 1 / Math.sqrt(5), steps: 2 }).getEpsilon(1e-5),
    );
  });

  it("by default Skellam: integer noise in the sum, accounted as the sum's noise (ε as central DP at q = 1)", {
    timeout: 180_000,
  }, async () => {
    await federation?.close();
    federation = await startTestFederation(
      [
        '--rounds',
        '2',
        '--min-clients',
        '5',
        '--min-updates',
        '4',
        '--round-timeout',
        '60',
        '--secure-aggregation',
        '--client-dp',
        'distributed',
        '--fresh-privacy-budget',
        '--client-noise-multiplier',
        '1',
        '--client-sample-rate',
        '1',
        '--client-clip',
        '1',
        '--expected-clients',
        '5',
        '--admin-token',
        'secagg-dp-test-admin-token',
      ],
      5,
      { totalShards: 16 },
    );
    const { coordinator, participants } = federation;
    const final = await coordinator.done;
    assert.equal(final.history.length, 2);
    for (const record of final.history) {
      assert.equal(record.outcome, 'aggregated', record.reason);
      assert.equal(record.secagg?.masked, 5);
      assert.equal(record.privacy?.neighbouring, 'add-remove');
    }
    const uploads = participants.flatMap((p) => p.events.filter((e) => e.type === 'uploaded'));
    assert.equal(uploads.length, 10);
    assert.ok(uploads.every((e) => e.type === 'uploaded' && e.masked === true && e.noised));
    // No --distributed-noise: Skellam, tolerating D = M − --min-updates = 1 dropout.
    // The sum's noise: 5 shares of μ/(5 − 1 − 1) on the grid 2c/R (c = 8, R = 2^22), charged at q = 1 with z_eff ≈ z;
    // participants round the rotated update, padded to whole blocks, so Δ₂ is that length's.
    const plan = planDistributedNoise({
      clipNorm: 1,
      noiseMultiplier: 1,
      dimension: rotatedLengthFor(coordinator.task.paramCount),
      step: 16 / 2 ** 22,
      expectedContributors: 5,
      toleratedDropouts: 1,
    });
    assert.ok(Math.abs(plan.effectiveNoiseMultiplier - 1) < 1e-6);
    const expected = new RdpAccountant().step({ sampleRate: 1, noiseMultiplier: plan.effectiveNoiseMultiplier, steps: 2 }).getEpsilon(1e-5);
    assert.ok(Math.abs(final.privacy!.epsilon - expected) < 1e-9, `ε ${final.privacy!.epsilon}, expected ${expected}`);
    // z_eff bounds the Skellam's RDP only: even under the default ('auto') no PLD is read off it.
    assert.equal(final.privacy!.accountant, 'rdp');
    assert.equal(final.privacy!.pldEpsilon, undefined);
    const perParticipant = new RdpAccountant().step({ sampleRate: 1, noiseMultiplier: 1 / Math.sqrt(5), steps: 2 }).getEpsilon(1e-5);
    assert.ok(final.privacy!.epsilon < perParticipant / 2.5, 'far tighter than accounting each share alone');
  });
});
