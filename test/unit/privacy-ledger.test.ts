import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RdpAccountant, type SampledGaussianSteps } from '../../core/privacy/accountant.ts';
import { MemoryLedgerStore, PrivacyLedger } from '../../core/privacy/ledger.ts';

const ROUND: SampledGaussianSteps = { sampleRate: 0.1, noiseMultiplier: 1.1, steps: 10 };
const DELTA = 1e-5;

function epsilonAfter(rounds: number): number {
  const accountant = new RdpAccountant();
  for (let i = 0; i < rounds; i++) accountant.step(ROUND);
  return accountant.getEpsilon(DELTA);
}

describe('privacy ledger', () => {
  it('two tabs charging one ledger at the same moment both count', async () => {
    const store = new MemoryLedgerStore();
    const [a, b] = await Promise.all([
      PrivacyLedger.open(store, 'task/own-data', DELTA, undefined, [], 'rdp'),
      PrivacyLedger.open(store, 'task/own-data', DELTA, undefined, [], 'rdp'),
    ]);
    const results = await Promise.all([a.charge(ROUND), b.charge(ROUND), a.charge(ROUND)]);
    assert.ok(results.every((r) => r.charged));
    const reopened = await PrivacyLedger.open(store, 'task/own-data', DELTA, undefined, [], 'rdp');
    assert.ok(Math.abs(reopened.epsilon - epsilonAfter(3)) < 1e-12, `stored ε ${reopened.epsilon}, three rounds give ${epsilonAfter(3)}`);
  });

  it('refuses a charge that another tab made too much since the round was admitted, and stores nothing', async () => {
    const store = new MemoryLedgerStore();
    // A budget of one round and a half: each tab alone may run its round, not both.
    const budget = (epsilonAfter(1) + epsilonAfter(2)) / 2;
    const [a, b] = await Promise.all([
      PrivacyLedger.open(store, 'k', DELTA, budget, [], 'rdp'),
      PrivacyLedger.open(store, 'k', DELTA, budget, [], 'rdp'),
    ]);
    assert.ok(a.check(ROUND).allowed && b.check(ROUND).allowed);
    assert.deepEqual(await b.charge(ROUND), { charged: true, epsilon: epsilonAfter(1) });
    const refused = await a.charge(ROUND);
    assert.equal(refused.charged, false);
    assert.ok(refused.charged === false && Math.abs(refused.projectedEpsilon - epsilonAfter(2)) < 1e-12);
    assert.ok(Math.abs(refused.epsilon - epsilonAfter(1)) < 1e-12, 'the refusing tab now sees what the other spent');
    const stored = await PrivacyLedger.open(store, 'k', DELTA, undefined, [], 'rdp');
    assert.ok(Math.abs(stored.epsilon - epsilonAfter(1)) < 1e-12);
  });
});
