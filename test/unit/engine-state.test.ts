import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkTransition, controlOf, phaseOf, withPause, type EngineState } from '../../coordinator/rounds/engine-state.ts';
import type { OpenRound } from '../../coordinator/rounds/collection.ts';
import { EngineHarness } from '../helpers/engine-harness.ts';

/** The states' payloads matter here only by kind: an empty object stands in for the open round. */
const round = {} as OpenRound;

describe('engine state', () => {
  it('has one transition table: a finished federation goes nowhere, a closing round never takes input again', () => {
    const done: EngineState = { kind: 'done', reason: 'x' };
    assert.throws(() => checkTransition(done, { kind: 'idle' }), /no transition from done to idle/);
    const closing: EngineState = { kind: 'closing', round, step: 'aggregating', after: { kind: 'continue' } };
    assert.throws(() => checkTransition(closing, { kind: 'collecting', round, after: { kind: 'continue' } }), /closing to collecting/);
    assert.throws(() =>
      checkTransition({ kind: 'awaiting-start', paused: false }, { kind: 'collecting', round, after: { kind: 'continue' } }),
    );
    checkTransition({ kind: 'idle' }, { kind: 'starting', round: 1, paused: false });
    checkTransition(closing, { kind: 'idle', pause: { kind: 'operator' } });
  });

  it('derives the control and phase the status shows, and a pause never undoes a stop', () => {
    const stopping: EngineState = { kind: 'collecting', round, after: { kind: 'stop', reason: 'operator' } };
    assert.equal(controlOf(stopping), 'stopped');
    assert.equal(phaseOf(stopping), 'training');
    assert.deepEqual(withPause(stopping, true), stopping);
    assert.equal(controlOf(withPause({ kind: 'collecting', round, after: { kind: 'continue' } }, true)), 'paused');
    assert.equal(phaseOf({ kind: 'closing', round, step: 'evaluating', after: { kind: 'continue' } }), 'evaluating');
    assert.equal(phaseOf({ kind: 'starting', round: 3, paused: false }), 'waiting');
    const held: EngineState = { kind: 'idle', pause: { kind: 'storage', unsaved: { kind: 'round-start', round: 2 }, retrying: false } };
    assert.deepEqual(withPause(held, false), held, 'only a successful save lifts a storage hold');
    assert.equal(controlOf({ kind: 'awaiting-start', paused: true }), 'awaiting-start');
  });
});

describe('engine.idle()', () => {
  it('runs the queued round start and the deferred close without the clock moving', async () => {
    const h = new EngineHarness({ clientsPerRound: 2 });
    const [a, b] = [h.join(), h.join()];
    h.engine.start();
    assert.equal(h.starts.length, 0, 'round:start waits for the join answers (a queued event)');
    await h.engine.idle();
    assert.equal(h.selectedIn(1).length, 2);
    assert.ok(h.engine.submitUpdate(a, h.update(1, [0.25, 0, 0, 0])).ok);
    assert.ok(h.engine.submitUpdate(b, h.update(1, [0.25, 0, 0, 0])).ok);
    assert.equal(h.engine.status().phase, 'aggregating', 'the close is queued, not run inside the last acknowledgement');
    await h.engine.idle();
    assert.deepEqual(h.log, ['checkpoint 1', 'end 1']);
    assert.equal(h.engine.status().history[0]?.outcome, 'aggregated');
    assert.equal(h.selectedIn(2).length, 2, 'the next round opened from the queue too');
    assert.equal(h.clock.pending, 1, "only round 2's deadline waits on the clock");
  });
});
