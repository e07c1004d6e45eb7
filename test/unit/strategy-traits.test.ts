import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { DpFedAvg, type DpFedAvgOptions } from '../../core/aggregation/dp-fedavg.ts';
import { FedAvg } from '../../core/aggregation/fedavg.ts';
import { FedProx } from '../../core/aggregation/fedprox.ts';
import { NormBoundedStrategy } from '../../core/aggregation/norm-bound.ts';
import { CoordinateMedian, Krum, TrimmedMean } from '../../core/aggregation/robust.ts';
import { FedAdam } from '../../core/aggregation/server-optimizers.ts';
import type { Strategy } from '../../core/aggregation/strategy.ts';
import type { RoundSettings } from '../../core/protocol/status.ts';

const dpOptions: DpFedAvgOptions = {
  placement: 'central',
  noiseMultiplier: 1,
  clip: { kind: 'fixed', norm: 1 },
  sampleRate: 0.5,
  expectedClients: 4,
  delta: 1e-5,
};
const settings: RoundSettings = {
  rounds: 5,
  minClients: 2,
  clientsPerRound: 10,
  minUpdates: 1,
  roundTimeoutMs: 10_000,
  fit: { epochs: 1, batchSize: 8, learningRate: 0.1 },
};

describe('strategy traits', () => {
  it('say what each rule needs, what it hides and who selects', () => {
    assert.deepEqual(new FedAvg().traits, { input: 'sum', participation: 'shown', selection: 'engine', basis: 'any' });
    for (const robust of [new CoordinateMedian(), new TrimmedMean({ trimFraction: 0.2 }), new Krum({ byzantine: 1 })]) {
      assert.equal(robust.traits.input, 'individual', `${robust.name} looks at every update`);
    }
    // int4 rounds may aggregate rotated updates only where the rule ignores the basis (core/compression/round-decoder.ts).
    assert.equal(new Krum({ byzantine: 1 }).traits.basis, 'any', 'Krum compares L2 distances');
    assert.equal(new CoordinateMedian().traits.basis, undefined, 'a median works coordinate by coordinate');
    assert.equal(new TrimmedMean({ trimFraction: 0.2 }).traits.basis, undefined, 'a trimmed mean works coordinate by coordinate');
    assert.deepEqual(
      new DpFedAvg(dpOptions).traits,
      { input: 'individual', participation: 'private', selection: 'own', basis: 'any' },
      'central noise clips each update on the coordinator',
    );
    assert.equal(
      new DpFedAvg({ ...dpOptions, placement: 'distributed' }).traits.input,
      'sum',
      'distributed noise: a secure sum can carry it',
    );
  });

  it('are forwarded by wrappers, which change only what they change', () => {
    // Adam's moments are per coordinate: a server optimizer drops the base's basis trait and forwards the rest.
    assert.deepEqual(new FedAdam({}).traits, { input: 'sum', participation: 'shown', selection: 'engine' });
    assert.deepEqual(new FedProx({ proximalMu: 0.1, base: new DpFedAvg({ ...dpOptions, placement: 'distributed' }) }).traits, {
      input: 'sum',
      participation: 'private',
      selection: 'own',
      basis: 'any',
    });
    assert.deepEqual(
      new NormBoundedStrategy(new FedAdam({}), 5).traits,
      { input: 'individual', participation: 'shown', selection: 'engine' },
      'a norm bound needs each update',
    );
  });

  it("carry the strategy's own settings rules through wrappers", () => {
    const trimmed = new NormBoundedStrategy(new TrimmedMean({ trimFraction: 0.2 }), 5);
    assert.match(
      trimmed.settingsChangeProblem({ clientsPerRound: 4 }, settings) ?? '',
      /trim nothing.*at least ⌈1\/0\.2⌉ = 5 clients per round/,
    );
    assert.equal(trimmed.settingsChangeProblem({ clientsPerRound: 5 }, settings), undefined);
    assert.equal(trimmed.settingsChangeProblem({ epochs: 3 }, settings), undefined);
    const dp = new FedAdam({ base: new DpFedAvg(dpOptions) });
    assert.match(dp.settingsChangeProblem({ clientsPerRound: 20 }, settings) ?? '', /client-level DP.*sample-rate/);
    assert.equal(dp.settingsChangeProblem({ clientsPerRound: 10 }, settings), undefined, 'the same count is no change');
    const plain: Strategy = new FedAvg();
    assert.equal(plain.settingsChangeProblem, undefined);
  });

  it('are all the round engine knows of a strategy: coordinator/rounds imports no concrete one', () => {
    const folder = path.resolve(import.meta.dirname, '../../coordinator/rounds');
    for (const name of readdirSync(folder).filter((n) => n.endsWith('.ts'))) {
      const text = readFileSync(path.join(folder, name), 'utf8');
      const fromAggregation = [...text.matchAll(/from '[./]*core\/aggregation\/([^']+)'/g)].map((m) => m[1]);
      // aggregate-guard.ts checks a finished aggregate, staleness.ts weighs an async update before any strategy sees it: neither is a strategy.
      assert.deepEqual(
        fromAggregation.filter((f) => f !== 'strategy.ts' && f !== 'aggregate-guard.ts' && f !== 'staleness.ts'),
        [],
        `${name} imports a concrete strategy (or findStrategy)`,
      );
    }
  });
});
