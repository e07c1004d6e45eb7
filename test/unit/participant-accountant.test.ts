import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Dataset } from '../../core/data/dataset.ts';
import { RdpAccountant, type SampledGaussianSteps } from '../../core/privacy/accountant.ts';
import { MemoryLedgerStore } from '../../core/privacy/ledger.ts';
import { openClientLevelLedger, openParticipantLedger } from '../../core/privacy/participant-budget.ts';
import { parseCliArgs, UsageError } from '../../node/participant/cli.ts';

/** The participant's own choice of accountant (`--accountant`, `?accountant=`): it, not the task, decides how its ledgers read ε. */
const ROUND: SampledGaussianSteps = { sampleRate: 0.1, noiseMultiplier: 1.1, steps: 10 };
const data: Dataset = { count: 50, features: 2, numClasses: 2, values: new Uint8Array(100).fill(7), labels: new Uint8Array(50) };
const taskAsking = (accountant: 'pld' | 'rdp') => ({ clipNorm: 1, noiseMultiplier: 1.1, expectedBatchSize: 5, delta: 1e-5, accountant });

describe("the participant's accountant", () => {
  it("the person's choice overrides the task's, for the DP-SGD and the client-level ledgers", async () => {
    const store = new MemoryLedgerStore();
    const byTask = await openParticipantLedger(store, taskAsking('pld'), data);
    assert.ok((await byTask.charge(ROUND)).charged);
    assert.equal(byTask.accounted.accountant, 'pld');
    const mine = await openParticipantLedger(store, taskAsking('pld'), data, { accountant: 'rdp' });
    assert.equal(mine.accounted.accountant, 'rdp');
    const rdp = new RdpAccountant().step(ROUND).getEpsilon(1e-5);
    assert.ok(Math.abs(mine.epsilon - rdp) < 1e-9, `${mine.epsilon} vs RDP ${rdp}`);
    // Either is an upper bound on the same history: PLD's is the smaller here.
    assert.ok(byTask.epsilon < mine.epsilon);
    const client = await openClientLevelLedger(store, data, { accountant: 'rdp' });
    assert.ok((await client.ledger.charge(ROUND)).charged);
    assert.equal(client.ledger.accounted.accountant, 'rdp');
  });

  it('the Node participant takes --accountant auto|pld|rdp and refuses anything else', () => {
    const base = ['--url', 'http://localhost:8080', '--shard', '1/3'];
    assert.equal(parseCliArgs(base).accountant, undefined);
    assert.equal(parseCliArgs([...base, '--accountant', 'pld']).accountant, 'pld');
    assert.throws(
      () => parseCliArgs([...base, '--accountant', 'prv']),
      (e: unknown) => e instanceof UsageError && /--accountant must be one of auto, pld, rdp, got prv/.test(e.message),
    );
  });
});
