import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { RdpAccountant } from '../../core/privacy/accountant.ts';
import { pldEpsilon } from '../../core/privacy/pld.ts';
import { dpStepsPerEpoch } from '../../core/privacy/dp-sgd.ts';
import { MemoryLedgerStore, PrivacyLedger } from '../../core/privacy/ledger.ts';
import { startTestFederation, type TestFederation } from '../helpers/federation.ts';

/**
 * Sample-level DP-SGD with Node participants: each keeps a ledger; ε grows
 * with every update it sends; a participant with a small budget declines
 * for good once the next round would overspend it, and the others go on.
 */
describe('sample-level DP federation', () => {
  let federation: TestFederation | undefined;
  after(() => federation?.close());

  it('charges the ledger per update, and a spent budget retires its participant', { timeout: 240_000 }, async () => {
    // 8,000 / 16 = 500 examples each: q = 50/500, 10 steps per round.
    const perRound = { sampleRate: 0.1, noiseMultiplier: 1.1, steps: dpStepsPerEpoch(500, 50) };
    // Participants' ledgers read ε with the default accountant ('auto'): PLD's, below RDP's here.
    const epsilonAfter = (rounds: number) => pldEpsilon([{ ...perRound, steps: perRound.steps * rounds }], 1e-5).epsilon;
    assert.ok(epsilonAfter(2) < new RdpAccountant().step({ ...perRound, steps: perRound.steps * 2 }).getEpsilon(1e-5));
    // The third participant may spend at most a budget between 1 and 2 rounds' worth: it trains once.
    const smallBudget = (epsilonAfter(1) + epsilonAfter(2)) / 2;
    const store = new MemoryLedgerStore();
    federation = await startTestFederation(
      [
        '--rounds',
        '4',
        '--min-clients',
        '2',
        '--clients-per-round',
        '3',
        '--round-timeout',
        '120',
        '--learning-rate',
        '0.5',
        '--dp-sgd-clip',
        '1',
        '--dp-sgd-noise-multiplier',
        '1.1',
        '--dp-sgd-batch-size',
        '50',
      ],
      3,
      { totalShards: 16, ledgerStore: store, budgets: [undefined, undefined, smallBudget] },
    );
    const { coordinator, participants } = federation;

    const final = await coordinator.done;
    assert.equal(final.history.length, 4);

    const [a, , small] = participants;
    // ε as each update reported it grows with every round, and matches the accountant.
    const reported = a!.events.flatMap((e) => (e.type === 'privacy' && e.epsilon > 0 ? [e.epsilon] : []));
    assert.ok(reported.length >= 3, `reports ${reported}`);
    reported.forEach((epsilon, i) => {
      if (i > 0) assert.ok(epsilon > reported[i - 1]!, 'ε grows monotonically');
      assert.ok(Math.abs(epsilon - epsilonAfter(i + 1)) < 1e-9, `update ${i + 1}: ε ${epsilon} vs ${epsilonAfter(i + 1)}`);
    });

    // The small-budget participant contributed once, then declined for good; the others went on.
    assert.equal(small!.events.filter((e) => e.type === 'uploaded').length, 1);
    assert.ok(small!.events.some((e) => e.type === 'declined' && /privacy budget spent/.test(e.reason)));
    assert.ok(small!.ledger!.epsilon <= smallBudget);
    const smallStatus = final.participants.find((p) => p.id === small!.participant.id)!;
    assert.equal(smallStatus.state, 'retired');
    assert.equal(smallStatus.roundsContributed, 1);
    assert.ok(final.history.slice(2).every((r) => r.received === 2 && r.outcome === 'aggregated'));
    assert.ok(final.history.some((r) => r.declined === 1));

    // The coordinator saw each participant's ε, and never its raw local metrics.
    const aStatus = final.participants.find((p) => p.id === a!.participant.id)!;
    assert.ok(Math.abs(aStatus.epsilon! - reported.at(-1)!) < 1e-12);

    // The ledger persists: reopening it (a page reload) continues the same ε.
    const reopened = await PrivacyLedger.open(store, 'participant-0', 1e-5);
    assert.ok(Math.abs(reopened.epsilon - reported.at(-1)!) < 1e-12);

    // DP-SGD learns something even with this much noise.
    assert.ok(final.history.at(-1)!.metrics!.accuracy > 0.5, `accuracy ${final.history.at(-1)!.metrics!.accuracy}`);
  });
});
