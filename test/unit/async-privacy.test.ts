import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DpFedAvg } from '../../core/aggregation/dp-fedavg.ts';
import { gaussianEpsilon } from '../../core/privacy/pld.ts';
import { SeededRandom } from '../../core/random/prng.ts';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { EngineHarness } from '../helpers/engine-harness.ts';

const Z = 1.2;
const DELTA = 1e-5;
const K = 2;

function dpAsyncHarness(): { h: EngineHarness; strategy: DpFedAvg } {
  const strategy = new DpFedAvg({
    placement: 'central',
    noiseMultiplier: Z,
    clip: { kind: 'fixed', norm: 1 },
    sampleRate: 1,
    expectedClients: K,
    delta: DELTA,
    accountant: 'pld',
    uniform: new SeededRandom(7),
  });
  const h = new EngineHarness(
    { minClients: 3, rounds: 50, mode: 'async', async: { bufferSize: K, maxStaleness: 10, concurrency: 10, stalenessExponent: 0.5 } },
    4,
    strategy,
  );
  return { h, strategy };
}

function slotUpdate(h: EngineHarness, id: string, values: number[]) {
  const start = h.starts.filter((s) => s.participantId === id).at(-1)!.message;
  return h.update(start.round, values, { baseVersion: start.model.version });
}

describe('client-level DP in async mode', () => {
  it('adds each participant at most once to a version: its second update waits for the next', async () => {
    const { h } = dpAsyncHarness();
    const [a, b] = [h.join(), h.join(), h.join()];
    h.engine.start();
    await h.settle();
    assert.ok(h.engine.submitUpdate(a!, slotUpdate(h, a!, [0.1, 0, 0, 0])).ok);
    assert.ok(h.engine.submitUpdate(a!, slotUpdate(h, a!, [0.1, 0, 0, 0])).ok, 'a trained again from version 0');
    await h.settle();
    assert.equal(h.engine.globalModel.version, 0, 'one participant cannot fill a buffer of two');
    const startsOfA = h.starts.filter((s) => s.participantId === a).length;
    assert.ok(h.engine.submitUpdate(b!, slotUpdate(h, b!, [0.1, 0, 0, 0])).ok);
    await h.settle();
    const [first, second] = h.engine.status().history;
    assert.deepEqual(first!.participants!.map((p) => p.id).sort(), [a, b].sort());
    assert.equal(first!.received, 2);
    // a's held update went into version 2, and a got no slot while it waited.
    assert.deepEqual(second?.participants?.map((p) => p.id) ?? [], []);
    assert.equal(h.starts.filter((s) => s.participantId === a).length, startsOfA + 1, 'a trains again once its held update is in');
    // Round ends announce no (q, z): a version says nothing of those not in it; participants charged their own runs at slot start.
    assert.equal(h.ends[0]!.clientDp, undefined);
    const announced = h.starts.at(-1)!.message.config.clientDp;
    assert.deepEqual(announced && { q: announced.sampleRate, z: announced.noiseMultiplier }, { q: 1, z: Z });
  });

  it('accounts T versions as T Gaussian releases without amplification: the single Gaussian with mu = sqrt(T)/z', async () => {
    const { h, strategy } = dpAsyncHarness();
    const ids = [h.join(), h.join(), h.join()];
    h.engine.start();
    await h.settle();
    const T = 6;
    // Everyone with a training slot answers it, until T versions are made.
    const answered = new Set<number>();
    for (let pass = 0; pass < 50 && h.engine.globalModel.version < T; pass++) {
      for (const id of ids) {
        const index = h.starts.map((s) => s.participantId).lastIndexOf(id);
        if (index < 0 || answered.has(index)) continue;
        answered.add(index);
        assert.ok(h.engine.submitUpdate(id, slotUpdate(h, id, [0.01, 0, 0, 0])).ok);
      }
      await h.settle();
    }
    const report = strategy.privacy();
    assert.equal(report.rounds, h.engine.globalModel.version);
    assert.equal(report.rounds, T);
    assert.equal(report.sampleRate, 1);
    const exact = gaussianEpsilon(Math.sqrt(report.rounds) / Z, DELTA);
    assert.ok(Math.abs(report.epsilon - exact) <= 1e-3 * exact, `PLD ε ${report.epsilon} vs the single Gaussian's ${exact}`);
    assert.ok(report.rdpEpsilon! >= exact, 'the RDP bound is an upper bound');
  });

  it('needs --client-sample-rate 1 and K <= --min-clients; m defaults to K', () => {
    const base = ['--mode', 'async', '--buffer-size', '3', '--min-clients', '3', '--admin-token', 'async-privacy-test-admin-token'];
    const dp = ['--client-dp', 'central', '--client-noise-multiplier', '1'];
    assert.throws(
      () => parseConfig([...base, ...dp, '--client-sample-rate', '0.5']),
      /needs --client-sample-rate 1 .*no sampling amplification/,
    );
    assert.throws(
      () => parseConfig([...base, ...dp, '--client-sample-rate', '1', '--min-clients', '2']),
      /needs --min-clients of at least --buffer-size \(3\)/,
    );
    const config = parseConfig([...base, ...dp, '--client-sample-rate', '1']) as CoordinatorConfig;
    assert.equal(config.clientDp?.expectedClients, 3);
  });
});
