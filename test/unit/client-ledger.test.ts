import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RdpAccountant } from '../../core/privacy/accountant.ts';
import { ClientLevelLedger, clientDpAnnouncement } from '../../core/privacy/client-ledger.ts';
import { MemoryLedgerStore, PrivacyLedger } from '../../core/privacy/ledger.ts';
import type { ClientDpAnnouncement } from '../../core/protocol/messages.ts';

const CENTRAL: ClientDpAnnouncement = { placement: 'central', sampleRate: 0.2, noiseMultiplier: 1 };
const DISTRIBUTED: ClientDpAnnouncement = { placement: 'distributed', sampleRate: 1, noiseMultiplier: 0.3 };
const epsilonOf = (a: ClientDpAnnouncement, rounds: number) => new RdpAccountant().step({ ...a, steps: rounds }).getEpsilon(1e-5);

async function ledger(budget?: number): Promise<ClientLevelLedger> {
  return new ClientLevelLedger(await PrivacyLedger.open(new MemoryLedgerStore(), 'client-level/x', 1e-5, budget, [], 'rdp'));
}

describe("a participant's own client-level ledger", () => {
  it('central noise: charges every released round once, selected (at its start) or not (at its end)', async () => {
    const l = await ledger();
    assert.equal((await l.admit(1, CENTRAL)).kind, 'charged');
    assert.equal((await l.roundEnded(1, CENTRAL)).kind, 'not-charged', 'charged at its start already');
    assert.equal((await l.roundEnded(2, CENTRAL)).kind, 'charged', 'not selected: the round still counts');
    assert.equal((await l.roundEnded(3, undefined)).kind, 'not-charged', 'no client-level DP announced');
    assert.ok(Math.abs(l.ledger.epsilon - epsilonOf(CENTRAL, 2)) < 1e-12);
    // A round charged at its start and re-run under the same number after a reconnect counts again.
    await l.admit(4, CENTRAL);
    l.disconnected();
    await l.admit(4, CENTRAL);
    await l.roundEnded(4, CENTRAL);
    assert.ok(Math.abs(l.ledger.epsilon - epsilonOf(CENTRAL, 4)) < 1e-12);
  });

  it('distributed noise: only rounds its update went into', async () => {
    const l = await ledger();
    await l.admit(1, DISTRIBUTED);
    await l.roundEnded(1, DISTRIBUTED);
    await l.roundEnded(2, DISTRIBUTED);
    assert.ok(Math.abs(l.ledger.epsilon - epsilonOf(DISTRIBUTED, 1)) < 1e-12);
  });

  it('refuses once its own budget is spent, whatever the coordinator announces or keeps', async () => {
    const budget = (epsilonOf(CENTRAL, 2) + epsilonOf(CENTRAL, 3)) / 2;
    const l = await ledger(budget);
    assert.equal((await l.roundEnded(1, CENTRAL)).kind, 'charged');
    assert.equal(l.exhausted, false);
    assert.equal((await l.admit(2, CENTRAL)).kind, 'charged');
    // A third round would pass the budget: the participant stops contributing now.
    assert.equal(l.exhausted, true);
    assert.equal((await l.admit(3, CENTRAL)).kind, 'refused');
    assert.equal((await l.roundEnded(3, CENTRAL)).kind, 'not-charged', 'its data is in no later release');
    assert.ok(Math.abs(l.ledger.epsilon - epsilonOf(CENTRAL, 2)) < 1e-12);
    // A fresh coordinator (new --data-dir) changes nothing: the same stored ledger refuses.
    const reopened = new ClientLevelLedger(l.ledger);
    assert.equal((await reopened.admit(1, CENTRAL)).kind, 'refused');
  });

  it('a round already released is recorded even past the budget (the coordinator announced larger steps)', async () => {
    const l = await ledger(epsilonOf(CENTRAL, 1) * 1.01);
    await l.roundEnded(1, { ...CENTRAL, noiseMultiplier: 0.5 });
    assert.ok(Math.abs(l.ledger.epsilon - epsilonOf({ ...CENTRAL, noiseMultiplier: 0.5 }, 1)) < 1e-12);
    assert.equal(l.exhausted, true);
  });

  it('the announcement is what the accountant charged, and none outside client-level DP', () => {
    assert.equal(clientDpAnnouncement(undefined), undefined);
    const report = {
      level: 'client',
      placement: 'central',
      epsilon: 1,
      delta: 1e-5,
      optimalOrder: 8,
      rounds: 1,
      noiseMultiplier: 1.1,
      sampleRate: 0.3,
      clipNorm: 1,
      conversion: 'improved',
    } as const;
    assert.deepEqual(clientDpAnnouncement(report), { placement: 'central', sampleRate: 0.3, noiseMultiplier: 1.1 });
    assert.equal(clientDpAnnouncement({ ...report, level: 'example' }), undefined);
  });
});
