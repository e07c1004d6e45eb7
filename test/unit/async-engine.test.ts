import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FedAvg } from '../../core/aggregation/fedavg.ts';
import { CoordinateMedian } from '../../core/aggregation/robust.ts';
import type { Strategy } from '../../core/aggregation/strategy.ts';
import { ErrorCode } from '../../core/protocol/errors.ts';
import type { AsyncSettings, RoundSettings } from '../../core/protocol/status.ts';
import type { RoundStartMessage } from '../../core/protocol/messages.ts';
import { SeededRandom } from '../../core/random/prng.ts';
import { encodeFrame, FrameKind } from '../../core/wire/frame.ts';
import { ManualClock } from '../../coordinator/rounds/clock.ts';
import { RoundEngine } from '../../coordinator/rounds/round-engine.ts';
import { EngineHarness } from '../helpers/engine-harness.ts';

/** An engine in async mode (docs/async.md) on a manual clock. */
function asyncHarness(
  async: Partial<AsyncSettings>,
  settings: Partial<RoundSettings> = {},
  strategy: Strategy = new FedAvg(),
): EngineHarness {
  return new EngineHarness(
    {
      minClients: 1,
      mode: 'async',
      async: { bufferSize: 2, maxStaleness: 5, concurrency: 10, stalenessExponent: 0.5, ...async },
      ...settings,
    },
    4,
    strategy,
  );
}

/** The last round:start a participant got (its slot's round and model version). */
function lastStart(h: EngineHarness, id: string) {
  const start = h.starts.filter((s) => s.participantId === id).at(-1);
  assert.ok(start, `${id} got a round:start`);
  return start.message;
}

/** An update for the participant's current slot. */
function slotUpdate(h: EngineHarness, id: string, values: number[], numExamples = 10) {
  const start = lastStart(h, id);
  return h.update(start.round, values, { baseVersion: start.model.version, numExamples });
}

const close = (actual: number, expected: number) => assert.ok(Math.abs(actual - expected) < 1e-6, `${actual} ≈ ${expected}`);

