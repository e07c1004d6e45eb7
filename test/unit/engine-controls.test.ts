import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DpFedAvg } from '../../core/aggregation/dp-fedavg.ts';
import { FedAvg } from '../../core/aggregation/fedavg.ts';
import { TrimmedMean } from '../../core/aggregation/robust.ts';
import type { Strategy } from '../../core/aggregation/strategy.ts';
import { ErrorCode, type Ack } from '../../core/protocol/errors.ts';
import type { RoundStartMessage } from '../../core/protocol/messages.ts';
import type { RoundRecord, RoundSettings } from '../../core/protocol/status.ts';
import { SeededRandom } from '../../core/random/prng.ts';
import type { RoundEngine } from '../../coordinator/rounds/round-engine.ts';
import { EngineHarness } from '../helpers/engine-harness.ts';
import { roundRecord } from '../helpers/round-record.ts';

/** The shared harness with the strategy as the second argument, which most tests here set. */
class ControlHarness extends EngineHarness {
  constructor(settings: Partial<RoundSettings> = {}, strategy: Strategy = new FedAvg(), dim = 4) {
    super(settings, dim, strategy);
  }

  startOf(round: number): RoundStartMessage | undefined {
    return this.starts.find((s) => s.message.round === round)?.message;
  }
}

function code<T>(result: Ack<T>): string | undefined {
  return result.ok ? undefined : result.error.code;
}

function message<T>(result: Ack<T>): string {
  return result.ok ? '' : result.error.message;
}

