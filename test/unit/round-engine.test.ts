import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode } from '../../core/protocol/errors.ts';
import { encodeFrame, FrameKind } from '../../core/wire/frame.ts';
import { EngineHarness } from '../helpers/engine-harness.ts';

function errorCode(result: { ok: boolean; error?: { code: string } }): string | undefined {
  return result.ok ? undefined : result.error?.code;
}

describe('round engine', () => {
  it('waits for the quorum before starting a round', async () => {
    const h = new EngineHarness({ minClients: 2 });
    h.engine.start();
    h.join();
    await h.settle();
    assert.equal(h.starts.length, 0);
    assert.match(h.engine.status().waitingFor ?? '', /1 available \(connected, not retired\), at least 2 needed/);
    h.join();
    await h.settle();
    assert.equal(h.selectedIn(1).length, 2);
    assert.equal(h.engine.status().phase, 'training');
  });

  it('selects at most clientsPerRound participants', async () => {
    const h = new EngineHarness({ minClients: 2, clientsPerRound: 3 });
    for (let i = 0; i < 6; i++) h.join();
    h.engine.start();
    await h.settle();
    assert.equal(new Set(h.selectedIn(1)).size, 3);
  });

  it('aggregates by example count once every selected participant answered, then starts the next round', async () => {
    const h = new EngineHarness({ minClients: 2, clientsPerRound: 2 });
    const a = h.join(10);
    const b = h.join(30);
    h.engine.start();
    await h.settle();
    assert.ok(h.engine.submitUpdate(a, h.update(1, [0.4, 0, 0, 0], { numExamples: 10 })).ok);
    assert.equal(h.ends.length, 0, 'still waiting for b');
    const ack = h.engine.submitUpdate(b, h.update(1, [0.8, 0, 0, 0], { numExamples: 30 }));
    assert.deepEqual(ack, { ok: true, value: { round: 1, received: 2 } });
    await h.settle();
    assert.equal(h.ends[0]?.outcome, 'aggregated');
    assert.equal(h.engine.globalModel.version, 1);
    assert.ok(Math.abs(h.engine.globalModel.weights[0]! - 0.7) < 1e-6); // (10*0.4 + 30*0.8) / 40
    assert.ok(Math.abs(h.ends[0]!.metrics!.accuracy - 0.7) < 1e-6);
    const record = h.engine.status().history[0]!;
    assert.equal(record.received, 2);
    assert.equal(record.bytesIn, 2 * (16 + 16));
    assert.equal(h.selectedIn(2).length, 2, 'round 2 started');
    assert.equal(h.starts.find((s) => s.message.round === 2)!.message.model.version, 1);
  });

  it('drops a participant that disconnects mid-round without stalling the round', async () => {
    const h = new EngineHarness({ minClients: 2, clientsPerRound: 2 });
    const a = h.join();
    const b = h.join();
    h.engine.start();
    await h.settle();
    h.engine.leave(b);
    assert.ok(h.engine.submitUpdate(a, h.update(1, [0.5, 0, 0, 0])).ok);
    await h.settle();
    assert.equal(h.ends[0]?.outcome, 'aggregated');
    const record = h.engine.status().history[0]!;
    assert.equal(record.dropped, 1);
    assert.equal(record.received, 1);
  });

  it('closes the round at the deadline and drops the silent participant', async () => {
    const h = new EngineHarness({ minClients: 2, clientsPerRound: 2, roundTimeoutMs: 5000 });
    const a = h.join();
    const b = h.join();
    h.engine.start();
    await h.settle();
    h.engine.submitUpdate(a, h.update(1, [0.5, 0, 0, 0]));
    h.clock.advance(4999);
    await h.settle();
    assert.equal(h.ends.length, 0);
    h.clock.advance(1);
    await h.settle();
    assert.equal(h.ends[0]?.outcome, 'aggregated');
    assert.equal(h.engine.status().history[0]!.dropped, 1);
    // The silent participant's late update is refused.
    assert.equal(errorCode(h.engine.submitUpdate(b, h.update(1, [0.5, 0, 0, 0]))), ErrorCode.WrongRound);
  });

  it('skips a round below minUpdates, keeps the model and says why', async () => {
    const h = new EngineHarness({ minClients: 2, clientsPerRound: 2, minUpdates: 2, roundTimeoutMs: 1000 });
    const a = h.join();
    h.join();
    h.engine.start();
    await h.settle();
    h.engine.submitUpdate(a, h.update(1, [0.5, 0, 0, 0]));
    h.clock.advance(1000);
    await h.settle();
    assert.equal(h.ends[0]?.outcome, 'skipped');
    assert.match(h.ends[0]!.reason!, /only 1 of at least 2 updates/);
    assert.equal(h.engine.globalModel.version, 0);
    assert.deepEqual(Array.from(h.engine.globalModel.weights), [0, 0, 0, 0]);
  });

  it('gives late joiners the next round, not the open one', async () => {
    const h = new EngineHarness({ minClients: 1, clientsPerRound: 5 });
    const a = h.join();
    h.engine.start();
    await h.settle();
    const late = h.join();
    await h.settle();
    assert.deepEqual(h.selectedIn(1), [a]);
    assert.equal(errorCode(h.engine.submitUpdate(late, h.update(1, [0, 0, 0, 0]))), ErrorCode.NotSelected);
    h.engine.submitUpdate(a, h.update(1, [0.1, 0, 0, 0]));
    await h.settle();
    assert.deepEqual(new Set(h.selectedIn(2)), new Set([a, late]));
  });

  it('rejects bad updates with stable codes and excludes unusable senders from the round', async () => {
    const h = new EngineHarness({ minClients: 3, clientsPerRound: 3 });
    const [a, b, c] = [h.join(), h.join(), h.join()];
    h.engine.start();
    await h.settle();
    assert.equal(errorCode(h.engine.submitUpdate('stranger', h.update(1, [0, 0, 0, 0]))), ErrorCode.NotJoined);
    assert.equal(errorCode(h.engine.submitUpdate(a, h.update(2, [0, 0, 0, 0]))), ErrorCode.WrongRound);
    assert.equal(errorCode(h.engine.submitUpdate(a, h.update(1, [0, 0, 0, 0], { baseVersion: 7 }))), ErrorCode.StaleModel);
    assert.equal(errorCode(h.engine.submitUpdate(a, h.update(1, [0, 0, 0, 0]))), ErrorCode.NotSelected, 'a is out of this round');
    assert.equal(errorCode(h.engine.submitUpdate(b, h.update(1, [0, 0, 0]))), ErrorCode.WrongLength);
    assert.ok(h.engine.submitUpdate(c, h.update(1, [0.2, 0, 0, 0])).ok);
    await h.settle();
    assert.equal(h.ends[0]?.outcome, 'aggregated', 'the round completed without waiting for the excluded');
    const status = h.engine.status();
    assert.equal(status.history[0]!.rejected, 2);
    assert.equal(status.rejections[ErrorCode.NotJoined], 1);
    assert.equal(status.rejections[ErrorCode.StaleModel], 1);

    const round2 = h.selectedIn(2);
    const [x, y] = round2;
    const nan = new Uint8Array(encodeFrame(FrameKind.Update, Float32Array.from([NaN, 0, 0, 0])));
    assert.equal(errorCode(h.engine.submitUpdate(x!, h.update(2, [0, 0, 0, 0], { update: nan }))), ErrorCode.NonFinite);
    assert.ok(h.engine.submitUpdate(y!, h.update(2, [0.3, 0, 0, 0])).ok);
    assert.equal(errorCode(h.engine.submitUpdate(y!, h.update(2, [0.3, 0, 0, 0]))), ErrorCode.DuplicateUpdate);
  });

  it('stops after the round limit and refuses further updates', async () => {
    const h = new EngineHarness({ minClients: 1, clientsPerRound: 1, rounds: 2 });
    const a = h.join();
    h.engine.start();
    for (const round of [1, 2]) {
      await h.settle();
      assert.ok(h.engine.submitUpdate(a, h.update(round, [0.1, 0, 0, 0])).ok);
    }
    await h.settle();
    assert.equal(h.engine.isDone, true);
    assert.match(h.done[0]!.reason, /completed 2 rounds/);
    assert.equal(errorCode(h.engine.submitUpdate(a, h.update(3, [0, 0, 0, 0]))), ErrorCode.FederationDone);
    const final = await h.engine.done;
    assert.equal(final.history.length, 2);
  });

  it('stops when the target accuracy is reached', async () => {
    const h = new EngineHarness({ minClients: 1, clientsPerRound: 1, targetAccuracy: 0.9 });
    const a = h.join();
    h.engine.start();
    await h.settle();
    h.engine.submitUpdate(a, h.update(1, [0.5, 0, 0, 0]));
    await h.settle();
    assert.equal(h.engine.isDone, false);
    h.engine.submitUpdate(a, h.update(2, [0.45, 0, 0, 0]));
    await h.settle();
    assert.equal(h.engine.isDone, true);
    assert.match(h.done[0]!.reason, /target accuracy 0.9 reached in round 2/);
  });

  it('recognises a participant that rejoins with its id', async () => {
    const h = new EngineHarness({ minClients: 1 });
    const a = h.join();
    h.engine.leave(a);
    const again = h.engine.join({ backend: 'wasm', numExamples: 10 }, a);
    assert.equal(again, a);
    const status = h.engine.status();
    assert.equal(status.participants.length, 1);
    assert.equal(status.participants[0]!.backend, 'wasm');
    assert.equal(status.participants[0]!.connected, true);
  });
});
