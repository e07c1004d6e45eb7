import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EngineHarness } from '../helpers/engine-harness.ts';

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
});
