import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DpFedAvg, type DpFedAvgOptions } from '../../core/aggregation/dp-fedavg.ts';
import { RdpAccountant } from '../../core/privacy/accountant.ts';
import { l2Norm } from '../../core/privacy/update-privacy.ts';
import { SeededRandom } from '../../core/random/prng.ts';
import { EngineHarness } from '../helpers/engine-harness.ts';

const base: DpFedAvgOptions = {
  placement: 'central',
  noiseMultiplier: 1.3,
  clip: { kind: 'fixed', norm: 0.7 },
  sampleRate: 0.1,
  expectedClients: 10,
  delta: 1e-5,
  // These tests compare with the RDP accountant; the PLD path is tested in dp-fedavg-accountant.test.ts.
  accountant: 'rdp',
  uniform: new SeededRandom(11),
};

const result = (update: Float32Array) => ({ participantId: 'x', numExamples: 5, update });

describe('DP-FedAvg (client-level DP)', () => {
  it('central: clips on the coordinator and adds noise of std z·S to the sum (not its square)', () => {
    const dim = 100_000;
    const strategy = new DpFedAvg(base);
    const global = new Float32Array(dim);
    const round = strategy.beginRound({ round: 1, globalWeights: global });
    const huge = new Float32Array(dim).fill(1); // norm 316, clipped to 0.7
    round.add(result(huge));
    const out = round.finish()!;
    // out = (clip(huge) + noise) / m, so noise = m·out − clip(huge).
    const clippedValue = 0.7 / Math.sqrt(dim);
    let sum = 0;
    let sumSq = 0;
    for (let i = 0; i < dim; i++) {
      const noise = 10 * out[i]! - clippedValue;
      sum += noise;
      sumSq += noise * noise;
    }
    const mean = sum / dim;
    const std = Math.sqrt(sumSq / dim - mean * mean);
    assert.ok(Math.abs(std / (1.3 * 0.7) - 1) < 0.01, `noise std ${std}, expected ${1.3 * 0.7}`);
    assert.ok(Math.abs(mean) < 0.01);
  });

  it('central: an update cannot move the model by more than S/m (plus noise)', () => {
    const strategy = new DpFedAvg({ ...base, noiseMultiplier: 1e-6 });
    const round = strategy.beginRound({ round: 1, globalWeights: new Float32Array(4) });
    round.add(result(Float32Array.from([1000, 0, 0, 0])));
    const out = round.finish()!;
    assert.ok(Math.abs(l2Norm(out) - 0.07) < 1e-4, `moved by ${l2Norm(out)}`);
  });

  it('divides by the fixed expected count, not by how many took part', () => {
    const strategy = new DpFedAvg({ ...base, noiseMultiplier: 1e-9, clip: { kind: 'fixed', norm: 100 } });
    const round = strategy.beginRound({ round: 1, globalWeights: Float32Array.from([1, 1]) });
    round.add(result(Float32Array.from([2, 0])));
    round.add(result(Float32Array.from([0, 4])));
    const out = round.finish()!;
    assert.ok(Math.abs(out[0]! - 1.2) < 1e-6 && Math.abs(out[1]! - 1.4) < 1e-6, `${Array.from(out)}`);
  });

  it('selects each participant independently with probability q', () => {
    const strategy = new DpFedAvg({ ...base, sampleRate: 0.3 });
    // The engine's seeded generator is ignored: selection must not be predictable.
    const random = new SeededRandom(5);
    const eligible = Array.from({ length: 1000 }, (_, i) => i);
    let total = 0;
    for (let r = 0; r < 50; r++) total += strategy.select(eligible, 10, random).length;
    assert.ok(Math.abs(total / 50 / 1000 - 0.3) < 0.01, `rate ${total / 50000}`);
  });

  it('charges the sampled Gaussian mechanism once per round, released or abandoned', () => {
    const strategy = new DpFedAvg(base);
    strategy.beginRound({ round: 1, globalWeights: new Float32Array(2) }).finish();
    strategy.beginRound({ round: 2, globalWeights: new Float32Array(2) }).abandon!();
    const expected = new RdpAccountant().step({ sampleRate: 0.1, noiseMultiplier: 1.3, steps: 2 }).getEpsilon(1e-5);
    const report = strategy.privacy();
    assert.equal(report.rounds, 2);
    assert.ok(Math.abs(report.epsilon - expected) < 1e-12);
    assert.equal(report.sampleRate, 0.1);
  });

  it('distributed: each client adds N(0, z²S²/m) and the accountant gets no sampling amplification', () => {
    const strategy = new DpFedAvg({ ...base, placement: 'distributed' });
    const fit = strategy.configureFit(1, { epochs: 1, batchSize: 10, learningRate: 0.1 });
    assert.equal(fit.privacy!.clipNorm, 0.7);
    assert.ok(Math.abs(fit.privacy!.noiseStd - (1.3 * 0.7) / Math.sqrt(10)) < 1e-12);
    assert.equal(strategy.releasesEveryRound, false);
    strategy.beginRound({ round: 1, globalWeights: new Float32Array(2) }).finish();
    const expected = new RdpAccountant().step({ sampleRate: 1, noiseMultiplier: 1.3 / Math.sqrt(10) }).getEpsilon(1e-5);
    assert.ok(Math.abs(strategy.privacy().epsilon - expected) < 1e-12);
    assert.equal(strategy.privacy().sampleRate, 1);
  });

  it('takes a secure aggregation sum only with distributed noise (central clips each update itself)', () => {
    assert.equal(new DpFedAvg(base).beginRound({ round: 1, globalWeights: new Float32Array(2) }).addSum, undefined);
    const round = new DpFedAvg({ ...base, placement: 'distributed' }).beginRound({ round: 1, globalWeights: Float32Array.from([1, 1]) });
    round.addSum!(Float64Array.from([2, 4]), 3);
    assert.equal(round.count, 3);
    // Divided by the fixed m = 10, not by the 3 contributors.
    assert.deepEqual(
      Array.from(round.finish()!),
      [1.2, 1.4].map((v) => Math.fround(v)),
    );
  });

  it('adaptive clipping: z_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2), the bound moves toward the target quantile', () => {
    const strategy = new DpFedAvg({
      ...base,
      noiseMultiplier: 1,
      expectedClients: 100,
      clip: { kind: 'adaptive', initialNorm: 0.1, targetQuantile: 0.5, learningRate: 0.2, countNoiseStd: 5 },
    });
    assert.ok(Math.abs(strategy.updateNoiseMultiplier - 1 / Math.sqrt(1 - 1 / 100)) < 1e-12);
    // Every update far inside the bound: b̄ ≈ 1 > 0.5, so the bound shrinks by about exp(−0.2·0.5).
    const round = strategy.beginRound({ round: 1, globalWeights: new Float32Array(3) });
    for (let i = 0; i < 100; i++) round.add(result(Float32Array.from([1e-4, 0, 0])));
    round.finish();
    const ratio = strategy.currentClipNorm / 0.1;
    assert.ok(ratio < 1 && Math.abs(ratio - Math.exp(-0.1)) < 0.03, `ratio ${ratio}`);
    assert.throws(
      () =>
        new DpFedAvg({ ...base, clip: { kind: 'adaptive', initialNorm: 0.1, targetQuantile: 0.5, learningRate: 0.2, countNoiseStd: 0.5 } }),
      /z < 2σ_b/,
    );
    assert.throws(
      () =>
        new DpFedAvg({
          ...base,
          placement: 'distributed',
          clip: { kind: 'adaptive', initialNorm: 0.1, targetQuantile: 0.5, learningRate: 0.2, countNoiseStd: 5 },
        }),
      /adaptive clipping needs central noise/,
    );
  });

  it('refuses the round that would overspend the budget', () => {
    const perRound = new RdpAccountant().step({ sampleRate: 0.1, noiseMultiplier: 1.3 }).getEpsilon(1e-5);
    const twoRounds = new RdpAccountant().step({ sampleRate: 0.1, noiseMultiplier: 1.3, steps: 2 }).getEpsilon(1e-5);
    const strategy = new DpFedAvg({ ...base, epsilonBudget: (perRound + twoRounds) / 2 });
    assert.deepEqual(strategy.canStartRound(), { ok: true });
    strategy.beginRound({ round: 1, globalWeights: new Float32Array(1) }).finish();
    const refused = strategy.canStartRound();
    assert.equal(refused.ok, false);
  });

  it('charges rounds that started but were never checkpointed, and survives a save/load', () => {
    const strategy = new DpFedAvg(base);
    strategy.beginRound({ round: 1, globalWeights: new Float32Array(1) }).finish();
    const restored = new DpFedAvg(base);
    restored.loadState(JSON.parse(JSON.stringify(strategy.saveState())));
    restored.chargeUnrecordedRounds(2);
    const expected = new RdpAccountant().step({ sampleRate: 0.1, noiseMultiplier: 1.3, steps: 3 }).getEpsilon(1e-5);
    assert.equal(restored.privacy().rounds, 3);
    assert.ok(Math.abs(restored.privacy().epsilon - expected) < 1e-12);
  });

  it('adaptive clipping counts b_i − ½, so one participant moves the noised count by at most ½', () => {
    // With every update outside the bound, b̄ = (−n/2 + noise)/m + ½ ≈ 0 for n = m: the bound grows by about exp(0.2·0.5).
    const strategy = new DpFedAvg({
      ...base,
      noiseMultiplier: 1,
      expectedClients: 100,
      clip: { kind: 'adaptive', initialNorm: 0.1, targetQuantile: 0.5, learningRate: 0.2, countNoiseStd: 5 },
    });
    const round = strategy.beginRound({ round: 1, globalWeights: new Float32Array(3) });
    for (let i = 0; i < 100; i++) round.add(result(Float32Array.from([10, 0, 0])));
    round.finish();
    const ratio = strategy.currentClipNorm / 0.1;
    assert.ok(Math.abs(ratio - Math.exp(0.1)) < 0.03, `ratio ${ratio}`);
  });

  it("selects from the CSPRNG, not from the engine's seeded generator", () => {
    const eligible = Array.from({ length: 64 }, (_, i) => i);
    const a = new DpFedAvg({ ...base, sampleRate: 0.5 }).select(eligible, 10, new SeededRandom(1));
    const b = new DpFedAvg({ ...base, sampleRate: 0.5 }).select(eligible, 10, new SeededRandom(1));
    assert.notDeepEqual(a, b, 'two selections with the same engine seed differ');
  });

  it('in the round engine: central DP releases a noised model even when nobody was selected, and stops at the budget', async () => {
    const strategy = new DpFedAvg({ ...base, sampleRate: 1e-3, epsilonBudget: 1e9, selectionUniform: new SeededRandom(3) });
    const h = new EngineHarness({ minClients: 1, rounds: 3 }, 4, strategy);
    h.join();
    h.engine.start();
    await h.settle();
    await h.settle();
    await h.settle();
    const status = h.engine.status();
    assert.equal(status.history.length, 3);
    assert.ok(status.history.every((r) => r.outcome === 'aggregated' && r.selected === 0));
    assert.equal(status.privacy?.rounds, 3);
    assert.ok(status.history[2]!.privacy!.epsilon > status.history[0]!.privacy!.epsilon);
    assert.notDeepEqual(Array.from(h.engine.globalModel.weights), [0, 0, 0, 0], 'noise was added');
  });
});