describe('engine controls', () => {
  it('with a manual start waits for the operator, whatever the quorum, and starts once', async () => {
    const h = new ControlHarness({ clientsPerRound: 2 });
    h.join();
    h.join();
    await h.settle();
    assert.equal(h.engine.status().control, 'awaiting-start');
    assert.match(h.engine.status().waitingFor ?? '', /operator to start/);
    assert.equal(h.starts.length, 0);
    assert.equal(code(await h.engine.applyControl('pause')), ErrorCode.ControlNotAllowed);
    assert.equal(code(await h.engine.applyControl('resume')), ErrorCode.ControlNotAllowed);
    assert.deepEqual(await h.engine.applyControl('start'), { ok: true, value: { control: 'running' } });
    await h.settle();
    assert.equal(h.selectedIn(1).length, 2);
    const again = await h.engine.applyControl('start');
    assert.equal(code(again), ErrorCode.ControlNotAllowed);
    assert.match(message(again), /already started \(running\)/);
  });

  it('pause lets the open round finish and opens no new one until resume', async () => {
    const h = new ControlHarness({ clientsPerRound: 2 });
    const [a, b] = [h.join(), h.join()];
    h.engine.start();
    await h.settle();
    assert.deepEqual(await h.engine.applyControl('pause'), { ok: true, value: { control: 'paused' } });
    assert.equal(h.engine.status().phase, 'training', 'the open round goes on');
    assert.equal(code(await h.engine.applyControl('pause')), ErrorCode.ControlNotAllowed);
    assert.ok(h.engine.submitUpdate(a, h.update(1, [0.5, 0, 0, 0])).ok);
    assert.ok(h.engine.submitUpdate(b, h.update(1, [0.5, 0, 0, 0])).ok);
    await h.settle();
    assert.equal(h.ends[0]?.outcome, 'aggregated', 'the paused round closed normally');
    h.clock.advance(60_000);
    await h.settle();
    assert.equal(h.selectedIn(2).length, 0, 'no round opens while paused');
    const status = h.engine.status();
    assert.equal(status.control, 'paused');
    assert.equal(status.phase, 'waiting');
    assert.match(status.waitingFor ?? '', /resume/);
    assert.deepEqual(await h.engine.applyControl('resume'), { ok: true, value: { control: 'running' } });
    await h.settle();
    assert.equal(h.selectedIn(2).length, 2, 'round 2 opened on resume');
    assert.equal(code(await h.engine.applyControl('resume')), ErrorCode.ControlNotAllowed);
  });

  it('stop aggregates the open round when enough updates came, checkpoints it, then announces the end and federation:done', async () => {
    const h = new ControlHarness({ clientsPerRound: 3, minUpdates: 2 });
    const ids = [h.join(), h.join(), h.join()];
    h.engine.start();
    await h.settle();
    assert.ok(h.engine.submitUpdate(ids[0]!, h.update(1, [0.4, 0, 0, 0])).ok);
    assert.ok(h.engine.submitUpdate(ids[1]!, h.update(1, [0.6, 0, 0, 0])).ok);
    const stopped = h.engine.applyControl('stop');
    assert.equal(h.engine.status().control, 'stopped', 'stopped at once: no new round may open');
    const ack = await stopped;
    assert.deepEqual(ack, { ok: true, value: { control: 'stopped', doneReason: 'stopped by the operator' } });
    assert.deepEqual(h.log, ['checkpoint 1', 'end 1', 'done']);
    const record = h.engine.status().history[0]!;
    assert.equal(record.outcome, 'aggregated');
    assert.equal(record.received, 2);
    assert.equal(record.dropped, 1);
    assert.equal(record.participants?.find((p) => p.id === ids[2])?.reason, 'stopped by the operator');
    assert.ok(Math.abs(h.engine.globalModel.weights[0]! - 0.5) < 1e-6);
    assert.equal(h.engine.status().done, true);
    assert.equal(code(await h.engine.applyControl('resume')), ErrorCode.ControlNotAllowed);
    assert.equal(code(await h.engine.applyControl('stop')), ErrorCode.ControlNotAllowed);
    assert.equal(code(h.engine.updateSettings({ epochs: 2 })), ErrorCode.ControlNotAllowed);
  });

  it('stop records a round without enough updates as skipped and keeps the model', async () => {
    const h = new ControlHarness({ clientsPerRound: 2, minUpdates: 2 });
    const [a] = [h.join(), h.join()];
    h.engine.start();
    await h.settle();
    assert.ok(h.engine.submitUpdate(a!, h.update(1, [0.9, 0, 0, 0])).ok);
    await h.engine.stop('stopped by the operator');
    assert.deepEqual(h.log, ['checkpoint 1', 'end 1', 'done']);
    assert.equal(h.ends[0]?.outcome, 'skipped');
    assert.match(h.ends[0]?.reason ?? '', /only 1 of at least 2 updates/);
    assert.equal(h.engine.globalModel.version, 0);
    assert.equal(h.done[0]?.reason, 'stopped by the operator');
  });

  it('stop between rounds finishes at once, and a round being evaluated is recorded first', async () => {
    const idle = new ControlHarness();
    await idle.engine.applyControl('stop');
    assert.deepEqual(idle.log, ['done']);

    const h = new ControlHarness({ clientsPerRound: 1, minClients: 1 });
    const a = h.join();
    h.engine.start();
    await h.settle();
    assert.ok(h.engine.submitUpdate(a, h.update(1, [0.3, 0, 0, 0])).ok);
    assert.equal(h.engine.status().phase, 'aggregating', 'the close is deferred');
    const stopped = h.engine.stop('stopped by the operator');
    await h.settle();
    await stopped;
    assert.deepEqual(h.log, ['checkpoint 1', 'end 1', 'done']);
    assert.equal(h.engine.status().history[0]?.outcome, 'aggregated');
    assert.equal(h.selectedIn(2).length, 0);
  });

  it('applies changed settings from the next round, not the open one', async () => {
    const h = new ControlHarness({ clientsPerRound: 1, minClients: 1, roundTimeoutMs: 10_000 });
    const ids = [h.join(), h.join(), h.join()];
    h.engine.start();
    await h.settle();
    const ack = h.engine.updateSettings({ clientsPerRound: 3, epochs: 4, batchSize: 16, learningRate: 0.05, roundTimeoutMs: 20_000 });
    assert.ok(ack.ok);
    assert.equal(ack.value.clientsPerRound, 3);
    assert.deepEqual(h.engine.status().settings.fit, { epochs: 4, batchSize: 16, learningRate: 0.05 });
    const first = h.startOf(1)!;
    assert.deepEqual(first.config, { epochs: 1, batchSize: 8, learningRate: 0.1 });
    assert.equal(first.deadline - h.clock.now(), 10_000);
    const selected = h.selectedIn(1)[0]!;
    assert.ok(ids.includes(selected));
    assert.ok(h.engine.submitUpdate(selected, h.update(1, [0.1, 0, 0, 0])).ok);
    await h.settle();
    const second = h.startOf(2)!;
    assert.deepEqual(second.config, { epochs: 4, batchSize: 16, learningRate: 0.05 });
    assert.equal(second.deadline - h.clock.now(), 20_000);
    assert.equal(h.selectedIn(2).length, 3);
    const history = h.engine.status().history;
    assert.deepEqual(history[0]?.applied, { clientsPerRound: 1, epochs: 1, batchSize: 8, learningRate: 0.1, deadlineMs: 10_000 });
  });

  it('refuses settings out of range with INVALID_SETTING and changes nothing', () => {
    const h = new ControlHarness({ clientsPerRound: 3, minUpdates: 2 });
    const before = h.engine.status().settings;
    const cases: [Parameters<RoundEngine['updateSettings']>[0], RegExp][] = [
      [{ clientsPerRound: 1 }, /at least minUpdates \(2\)/],
      [{ clientsPerRound: 2.5 }, /clientsPerRound must be an integer/],
      [{ epochs: 0 }, /epochs must be an integer in \[1, 1000\]/],
      [{ batchSize: -4 }, /batchSize must be an integer/],
      [{ learningRate: 0 }, /learningRate must be in \(0, 100\]/],
      [{ learningRate: Number.NaN }, /learningRate/],
      [{ roundTimeoutMs: 10 }, /roundTimeoutMs must be between 1000/],
      [{ epochs: 2, roundTimeoutMs: 3e9 }, /roundTimeoutMs/],
    ];
    for (const [change, why] of cases) {
      const ack = h.engine.updateSettings(change);
      assert.equal(code(ack), ErrorCode.InvalidSetting, JSON.stringify(change));
      assert.match(message(ack), why);
    }
    assert.deepEqual(h.engine.status().settings, before, 'a refused change changes nothing, not even its valid parts');
  });

  it('refuses changes that would falsify a privacy or secure aggregation guarantee', () => {
    const dp = new ControlHarness(
      { clientsPerRound: 3 },
      new DpFedAvg({
        placement: 'central',
        noiseMultiplier: 1,
        clip: { kind: 'fixed', norm: 1 },
        sampleRate: 0.5,
        expectedClients: 3,
        delta: 1e-5,
        uniform: new SeededRandom(1),
        selectionUniform: new SeededRandom(2),
      }),
    );
    assert.match(message(dp.engine.updateSettings({ clientsPerRound: 5 })), /client-level DP.*sample-rate/);
    assert.ok(dp.engine.updateSettings({ epochs: 3, learningRate: 0.2 }).ok, 'clipping bounds each update whatever the local training');

    const sampleDp = new ControlHarness({
      fit: {
        epochs: 1,
        batchSize: 8,
        learningRate: 0.1,
        sampleDp: { clipNorm: 1, noiseMultiplier: 1.1, expectedBatchSize: 8, delta: 1e-5 },
      },
    });
    assert.match(message(sampleDp.engine.updateSettings({ epochs: 2 })), /epochs cannot change under DP-SGD/);
    assert.match(message(sampleDp.engine.updateSettings({ batchSize: 64 })), /batchSize cannot change under DP-SGD/);
    assert.ok(sampleDp.engine.updateSettings({ learningRate: 0.05, roundTimeoutMs: 5000 }).ok);

    const secure = new ControlHarness({
      minClients: 3,
      clientsPerRound: 3,
      secureAggregation: { neighbours: 'all', clipRange: 8, quantizationRange: 2 ** 22, stepTimeoutMs: 1000 },
    });
    // 2^22 levels: at most floor((2^31 - 1) / 2^21) = 1023 summands before the mod-2^32 sum can wrap.
    assert.ok(secure.engine.updateSettings({ clientsPerRound: 1023 }).ok);
    assert.match(message(secure.engine.updateSettings({ clientsPerRound: 1024 })), /overflow.*at most 1023/);
    assert.match(message(secure.engine.updateSettings({ clientsPerRound: 2 })), /fewer than three/);
  });

  it('names the true minimum for trimmed mean, ⌈1/β⌉, not the current setting', () => {
    // β = 0.3: ⌊0.3 × 3⌋ = 0, ⌊0.3 × 4⌋ = 1, so 4 is the least; the current 20 is not a bound.
    const h = new ControlHarness({ clientsPerRound: 20 }, new TrimmedMean({ trimFraction: 0.3 }));
    const refused = h.engine.updateSettings({ clientsPerRound: 3 });
    assert.equal(code(refused), ErrorCode.InvalidSetting);
    assert.match(message(refused), /trim nothing.*at least ⌈1\/0\.3⌉ = 4 clients per round/);
    assert.doesNotMatch(message(refused), /20/);
    assert.ok(h.engine.updateSettings({ clientsPerRound: 4 }).ok);
    // 1/0.1 is exactly 10 and ⌊0.1 × 10⌋ = 1 (trimCount absorbs 0.1 × 10's rounding): 10 is allowed, 9 is not.
    const tenth = new ControlHarness({ clientsPerRound: 20 }, new TrimmedMean({ trimFraction: 0.1 }));
    assert.match(message(tenth.engine.updateSettings({ clientsPerRound: 9 })), /= 10 clients per round/);
    assert.ok(tenth.engine.updateSettings({ clientsPerRound: 10 }).ok);
  });
});

