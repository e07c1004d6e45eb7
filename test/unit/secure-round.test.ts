import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../../coordinator/rounds/clock.ts';
import { secAggConfigFor, SecureRound, type SecureRoundOutcome } from '../../coordinator/rounds/secure-round.ts';
import type { SecureAggregationSettings } from '../../core/protocol/status.ts';
import { EngineHarness } from '../helpers/engine-harness.ts';

const SECURE: SecureAggregationSettings = { neighbours: 'all', clipRange: 8, quantizationRange: 2 ** 22, stepTimeoutMs: 1000 };

describe('round engine with secure aggregation', () => {
  it('aborts a round whose participants never advertise keys, reveals nothing, and goes on with the next round', async () => {
    const h = new EngineHarness({
      minClients: 3,
      clientsPerRound: 3,
      rounds: 3,
      secureAggregation: { neighbours: 'all', clipRange: 8, quantizationRange: 2 ** 22, stepTimeoutMs: 1000 },
    });
    for (let i = 0; i < 3; i++) h.join();
    h.engine.start();
    await h.settle();
    assert.equal(h.selectedIn(1).length, 3);
    const start = h.starts.find((s) => s.message.round === 1)!.message;
    assert.ok(start.secagg, 'round:start carries the secagg config');
    assert.deepEqual(h.starts.filter((s) => s.message.round === 1).map((s) => s.message.secagg!.index).sort(), [1, 2, 3]);
    // Refused: a plain update in a secure round.
    const plain = h.engine.submitUpdate(h.selectedIn(1)[0]!, h.update(1, [1, 1, 1, 1]));
    assert.equal(plain.ok, false);
    h.clock.advance(1000);
    await h.settle();
    const record = h.engine.status().history[0]!;
    assert.equal(record.outcome, 'skipped');
    assert.match(record.reason!, /secure aggregation aborted: fewer than t survivors at step 0/);
    assert.equal(record.secagg?.advertised, 0);
    assert.equal(h.engine.globalModel.version, 0);
    assert.ok(h.selectedIn(2).length > 0, 'the federation went on with round 2');
  });

  it('records an operator stop as the reason a secure round ended, not as too few survivors', async () => {
    const h = new EngineHarness({ minClients: 3, clientsPerRound: 3, secureAggregation: SECURE });
    for (let i = 0; i < 3; i++) h.join();
    h.engine.start();
    await h.settle();
    const stopped = h.engine.stop();
    await h.settle(); // the abort runs on the round's queue, the close on the clock
    const final = await stopped;
    const record = final.history[0]!;
    assert.equal(record.outcome, 'skipped');
    assert.match(record.reason!, /^secure aggregation aborted: stopped by the operator at step 0 \(advertise\); the model is unchanged$/);
    assert.equal(record.secagg?.aborted, 'stopped by the operator at step 0 (advertise)');
  });

  it('records parameters the core refuses as refused at setup', async () => {
    // Two selected: a secure sum of two would reveal each update to the other, so the core refuses the config.
    const h = new EngineHarness({ minClients: 2, clientsPerRound: 2, rounds: 1, secureAggregation: SECURE });
    h.join();
    h.join();
    h.engine.start();
    await h.settle();
    const final = await h.engine.done;
    assert.match(final.history[0]!.reason!, /^secure aggregation aborted: refused \(invalid-config\) at setup: secure aggregation needs at least 3 participants/);
  });
});

describe('SecureRound aborts', () => {
  it('keeps the caller\'s reason for an abort (the round deadline), with the step it came at', async () => {
    const clock = new ManualClock();
    const outcomes: SecureRoundOutcome[] = [];
    const round = new SecureRound(secAggConfigFor(1, 3, 4, SECURE), ['a', 'b', 'c'], {
      clock,
      send: () => {},
      out: () => {},
      accepted: () => {},
      done: (outcome) => outcomes.push(outcome),
    }, { stepMs: 1000, maskedMs: 5000 });
    round.abort('the round deadline passed');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(outcomes, [{ ok: false, reason: 'secure aggregation aborted: the round deadline passed at step 0 (advertise)' }]);
    assert.equal(round.stats.aborted, 'the round deadline passed at step 0 (advertise)');
    // The step's own timer was cleared with the abort: nothing more is reported.
    clock.advance(1000);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(outcomes.length, 1);
  });
});