describe('async mode (FedBuff) in the round engine', () => {
  it('makes one version from every K accepted updates, weighting a stale one by 1/sqrt(1+s), with the server learning rate', async () => {
    const h = asyncHarness({ bufferSize: 2 }, {}, new FedAvg({ serverLearningRate: 0.5 }));
    const [a, b, c] = [h.join(), h.join(), h.join()];
    h.engine.start();
    await h.settle();
    for (const id of [a, b, c]) {
      assert.equal(lastStart(h, id).mode, 'async');
      assert.equal(lastStart(h, id).model.version, 0);
    }
    const ackA = h.engine.submitUpdate(a, slotUpdate(h, a, [0.4, 0, 0, 0], 10));
    assert.deepEqual(ackA, { ok: true, value: { round: 1, received: 1 } });
    assert.ok(h.engine.submitUpdate(b, slotUpdate(h, b, [0.8, 0, 0, 0], 30)).ok);
    await h.settle();
    // Version 1: x = 0 + 0.5 * (10*0.4 + 30*0.8) / 40 = 0.35; c is still training from version 0.
    assert.equal(h.engine.globalModel.version, 1);
    close(h.engine.globalModel.weights[0]!, 0.35);
    assert.equal(lastStart(h, a).model.version, 0, 'a got the model that was newest when it uploaded');
    assert.equal(lastStart(h, b).model.version, 1, 'b, whose update made version 1, trains from it');
    assert.equal(lastStart(h, c).model.version, 0, 'c was not interrupted');
    // c's update (base 0) goes into version 1: staleness 1, weight 1/sqrt(2).
    assert.ok(h.engine.submitUpdate(c, slotUpdate(h, c, [1, 0, 0, 0], 10)).ok);
    assert.ok(h.engine.submitUpdate(b, slotUpdate(h, b, [0.2, 0, 0, 0], 10)).ok);
    await h.settle();
    assert.equal(h.engine.globalModel.version, 2);
    close(h.engine.globalModel.weights[0]!, 0.35 + (0.5 * (10 * Math.SQRT1_2 * 1 + 10 * 0.2)) / 20);
    const record = h.engine.status().history[1]!;
    assert.deepEqual(record.staleness, { max: 1, mean: 0.5, counts: [1, 1] });
    assert.deepEqual(new Set(record.participants!.map((p) => p.id)), new Set([c, b]));
    assert.equal(record.received, 2);
    assert.equal(h.engine.status().settings.mode, 'async');
  });

  it('runs a robust rule over the buffer: the median of a version sees a stale update as w(s)·Δ', async () => {
    const h = asyncHarness({ bufferSize: 3 }, {}, new CoordinateMedian());
    const [a, b, c, d] = [h.join(), h.join(), h.join(), h.join()];
    h.engine.start();
    await h.settle();
    for (const id of [a, b, c]) assert.ok(h.engine.submitUpdate(id, slotUpdate(h, id, [0.2, 0, 0, 0])).ok);
    await h.settle();
    assert.equal(h.engine.globalModel.version, 1);
    // d and a (its second slot came while version 1 collected) trained from version 0: staleness 1, weight 1/√2; c from version 1.
    assert.equal(lastStart(h, c).model.version, 1);
    assert.ok(h.engine.submitUpdate(d, slotUpdate(h, d, [0.6, 0, 0, 0])).ok);
    assert.ok(h.engine.submitUpdate(a, slotUpdate(h, a, [0.1, 0, 0, 0])).ok);
    assert.ok(h.engine.submitUpdate(c, slotUpdate(h, c, [0.5, 0, 0, 0])).ok);
    await h.settle();
    assert.equal(h.engine.globalModel.version, 2);
    assert.deepEqual(h.engine.status().history[1]!.staleness, { max: 1, mean: 2 / 3, counts: [1, 2] });
    // The median of {0.6/√2 ≈ 0.424, 0.1/√2, 0.5} is d's 0.424 (unweighted it would be c's 0.5).
    close(h.engine.globalModel.weights[0]!, 0.2 + 0.6 * Math.SQRT1_2);
  });

  it('refuses an update staler than S with UPDATE_TOO_STALE and hands the participant the newest model', async () => {
    const h = asyncHarness({ bufferSize: 1, maxStaleness: 0 });
    const [a, b] = [h.join(), h.join()];
    h.engine.start();
    await h.settle();
    assert.ok(h.engine.submitUpdate(a, slotUpdate(h, a, [0.5, 0, 0, 0])).ok);
    await h.settle();
    assert.equal(h.engine.globalModel.version, 1);
    const startsOfB = h.starts.filter((s) => s.participantId === b).length;
    const refused = h.engine.submitUpdate(b, slotUpdate(h, b, [9, 0, 0, 0]));
    assert.equal(refused.ok ? undefined : refused.error.code, ErrorCode.UpdateTooStale);
    assert.equal(h.starts.filter((s) => s.participantId === b).length, startsOfB + 1, 'b restarts at once');
    assert.equal(lastStart(h, b).model.version, 1);
    close(h.engine.globalModel.weights[0]!, 0.5);
    assert.equal(h.engine.status().rejections[ErrorCode.UpdateTooStale], 1);
    // Its fresh update is taken.
    assert.ok(h.engine.submitUpdate(b, slotUpdate(h, b, [0.1, 0, 0, 0])).ok);
    await h.settle();
    assert.equal(h.engine.globalModel.version, 2);
    // A second copy of the refused update finds no slot.
    const again = h.engine.submitUpdate(b, h.update(1, [9, 0, 0, 0], { baseVersion: 0 }));
    assert.equal(again.ok ? undefined : again.error.code, ErrorCode.NotSelected);
  });

  it('forgets when a participant last had a slot once it leaves', async () => {
    const h = asyncHarness({ bufferSize: 5, concurrency: 10 });
    const ids = [h.join(), h.join(), h.join()];
    h.engine.start();
    await h.settle();
    // Reached by index: the pool is the engine's own (a participant that leaves must not stay in it for the process's life).
    // biome-ignore lint/complexity/useLiteralKeys: the index reaches the engine's private pool, which `.asyncPool` may not
    const pool = h.engine['asyncPool']!;
    assert.equal(pool.servedKnown, 3);
    for (const id of ids) h.engine.leave(id);
    assert.equal(pool.servedKnown, 0);
  });

  it('lets at most C participants train at once and hands a free slot to the longest-waiting one', async () => {
    const h = asyncHarness({ bufferSize: 5, concurrency: 2 });
    const [a, b, c, d] = [h.join(), h.join(), h.join(), h.join()];
    h.engine.start();
    await h.settle();
    assert.deepEqual(new Set(h.starts.map((s) => s.participantId)), new Set([a, b]));
    assert.ok(h.engine.submitUpdate(a, slotUpdate(h, a, [0.1, 0, 0, 0])).ok);
    assert.equal(h.starts.at(-1)!.participantId, c, 'c waited longest');
    assert.ok(h.engine.submitUpdate(b, slotUpdate(h, b, [0.1, 0, 0, 0])).ok);
    assert.equal(h.starts.at(-1)!.participantId, d);
    assert.ok(h.engine.submitUpdate(c, slotUpdate(h, c, [0.1, 0, 0, 0])).ok);
    assert.equal(h.starts.at(-1)!.participantId, a, 'a had its slot before b');
    // A participant that leaves gives its slot back.
    h.engine.leave(d);
    assert.equal(h.starts.at(-1)!.participantId, b);
  });

  it('keeps an update that arrives while a version is being made for the next version, with its staleness counted there', async () => {
    const h = asyncHarness({ bufferSize: 1 });
    const [a, b] = [h.join(), h.join()];
    h.engine.start();
    await h.settle();
    assert.ok(h.engine.submitUpdate(a, slotUpdate(h, a, [0.5, 0, 0, 0])).ok);
    // Version 1 is being aggregated: b's update waits for version 2's buffer.
    const ack = h.engine.submitUpdate(b, slotUpdate(h, b, [0.3, 0, 0, 0]));
    assert.ok(ack.ok);
    await h.settle();
    assert.ok(h.engine.globalModel.version >= 2);
    const second = h.engine.status().history[1]!;
    assert.deepEqual(second.staleness, { max: 1, mean: 1, counts: [0, 1] });
    close(h.engine.status().history[1]!.metrics!.accuracy, 0.5 + 0.3 * Math.SQRT1_2);
  });

  it('hands the model just published to the idle participants when held updates fill the next version as it opens', async () => {
    const h = asyncHarness({ bufferSize: 1 });
    const [a, b] = [h.join(), h.join()];
    h.engine.start();
    await h.settle();
    assert.ok(h.engine.submitUpdate(a, slotUpdate(h, a, [0.5, 0, 0, 0])).ok);
    // Version 1 is being made: b's update is held, and fills version 2 as soon as it opens.
    assert.ok(h.engine.submitUpdate(b, slotUpdate(h, b, [0.3, 0, 0, 0])).ok);
    const before = h.starts.length;
    await h.settle();
    assert.equal(h.engine.globalModel.version, 2);
    const handedOut = h.starts
      .slice(before)
      .map((s) => ({ id: s.participantId, round: s.message.round, version: s.message.model.version }));
    assert.deepEqual(handedOut, [
      // a, whose update made version 1, trains from it at once instead of idling while version 2 is made.
      { id: a, round: 2, version: 1 },
      // b's update is in version 2: it waits for the model that holds it.
      { id: b, round: 3, version: 2 },
    ]);
    const [, second] = h.engine.status().history;
    assert.equal(second!.bytesOut, h.engine.globalModel.frame.byteLength, "a's model counts in version 2's record");
  });

  it('counts versions for --rounds and stops; the slots end with the federation', async () => {
    const h = asyncHarness({ bufferSize: 1 }, { rounds: 2 });
    const a = h.join();
    h.engine.start();
    await h.settle();
    h.engine.submitUpdate(a, slotUpdate(h, a, [0.1, 0, 0, 0]));
    await h.settle();
    h.engine.submitUpdate(a, slotUpdate(h, a, [0.1, 0, 0, 0]));
    await h.settle();
    assert.equal(h.engine.isDone, true);
    assert.equal(h.engine.globalModel.version, 2);
    assert.match(h.done[0]!.reason, /completed 2 rounds/);
    const late = h.engine.submitUpdate(a, slotUpdate(h, a, [0.1, 0, 0, 0]));
    assert.equal(late.ok ? undefined : late.error.code, ErrorCode.FederationDone);
  });

  it('refuses a malformed update and takes the sender out of the version, without stalling the others', async () => {
    const h = asyncHarness({ bufferSize: 1 });
    const [a, b] = [h.join(), h.join()];
    h.engine.start();
    await h.settle();
    const bad = h.engine.submitUpdate(a, slotUpdate(h, a, [0.1, 0, 0]));
    assert.equal(bad.ok ? undefined : bad.error.code, ErrorCode.WrongLength);
    const nonFinite = h.engine.submitUpdate(b, slotUpdate(h, b, [Number.NaN, 0, 0, 0]));
    assert.equal(nonFinite.ok ? undefined : nonFinite.error.code, ErrorCode.NonFinite);
    assert.equal(h.engine.globalModel.version, 0);
    const record = h.engine.status();
    assert.equal(record.rejections[ErrorCode.WrongLength], 1);
    // The next version hands them slots again: nothing stalls for good.
    const c = h.join();
    await h.settle();
    assert.ok(h.engine.submitUpdate(c, slotUpdate(h, c, [0.2, 0, 0, 0])).ok);
    await h.settle();
    assert.equal(h.engine.globalModel.version, 1);
    assert.equal(lastStart(h, a).model.version, 1);
  });

  it('hands out no slot while paused, and the held-back slots on resume', async () => {
    const h = asyncHarness({ bufferSize: 3 });
    const [a, b] = [h.join(), h.join()];
    h.engine.start();
    await h.settle();
    h.engine.pause();
    const starts = h.starts.length;
    assert.ok(h.engine.submitUpdate(a, slotUpdate(h, a, [0.1, 0, 0, 0])).ok);
    assert.equal(h.starts.length, starts, 'no new slot while paused');
    h.engine.resume();
    assert.equal(h.starts.at(-1)!.participantId, a, 'a trains again once resumed');
    assert.ok(h.engine.submitUpdate(b, slotUpdate(h, b, [0.1, 0, 0, 0])).ok);
    assert.ok(h.engine.submitUpdate(a, slotUpdate(h, a, [0.1, 0, 0, 0])).ok);
    await h.settle();
    assert.equal(h.engine.globalModel.version, 1);
  });

  it('resumes from a checkpointed version: numbering and staleness continue from it', async () => {
    const clock = new ManualClock();
    const starts: { id: string; message: RoundStartMessage }[] = [];
    const saved: number[] = [];
    const engine = new RoundEngine({
      settings: {
        rounds: 10,
        minClients: 1,
        clientsPerRound: 3,
        minUpdates: 1,
        roundTimeoutMs: 10_000,
        fit: { epochs: 1, batchSize: 8, learningRate: 0.1 },
        mode: 'async',
        async: { bufferSize: 1, maxStaleness: 5, concurrency: 3, stalenessExponent: 0.5 },
      },
      strategy: new FedAvg(),
      clock,
      transport: {
        sendRoundStart: (id, message) => starts.push({ id, message }),
        broadcastRoundEnd: () => {},
        broadcastDone: () => {},
        statusChanged: () => {},
      },
      evaluator: { evaluate: async (w) => ({ accuracy: w[0]!, loss: 1 - w[0]! }) },
      initialWeights: new Float32Array(4),
      random: new SeededRandom(1),
      task: { name: 'test', architecture: 'mlp', paramCount: 4 },
      resume: { round: 7, modelVersion: 6, weights: Float32Array.of(0.5, 0, 0, 0), history: [] },
      onRoundCompleted: (record) => {
        saved.push(record.round);
      },
    });
    const a = engine.join({ backend: 'cpu', numExamples: 10 });
    engine.start();
    await engine.idle();
    assert.deepEqual(
      starts.map((s) => [s.id, s.message.round, s.message.model.version, s.message.mode]),
      [[a, 8, 6, 'async']],
    );
    const update = {
      round: 8,
      baseVersion: 6,
      numExamples: 10,
      update: new Uint8Array(encodeFrame(FrameKind.Update, Float32Array.of(0.1, 0, 0, 0))),
    };
    assert.ok(engine.submitUpdate(a, update).ok);
    await engine.idle();
    assert.deepEqual(saved, [8], 'version 7 is checkpointed as round 8 before it is shown');
    assert.equal(engine.globalModel.version, 7);
    close(engine.globalModel.weights[0]!, 0.6);
    assert.deepEqual(engine.status().history[0]!.staleness, { max: 0, mean: 0, counts: [1] });
  });
});
