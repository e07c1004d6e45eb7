import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { RdpAccountant } from '../../core/privacy/accountant.ts';
import { pldEpsilon } from '../../core/privacy/pld.ts';
import { MemoryLedgerStore } from '../../core/privacy/ledger.ts';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { startCoordinator } from '../../coordinator/server.ts';
import type { FederationStatus } from '../../core/protocol/status.ts';
import { startTestFederation, type TestFederation } from '../helpers/federation.ts';

const ADMIN_TOKEN = 'client-dp-test-admin-token-0123';

/** Client-level DP end to end with Node participants: ε per round in the status, and a budget that stops the federation. */
describe('client-level DP federation', () => {
  let federation: TestFederation | undefined;
  after(() => federation?.close());

  it('charges every round, reports ε(δ) per round and stops at the budget', { timeout: 120_000 }, async () => {
    // The default accountant ('auto') reports PLD's ε where it is below RDP's, as it is here.
    const perRound = (n: number) => pldEpsilon([{ sampleRate: 0.5, noiseMultiplier: 0.8, steps: n }], 1e-5).epsilon;
    assert.ok(perRound(3) < new RdpAccountant().step({ sampleRate: 0.5, noiseMultiplier: 0.8, steps: 3 }).getEpsilon(1e-5));
    const store = new MemoryLedgerStore();
    // A budget between the ε of 3 and of 4 rounds: exactly 3 rounds may run.
    const budget = (perRound(3) + perRound(4)) / 2;
    federation = await startTestFederation(
      [
        '--rounds',
        '20',
        '--min-clients',
        '4',
        '--round-timeout',
        '60',
        '--client-dp',
        'central',
        '--fresh-privacy-budget',
        '--client-noise-multiplier',
        '0.8',
        '--client-sample-rate',
        '0.5',
        '--client-clip',
        '0.5',
        '--expected-clients',
        '2',
        '--epsilon-budget',
        String(budget),
        '--admin-token',
        ADMIN_TOKEN,
      ],
      4,
      { totalShards: 8, clientLedgerStore: store },
    );
    const { coordinator, participants } = federation;

    const final = await coordinator.done;
    assert.match(final.doneReason ?? '', /privacy budget reached/);
    assert.equal(final.history.length, 3);
    final.history.forEach((record, i) => {
      assert.equal(record.outcome, 'aggregated', 'central DP releases a model every round');
      assert.ok(Math.abs(record.privacy!.epsilon - perRound(i + 1)) < 1e-9, `round ${i + 1}: ε ${record.privacy!.epsilon}`);
      assert.equal(record.privacy!.delta, 1e-5);
      assert.equal(record.privacy!.accountant, 'pld');
    });
    assert.ok(final.privacy!.epsilon <= budget);

    // Participants were told to clip to the bound, and nobody was asked to add noise (the coordinator does).
    const status = (await (
      await fetch(`${coordinator.url}/api/status`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
    ).json()) as FederationStatus;
    assert.equal(status.privacy?.level, 'client');
    assert.equal(status.history.at(-1)!.privacy!.epsilon, final.privacy!.epsilon);
    const uploads = participants.flatMap((p) => p.events.filter((e) => e.type === 'uploaded'));
    assert.ok(uploads.length > 0, 'someone was sampled');
    assert.ok(uploads.every((e) => e.type === 'uploaded' && !e.noised));

    // Each participant's own ledger charged every released round while it was in the population, selected or
    // not, from the (q, z) announced with the round: the same ε as the coordinator's, kept on the device.
    for (const p of participants) {
      assert.ok(
        Math.abs(p.clientLedger!.ledger.epsilon - perRound(3)) < 1e-9,
        `participant ledger ε ${p.clientLedger!.ledger.epsilon}, expected ${perRound(3)}`,
      );
    }
  });

  it('refuses to start client-level DP on a --data-dir without the earlier spend, unless --fresh-privacy-budget', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'fl-client-dp-'));
    try {
      const flags = [
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--quiet',
        '--data-dir',
        dataDir,
        '--client-dp',
        'central',
        '--client-noise-multiplier',
        '1',
        '--client-sample-rate',
        '0.5',
        '--admin-token',
        ADMIN_TOKEN,
      ];
      await assert.rejects(
        startCoordinator(parseConfig(flags, {}) as CoordinatorConfig),
        /holds no earlier client-level privacy spend.*--fresh-privacy-budget/,
      );
      const started = await startCoordinator(parseConfig([...flags, '--fresh-privacy-budget'], {}) as CoordinatorConfig);
      await started.close();
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