describe('adopting a stored federation (a cluster node)', () => {
  const record = (round: number) => roundRecord(round);
  const resume = (round: number, history: RoundRecord[]) => ({ round, modelVersion: round, weights: new Float32Array(4), history });

  it('keeps the records it holds and takes the newer ones after them; refuses a history that skips records', () => {
    const h = new ControlHarness();
    h.engine.adoptResume(resume(2, [record(1), record(2)]), 2);
    assert.deepEqual(h.engine.knownHistory, { length: 2, last: record(2) });
    h.engine.adoptResume(resume(4, [record(3), record(4)]), 4, 2);
    assert.deepEqual(
      h.engine.status().history.map((r) => r.round),
      [1, 2, 3, 4],
    );
    // From 0: the whole history replaces what it held.
    h.engine.adoptResume(resume(4, [record(1), record(2), record(4)]), 4, 0);
    assert.deepEqual(
      h.engine.status().history.map((r) => r.round),
      [1, 2, 4],
    );
    assert.throws(() => h.engine.adoptResume(resume(6, [record(6)]), 6, 5), /goes on from record 5, but this engine holds 3/);
  });
});

describe('round timeline and update norms', () => {
  it('records each selected participant: outcome, duration, rejection code, update norm, and the norm quantiles', async () => {
    const h = new ControlHarness({ clientsPerRound: 4, minClients: 4, roundTimeoutMs: 10_000 });
    for (let i = 0; i < 4; i++) h.join();
    h.engine.start();
    await h.settle();
    const [a, b, c, d] = h.selectedIn(1) as [string, string, string, string];
    h.clock.advance(1000);
    assert.ok(h.engine.submitUpdate(a, h.update(1, [3, 4, 0, 0])).ok); // norm 5
    h.clock.advance(2000);
    assert.ok(h.engine.submitUpdate(b, h.update(1, [0, 0, 0, 1])).ok); // norm 1
    const wrong = h.engine.submitUpdate(c, { ...h.update(1, [1, 0, 0, 0]), baseVersion: 7 });
    assert.equal(code(wrong), ErrorCode.StaleModel);
    h.clock.advance(7000); // the deadline: d is the straggler
    await h.settle();
    const record = h.engine.status().history[0]!;
    const byId = new Map(record.participants!.map((p) => [p.id, p]));
    assert.deepEqual(byId.get(a), { id: a, outcome: 'received', durationMs: 1000, updateNorm: 5 });
    assert.deepEqual(byId.get(b), { id: b, outcome: 'received', durationMs: 3000, updateNorm: 1 });
    assert.equal(byId.get(c)?.outcome, 'rejected');
    assert.match(byId.get(c)?.reason ?? '', /^STALE_MODEL: /);
    assert.deepEqual(byId.get(d), { id: d, outcome: 'dropped', durationMs: 10_000, reason: 'missed the deadline' });
    assert.deepEqual(record.rejectionReasons, { STALE_MODEL: 1 });
    // Two norms, 1 and 5: linear interpolation between them.
    assert.deepEqual(record.updateNorms, { count: 2, min: 1, p25: 2, median: 3, p75: 4, max: 5 });
    const status = h.engine.status();
    assert.equal(status.updateNormsShown, true);
    assert.equal(status.participants.find((p) => p.id === a)?.lastUpdateNorm, 5);
  });

  it('keeps timelines for the last 10 rounds in the dashboard status, and every one in the full status and checkpoints', async () => {
    const h = new ControlHarness({ rounds: 12, clientsPerRound: 2, minClients: 2 });
    h.join();
    h.join();
    h.engine.start();
    for (let round = 1; round <= 12; round++) {
      await h.settle();
      for (const id of h.selectedIn(round)) assert.ok(h.engine.submitUpdate(id, h.update(round, [0.01, 0, 0, 0])).ok);
    }
    await h.settle();
    assert.ok(h.engine.isDone);
    const full = h.engine.status().history;
    assert.equal(full.length, 12);
    assert.ok(
      full.every((r) => r.participants?.length === 2),
      'the report and CSV read status(): every timeline',
    );
    assert.ok(
      h.checkpointHistory.length === 12 && h.checkpointHistory.every((r) => r.participants?.length === 2),
      'checkpoints and history.json: every timeline',
    );

    const pushed = h.engine.dashboardStatus().history;
    assert.deepEqual(
      pushed.map((r) => r.round),
      full.map((r) => r.round),
    );
    assert.deepEqual(
      pushed.map((r) => r.participants?.length),
      [undefined, undefined, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2],
    );
    // An old round keeps everything but its per-participant list.
    const { participants: _timeline, ...counts } = full[0]!;
    assert.deepEqual(pushed[0], counts);
    assert.equal(pushed[0]!.received, 2);
    assert.deepEqual(pushed.slice(2), full.slice(2));
  });

  it('reports the clipped fraction when participants clip without noise', async () => {
    const h = new ControlHarness({
      clientsPerRound: 3,
      minClients: 3,
      fit: { epochs: 1, batchSize: 8, learningRate: 0.1, privacy: { clipNorm: 2, noiseStd: 0 } },
    });
    for (let i = 0; i < 3; i++) h.join();
    h.engine.start();
    await h.settle();
    const [a, b, c] = h.selectedIn(1) as [string, string, string];
    h.engine.submitUpdate(a, h.update(1, [2, 0, 0, 0])); // at the bound: clipped
    h.engine.submitUpdate(b, h.update(1, [0, 1.2, 1.6, 0])); // norm 2 (float32): clipped
    h.engine.submitUpdate(c, h.update(1, [0.5, 0, 0, 0]));
    await h.settle();
    const norms = h.engine.status().history[0]!.updateNorms!;
    assert.equal(norms.clipNorm, 2);
    assert.ok(Math.abs(norms.clippedFraction! - 2 / 3) < 1e-12);
  });

  it('withholds every individual norm under client-level DP', async () => {
    const strategy = new DpFedAvg({
      placement: 'central',
      noiseMultiplier: 1,
      clip: { kind: 'fixed', norm: 1 },
      sampleRate: 1,
      expectedClients: 2,
      delta: 1e-5,
      uniform: new SeededRandom(1),
      selectionUniform: new SeededRandom(2),
    });
    const h = new ControlHarness({ clientsPerRound: 2, minClients: 2 }, strategy);
    h.join();
    h.join();
    h.engine.start();
    await h.settle();
    for (const id of h.selectedIn(1)) assert.ok(h.engine.submitUpdate(id, h.update(1, [0.3, 0.4, 0, 0])).ok);
    await h.settle();
    const status = h.engine.status();
    assert.equal(status.updateNormsShown, false);
    assert.match(status.updateNormsWithheld ?? '', /client-level DP/);
    const record = status.history[0]!;
    assert.equal(record.updateNorms, undefined);
    assert.equal(record.participants?.length, 2);
    assert.ok(record.participants!.every((p) => p.updateNorm === undefined));
    assert.ok(status.participants.every((p) => p.lastUpdateNorm === undefined));
  });

  it('under client-level DP tells participants a round was skipped, not why: the reason quotes how many took part', async () => {
    const strategy = new DpFedAvg({
      placement: 'distributed',
      noiseMultiplier: 1,
      clip: { kind: 'fixed', norm: 1 },
      sampleRate: 1,
      expectedClients: 2,
      delta: 1e-5,
      uniform: new SeededRandom(1),
      selectionUniform: new SeededRandom(2),
    });
    const h = new ControlHarness({ clientsPerRound: 2, minClients: 2 }, strategy);
    h.join();
    h.join();
    h.engine.start();
    await h.settle();
    await h.engine.stop('stopped by the operator');
    assert.equal(h.ends[0]?.outcome, 'skipped');
    assert.equal(h.ends[0]?.reason, undefined);
    assert.match(h.engine.status().history[0]?.reason ?? '', /\b0\b/, 'the operator still sees it, with its count');
  });
});
