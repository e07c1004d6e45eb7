import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DpFedAvg } from '../../core/aggregation/dp-fedavg.ts';
import { FedAvg } from '../../core/aggregation/fedavg.ts';
import { ServerOptimizer, type ServerOptimizerState } from '../../core/aggregation/server-optimizers.ts';
import type { ClientResult, Strategy } from '../../core/aggregation/strategy.ts';
import { findStrategy } from '../../core/aggregation/wrapper.ts';
import { ConfigError, parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { buildStrategy } from '../../coordinator/strategies.ts';

/** One round of `strategy` from `global` over `results`; the new weights. */
function step(strategy: Strategy, global: readonly number[], results: readonly ClientResult[]): Float32Array {
  const round = strategy.beginRound({ round: 1, globalWeights: Float32Array.from(global) });
  for (const r of results) round.add(r);
  const next = round.finish();
  assert.ok(next);
  return next;
}

const result = (update: number[], numExamples: number, weight?: number): ClientResult => ({
  participantId: `p${update.join(',')}`,
  numExamples,
  update: Float32Array.from(update),
  weight,
});

function assertClose(actual: ArrayLike<number>, expected: readonly number[], what: string): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= 1e-6, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

describe('server momentum (FedAvgM)', () => {
  // x0 = [1, -1]. Round 1: updates [1, 0] (n = 1) and [0, -1] (n = 3, staleness weight 0.5): mean
  // (1·[1, 0] + 3·0.5·[0, -1]) / 4 = [0.25, -0.375]. Round 2: one update [0.5, 0.5].
  const momentum = () => new ServerOptimizer('momentum', { learningRate: 0.5, beta1: 0.75 });
  const round1 = [result([1, 0], 1), result([0, -1], 3, 0.5)];
  const round2 = [result([0.5, 0.5], 2)];

  it('m = βm + Δ, x = x + ηm: two steps over staleness-weighted means (hand-computed)', () => {
    const optimizer = momentum();
    const x1 = step(optimizer, [1, -1], round1);
    // m = [0.25, -0.375]; x1 = x0 + 0.5 m.
    assertClose(x1, [1.125, -1.1875], 'x1');
    const x2 = step(optimizer, Array.from(x1), round2);
    // m = 0.75 [0.25, -0.375] + [0.5, 0.5] = [0.6875, 0.21875]; x2 = x1 + 0.5 m.
    assertClose(x2, [1.46875, -1.078125], 'x2');
    assert.equal(optimizer.steps, 2);
    assert.equal(optimizer.name, 'fedavgm (η=0.5, β=0.75)');
    // Plain FedAvg at the same rate forgets round 1 in round 2: x1 + 0.5 [0.5, 0.5].
    assertClose(step(new FedAvg({ serverLearningRate: 0.5 }), Array.from(x1), round2), [1.375, -0.9375], 'fedavg x2');
  });

  it('undoes a refused step, and its state round-trips through a checkpoint', () => {
    const optimizer = momentum();
    const x1 = step(optimizer, [1, -1], round1);
    const round = optimizer.beginRound({ round: 2, globalWeights: x1 });
    for (const r of round2) round.add(r);
    round.finish();
    round.rejectAggregate?.();
    assert.equal(optimizer.steps, 1);
    assert.deepEqual(optimizer.toJSON().m, [0.25, -0.375]);
    assert.equal(optimizer.toJSON().v, null);

    const state = JSON.parse(JSON.stringify(optimizer.saveState!())) as unknown;
    const restored = momentum();
    restored.loadState!(state);
    assert.deepEqual(Array.from(step(restored, Array.from(x1), round2)), Array.from(step(optimizer, Array.from(x1), round2)));
    // Another rule's state, or a momentum state with a second moment, is refused.
    const saved = optimizer.toJSON();
    assert.throws(() => new ServerOptimizer('adam').restore(saved), /rule/);
    assert.throws(() => ServerOptimizer.fromJSON({ ...saved, v: [0, 0] } as ServerOptimizerState), /v must be null/);
  });
});

describe('--server-momentum', () => {
  const parse = (...flags: string[]) =>
    parseConfig(flags.includes('--client-dp') ? [...flags, '--admin-token', 'server-momentum-test-admin'] : flags) as CoordinatorConfig;
  const fails = (pattern: RegExp, ...flags: string[]) =>
    assert.throws(
      () => parseConfig(flags),
      (e: unknown) => e instanceof ConfigError && pattern.test(e.message),
    );

  it('wraps FedAvg (or DP-FedAvg) in server momentum with the server learning rate, and is off at 0', () => {
    const built = findStrategy(buildStrategy(parse('--server-momentum', '0.9', '--server-learning-rate', '0.1')), ServerOptimizer);
    assert.ok(built);
    assert.equal(built.rule, 'momentum');
    assert.equal(built.beta1, 0.9);
    assert.equal(built.learningRate, 0.1);
    assert.equal(findStrategy(buildStrategy(parse('--server-momentum', '0.9')), ServerOptimizer)?.learningRate, 1);
    assert.equal(findStrategy(buildStrategy(parse('--server-momentum', '0')), ServerOptimizer), undefined);
    const dp = buildStrategy(
      parse('--server-momentum', '0.5', '--client-dp', 'central', '--client-noise-multiplier', '1', '--client-sample-rate', '0.5'),
    );
    assert.ok(findStrategy(dp, ServerOptimizer));
    assert.ok(findStrategy(dp, DpFedAvg));
    assert.ok(dp.privacy);
    // Async mode (FedBuff) takes it too: one momentum step per version.
    const async = parse('--mode', 'async', '--server-momentum', '0.9', '--server-learning-rate', '0.1');
    assert.equal(findStrategy(buildStrategy(async), ServerOptimizer)?.rule, 'momentum');
  });

  it('refuses bad values and combinations with a reason', () => {
    fails(/--server-momentum must be a number in \[0, 1\)/, '--server-momentum', '1');
    fails(/--server-momentum applies to --strategy fedavg, not median/, '--strategy', 'median', '--server-momentum', '0.9');
    fails(/cannot be combined/, '--server-momentum', '0.9', '--server-lr-decay', '0.9');
  });
});
