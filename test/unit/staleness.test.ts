import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { DpFedAvg, type DpFedAvgOptions } from '../../core/aggregation/dp-fedavg.ts';
import { FedAvg } from '../../core/aggregation/fedavg.ts';
import { CoordinateMedian } from '../../core/aggregation/robust.ts';
import { stalenessRefusal, stalenessWeight, stalenessWeighted, StalenessTally } from '../../core/aggregation/staleness.ts';
import { ConfigError, parseConfig } from '../../coordinator/config.ts';
import type { CoordinatorConfig } from '../../coordinator/coordinator-config.ts';
import { SeededRandom } from '../../core/random/prng.ts';

const close = (actual: number, expected: number) => assert.ok(Math.abs(actual - expected) < 1e-9, `${actual} ≈ ${expected}`);

describe('staleness weights (FedBuff)', () => {
  it('defaults to 1/sqrt(1+s) and offers the polynomial (1+s)^-a', () => {
    close(stalenessWeight(0), 1);
    close(stalenessWeight(1), 1 / Math.sqrt(2));
    close(stalenessWeight(3), 0.5);
    close(stalenessWeight(3, 1), 0.25);
    close(stalenessWeight(7, 2), 1 / 64);
    close(stalenessWeight(9, 0), 1);
    assert.throws(() => stalenessWeight(-1), RangeError);
    assert.throws(() => stalenessWeight(1.5), RangeError);
    assert.throws(() => stalenessWeight(1, -0.5), RangeError);
  });

  it('attaches the weight to the result and leaves the update as sent, without a copy', () => {
    const update = Float32Array.from([2, -4]);
    const weighted = stalenessWeighted({ participantId: 'p', numExamples: 5, update }, 3);
    assert.equal(weighted.update, update);
    assert.deepEqual(Array.from(update), [2, -4]);
    assert.equal(weighted.weight, 0.5);
    assert.equal(weighted.numExamples, 5);
    assert.equal(stalenessWeighted({ participantId: 'p', numExamples: 5, update }, 0).weight, 1);
  });

  it('through FedAvg, applies eta * sum(n_i w(s_i) d_i) / sum(n_i): example weights normalised, staleness weights not', () => {
    const global = Float32Array.from([1, 1]);
    const aggregator = new FedAvg({ serverLearningRate: 0.5 }).beginRound({ round: 1, globalWeights: global });
    aggregator.add(stalenessWeighted({ participantId: 'a', numExamples: 10, update: Float32Array.from([1, 0]) }, 0));
    aggregator.add(stalenessWeighted({ participantId: 'b', numExamples: 30, update: Float32Array.from([0, 1]) }, 8, 0.5));
    const next = aggregator.finish()!;
    close(next[0]!, 1 + (0.5 * 10) / 40);
    close(next[1]!, 1 + (0.5 * 30 * (1 / 3)) / 40);
  });

  it('under client-level DP, scales a stale update after the clip: its contribution is exactly w(s) times the fresh one', () => {
    // Two strategies with the same noise draws: the released models differ only by what the stale update adds.
    const options: DpFedAvgOptions = {
      placement: 'central',
      noiseMultiplier: 1,
      clip: { kind: 'fixed', norm: 1 },
      sampleRate: 1,
      expectedClients: 2,
      delta: 1e-5,
      accountant: 'rdp',
    };
    const release = (staleness: number) => {
      const round = new DpFedAvg({ ...options, uniform: new SeededRandom(7) }).beginRound({ round: 1, globalWeights: new Float32Array(2) });
      // Norm 50, far above the clip norm 1: clipped to [0.6, 0.8] whatever it was scaled by first.
      round.add(stalenessWeighted({ participantId: 'stale', numExamples: 5, update: Float32Array.from([30, 40]) }, staleness));
      round.add({ participantId: 'fresh', numExamples: 5, update: Float32Array.from([0, -5]) });
      return round.finish()!;
    };
    const fresh = release(0);
    const stale = release(3);
    // m·(stale − fresh) = (w(3) − 1)·clip(Δ) = −0.5·[0.6, 0.8], to float32 precision (the models are float32).
    assert.ok(Math.abs(2 * (stale[0]! - fresh[0]!) + 0.3) < 1e-6, `${stale[0]} − ${fresh[0]}`);
    assert.ok(Math.abs(2 * (stale[1]! - fresh[1]!) + 0.4) < 1e-6, `${stale[1]} − ${fresh[1]}`);
  });

  it('robust rules see the weighted values: the median of a buffer moves by w(s)·Δ of a stale update', () => {
    const round = new CoordinateMedian().beginRound({ round: 1, globalWeights: new Float32Array(1) });
    round.add({ participantId: 'a', numExamples: 1, update: Float32Array.of(1) });
    round.add(stalenessWeighted({ participantId: 'b', numExamples: 1, update: Float32Array.of(8) }, 3));
    round.add({ participantId: 'c', numExamples: 1, update: Float32Array.of(6) });
    // Values 1, 0.5·8 = 4 and 6: the median is 4 (unweighted it would be 6).
    close(round.finish()![0]!, 4);
  });

  it('refuses a result weight outside (0, 1]: above 1 it would break the clip bound', () => {
    const round = new FedAvg().beginRound({ round: 1, globalWeights: new Float32Array(1) });
    assert.throws(
      () => round.add({ participantId: 'a', numExamples: 1, update: Float32Array.of(1), weight: 2 }),
      /weight must be in \(0, 1\]/,
    );
  });

  it('refuses past S, with the versions in the message', () => {
    assert.equal(stalenessRefusal(4, 6, 2), undefined);
    assert.match(stalenessRefusal(3, 6, 2) ?? '', /model 3 .* model 6: staleness 3 is above the maximum of 2/);
    assert.equal(stalenessRefusal(6, 6, 0), undefined);
  });

  it('tallies max, mean and the histogram of a buffer', () => {
    const tally = new StalenessTally();
    assert.equal(tally.summary(), undefined);
    for (const s of [0, 2, 2, 0]) tally.add(s);
    assert.deepEqual(tally.summary(), { max: 2, mean: 1, counts: [2, 0, 2] });
  });
});

