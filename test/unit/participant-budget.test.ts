import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Dataset } from '../../core/data/dataset.ts';
import { RdpAccountant, type SampledGaussianSteps } from '../../core/privacy/accountant.ts';
import { MemoryLedgerStore, PrivacyLedger } from '../../core/privacy/ledger.ts';
import {
  contentLedgerKey,
  DEFAULT_EPSILON_BUDGET,
  deviceDelta,
  openParticipantLedger,
  participantBudget,
} from '../../core/privacy/participant-budget.ts';
import type { SampleDpConfig } from '../../core/protocol/messages.ts';

const ROUND: SampledGaussianSteps = { sampleRate: 0.1, noiseMultiplier: 1.1, steps: 10 };

function dataset(count: number, seed: number): Dataset {
  const values = new Uint8Array(count * 4);
  for (let i = 0; i < values.length; i++) values[i] = (i * 31 + seed * 7) & 0xff;
  const labels = Uint8Array.from({ length: count }, (_, i) => (i + seed) % 3);
  return { count, features: 4, numClasses: 3, values, labels };
}

const task = (delta: number, epsilonBudget?: number): SampleDpConfig => ({
  clipNorm: 1,
  noiseMultiplier: 1.1,
  expectedBatchSize: 10,
  delta,
  epsilonBudget,
});

async function spend(ledger: PrivacyLedger, rounds: number): Promise<void> {
  for (let i = 0; i < rounds; i++) assert.ok((await ledger.charge(ROUND)).charged);
}

describe('budgets the participant owns', () => {
  it('the ledger key is the data: renaming the task or the file changes nothing, other data gets another key', async () => {
    const store = new MemoryLedgerStore();
    const data = dataset(100, 1);
    const first = await openParticipantLedger(store, task(1e-5), data);
    await spend(first, 3);
    // The same examples under another task (name and file are not inputs): the same ledger, the same ε.
    const renamed = await openParticipantLedger(store, task(1e-5), { ...data, labels: data.labels.slice(), values: data.values.slice() });
    assert.equal(renamed.key, first.key);
    assert.ok(renamed.epsilon > 0 && Math.abs(renamed.epsilon - first.epsilon) < 1e-12, `renamed starts at ${renamed.epsilon}`);
    assert.notEqual(await contentLedgerKey(dataset(100, 2)), first.key);
    const oneLabel = dataset(100, 1);
    oneLabel.labels[5] = (oneLabel.labels[5]! + 1) % 3;
    assert.notEqual(await contentLedgerKey(oneLabel), first.key);
  });

  it("the person's own files share one ledger whatever the task or file: an edited file (one row fewer) continues it", async () => {
    const store = new MemoryLedgerStore();
    const first = await openParticipantLedger(store, task(1e-5), dataset(100, 1), { ownData: true });
    await spend(first, 2);
    const edited = dataset(100, 1);
    const oneFewer: Dataset = { ...edited, count: 99, labels: edited.labels.slice(0, 99), values: edited.values.slice(0, 99 * 4) };
    const again = await openParticipantLedger(store, task(1e-5), oneFewer, { ownData: true });
    assert.equal(again.key, first.key);
    assert.ok(again.epsilon > 0 && Math.abs(again.epsilon - first.epsilon) < 1e-12);
    // A demo shard's ledger is its content: the same examples continue it, other examples do not.
    const shard = await openParticipantLedger(store, task(1e-5), dataset(100, 1));
    assert.notEqual(shard.key, first.key);
  });

  it('δ is pinned on the device: a task asking δ = 0.5 is refused, and ε is stated at the device δ whatever the task asks', async () => {
    const store = new MemoryLedgerStore();
    const data = dataset(100, 1);
    const honest = await openParticipantLedger(store, task(1e-5, 100), data);
    // A few rounds give an ε > 0 whose value at δ = 1e-9 would differ from that at 1e-5 by far more than 1e-12.
    await spend(honest, 3);
    await assert.rejects(openParticipantLedger(store, task(0.5), data), /δ = 0.5.*above this device's limit of 0.00001/);
    // A task asking a smaller δ still reads the same ε (the device's δ), so one dataset's ε means one thing.
    const strict = await openParticipantLedger(store, task(1e-9), data);
    assert.equal(strict.delta, 1e-5);
    assert.ok(Math.abs(strict.epsilon - honest.epsilon) < 1e-12);
    // Never above 1/n: a person allowing δ = 0.1 on 50 examples gets 1/50.
    assert.equal(deviceDelta(50, 0.1), 1 / 50);
    await assert.rejects(openParticipantLedger(store, task(0.05), dataset(50, 3), { maxDelta: 0.1 }), /above this device's limit of 0.02/);
  });

  it('a task without a budget gets the default ε budget of 10, which refuses once spent; the person can lower it', async () => {
    assert.equal(participantBudget(undefined, undefined), DEFAULT_EPSILON_BUDGET);
    assert.equal(participantBudget(undefined, 3), 3);
    assert.equal(participantBudget(4, 20), 4, 'the person cannot raise the task budget');
    const store = new MemoryLedgerStore();
    const ledger = await openParticipantLedger(store, task(1e-5), dataset(100, 4));
    assert.equal(ledger.epsilonBudget, 10);
    let refused = false;
    for (let i = 0; i < 500 && !refused; i++) refused = !(await ledger.charge(ROUND)).charged;
    assert.ok(refused, 'the default budget never refused');
    assert.ok(ledger.epsilon <= 10 && ledger.epsilon > 9);
    // Lowering from the page applies at once and never raises.
    const other = await openParticipantLedger(store, task(1e-5), dataset(100, 5));
    await spend(other, 2);
    other.lowerBudget(other.epsilon);
    assert.equal(other.check(ROUND).allowed, false);
    other.lowerBudget(100);
    assert.equal(other.epsilonBudget, other.epsilon);
  });

  it('a new content ledger starts from the ledgers the same data had under task-name keys, composed', async () => {
    const store = new MemoryLedgerStore();
    const old = await PrivacyLedger.open(store, 'mnist/own-data', 1e-5);
    await spend(old, 2);
    const older = await PrivacyLedger.open(store, 'mnist-renamed/own-data', 1e-5);
    await spend(older, 1);
    const ledger = await openParticipantLedger(store, task(1e-5), dataset(100, 6), {
      legacyKeys: ['mnist/own-data', 'mnist-renamed/own-data', 'never-used'],
      accountant: 'rdp',
    });
    const expected = new RdpAccountant().step({ ...ROUND, steps: 30 }).getEpsilon(1e-5);
    assert.ok(Math.abs(ledger.epsilon - expected) < 1e-9, `${ledger.epsilon} vs ${expected}`);
  });
});