describe('DP-FedAvg adaptive clipping: centring, clamp, warning (issue 19)', () => {
  /** A strategy whose count noise is negligible (σ_b/m ≈ 0.005 on b̄), so one round's move is predictable. */
  const quiet = (targetQuantile: number, expectedClients: number, countNoiseStd = 0.02): DpFedAvg =>
    new DpFedAvg({
      ...base,
      noiseMultiplier: 0.01,
      expectedClients,
      clip: { kind: 'adaptive', initialNorm: 1, targetQuantile, learningRate: 0.2, countNoiseStd },
    });
  /** One round with `within` updates inside S = 1 and `outside` updates beyond it; returns S after/S before. */
  const roundRatio = (strategy: DpFedAvg, within: number, outside: number): number => {
    const before = strategy.currentClipNorm;
    const round = strategy.beginRound({ round: 1, globalWeights: new Float32Array(2) });
    for (let i = 0; i < within; i++) round.add(result(Float32Array.from([1e-3 * before, 0])));
    for (let i = 0; i < outside; i++) round.add(result(Float32Array.from([100 * before, 0])));
    round.finish();
    return strategy.currentClipNorm / before;
  };

  it('γ = 0.9, m = 4, 2 of 2 updates within S: S shrinks (centring on ½ pulled b̄ to 0.75 < γ and S grew by 3%)', () => {
    // b̄ − γ = (n/m)(p̂ − γ) = (2/4)(1 − 0.9) = 0.05 → S·exp(−0.2·0.05) = 0.990
    const ratio = roundRatio(quiet(0.9, 4), 2, 0);
    assert.ok(ratio < 1, `S grew: ${ratio}`);
    assert.ok(Math.abs(ratio - Math.exp(-0.01)) < 0.003, `ratio ${ratio}`);
  });

  it('S stays where γ of the received updates are within it, whatever fraction of m arrived', () => {
    // γ = 0.75, m = 8, 4 arrive, 3 within: p̂ = γ. Centring on ½ gave b̄ = 0.625 and S grew 2.5% a round;
    // the paper's Σb_i/m would read 3/8 and grow S by 7.8%.
    assert.ok(Math.abs(roundRatio(quiet(0.75, 8), 3, 1) - 1) < 0.003);
    // The case, γ = ½, m = 4: 1 of 2 within → stays; 2 of 2 within → every received update is
    // inside S, so S shrinks: b̄ − γ = (2/4)(1 − ½) = 0.25 → 0.951 (it would stay only if the two missing
    // updates were counted as outside S, which is Σb_i/m).
    assert.ok(Math.abs(roundRatio(quiet(0.5, 4), 1, 1) - 1) < 0.003);
    assert.ok(Math.abs(roundRatio(quiet(0.5, 4), 2, 0) - Math.exp(-0.05)) < 0.003);
  });

  it('clamps b̄ to [0, 1]: one noise draw moves S by at most exp(±ηγ)', () => {
    // σ_b = 50 with m = 1: the noised fraction spreads over ±100; unclamped, S would jump by e^{±20}.
    const strategy = new DpFedAvg({
      ...base,
      noiseMultiplier: 1,
      expectedClients: 1,
      clip: { kind: 'adaptive', initialNorm: 1, targetQuantile: 0.5, learningRate: 0.2, countNoiseStd: 50 },
    });
    for (let r = 0; r < 20; r++) {
      const ratio = roundRatio(strategy, 1, 0);
      assert.ok(ratio >= Math.exp(-0.1) * (1 - 1e-12) && ratio <= Math.exp(0.1) * (1 + 1e-12), `round ${r}: ${ratio}`);
    }
  });

  it('z_Δ pays for the larger count sensitivity max(γ, 1 − γ) when γ ≠ ½, and warns when z_Δ/z ≥ 2', () => {
    const clip = { kind: 'adaptive', initialNorm: 1, targetQuantile: 0.9, learningRate: 0.2, countNoiseStd: 5 } as const;
    const strategy = new DpFedAvg({ ...base, noiseMultiplier: 1, clip });
    assert.ok(Math.abs(strategy.updateNoiseMultiplier - 1 / Math.sqrt(1 - (0.9 / 5) ** 2)) < 1e-12);
    assert.deepEqual(strategy.warnings, []);
    assert.throws(() => new DpFedAvg({ ...base, noiseMultiplier: 1, clip: { ...clip, countNoiseStd: 0.85 } }), /σ_b\/max\(γ, 1 − γ\)/);
    // γ = ½, σ_b = 0.5: z = 0.9 → z_Δ = 0.9/√(1 − 0.81) = 2.06 (2.29×); z = 0.5 → 1.15×.
    const heavy = new DpFedAvg({ ...base, noiseMultiplier: 0.9, clip: { ...clip, targetQuantile: 0.5, countNoiseStd: 0.5 } });
    assert.equal(heavy.warnings.length, 1);
    assert.match(heavy.warnings[0]!, /2\.29×/);
    assert.deepEqual(
      new DpFedAvg({ ...base, noiseMultiplier: 0.5, clip: { ...clip, targetQuantile: 0.5, countNoiseStd: 0.5 } }).warnings,
      [],
    );
  });
});