describe('async options', () => {
  const parse = (args: string[]) => parseConfig(args) as CoordinatorConfig;

  it('defaults to sync and shows the mode', () => {
    const config = parse([]);
    assert.equal(config.settings.mode, 'sync');
    assert.equal(config.settings.async, undefined);
  });

  it('reads K, S, C and the exponent; C defaults to --clients-per-round', () => {
    const config = parse(['--mode', 'async', '--buffer-size', '3', '--max-staleness', '4', '--clients-per-round', '7']);
    assert.deepEqual(config.settings.async, { bufferSize: 3, maxStaleness: 4, concurrency: 7, stalenessExponent: 0.5 });
    const explicit = parse(['--mode', 'async', '--concurrency', '2', '--staleness-exponent', '1']);
    assert.equal(explicit.settings.async?.concurrency, 2);
    assert.equal(explicit.settings.async?.stalenessExponent, 1);
  });

  it('refuses async flags in sync mode, secure aggregation in async mode, and min-updates above K', () => {
    assert.throws(() => parse(['--buffer-size', '3']), /--buffer-size applies to --mode async only/);
    assert.throws(
      () => parse(['--mode', 'async', '--secure-aggregation', '--min-clients', '3']),
      (e: Error) => e instanceof ConfigError && /no\s+such cohort/.test(e.message),
    );
    assert.throws(
      () => parse(['--mode', 'async', '--buffer-size', '2', '--min-updates', '3']),
      /--min-updates 3 is more than --buffer-size 2/,
    );
    assert.throws(() => parse(['--mode', 'bursty']), /--mode must be sync or async, got "bursty"/);
  });

  it("refuses a trimmed mean that would trim nothing from a version's buffer of K; Krum's 2f + 3 fits in K through --min-updates", () => {
    assert.throws(
      () => parse(['--mode', 'async', '--strategy', 'trimmed-mean', '--trim-fraction', '0.1', '--clients-per-round', '20']),
      /--trim-fraction 0.1 trims ⌊0.1 × 5⌋ = 0 updates at each end of a version's buffer \(--buffer-size 5\)/,
    );
    assert.equal(parse(['--mode', 'async', '--strategy', 'trimmed-mean', '--trim-fraction', '0.2']).settings.async?.bufferSize, 5);
    const krum = ['--mode', 'async', '--strategy', 'krum', '--byzantine', '1', '--min-updates', '5'];
    assert.throws(() => parse([...krum, '--buffer-size', '4']), /--min-updates 5 is more than --buffer-size 4/);
    assert.equal(parse([...krum, '--buffer-size', '5']).settings.async?.bufferSize, 5);
  });

  it('takes float16 and int8 updates, and refuses int4, whose rotation is per round, in async mode', () => {
    assert.equal(parse(['--mode', 'async', '--update-encoding', 'int8']).settings.updateEncoding, 'int8');
    assert.throws(
      () => parse(['--mode', 'async', '--update-encoding', 'int4']),
      /--mode async cannot be combined with --update-encoding int4/,
    );
  });

  it('reads federation.mode, bufferSize, maxStaleness, concurrency and stalenessExponent from a task file', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'fl-async-task-'));
    try {
      const file = path.join(dir, 'task.json');
      const task = {
        name: 'x',
        description: 'an async task',
        model: 'mlp',
        input: { kind: 'tabular', labelColumn: 'y', features: [{ name: 'a', type: 'numeric' }] },
        classes: ['no', 'yes'],
        data: { train: './train.csv', test: './test.csv' },
        federation: { mode: 'async', bufferSize: 4, maxStaleness: 2, concurrency: 6, stalenessExponent: 1 },
      };
      await writeFile(file, JSON.stringify(task));
      const config = parse(['--task', file]);
      assert.equal(config.settings.mode, 'async');
      assert.deepEqual(config.settings.async, { bufferSize: 4, maxStaleness: 2, concurrency: 6, stalenessExponent: 1 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
