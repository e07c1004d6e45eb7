import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { startCoordinator, type Coordinator } from '../../coordinator/server.ts';
import { loadMnistDemo, type DemoData } from '../../coordinator/task/demo-data.ts';
import { shardIndices, subset } from '../../core/data/dataset.ts';
import { Participant } from '../../core/participant/participant.ts';
import { PlainRoundTrainer, type RoundTrainer, type RoundTrainResult } from '../../core/participant/trainers.ts';
import type { FitConfig } from '../../core/protocol/messages.ts';
import { SeededRandom } from '../../core/random/prng.ts';
import type { FederationStatus } from '../../core/protocol/status.ts';
import { LocalTrainer, type TrainHooks } from '../../core/training/local-trainer.ts';
import { startNodeParticipants, stopNodeParticipants, type NodeParticipant } from '../helpers/node-participants.ts';

/**
 * Byzantine participants against the real coordinator: 8 participants per
 * round, of which 2 attack. The 6 honest ones are the ordinary Node
 * participants; the 2 attackers are real participants too, whose trainer
 * trains honestly on its own shard and then sends the update scaled by 100
 * or with its sign flipped. Plain FedAvg breaks; the coordinate-wise median,
 * the trimmed mean and Krum stay within 2 points of a clean FedAvg run.
 */

type Attack = 'scale' | 'sign-flip';

/** An attacker, not a mock: the real local trainer, with its update poisoned before it leaves. */
class PoisoningTrainer implements RoundTrainer {
  readonly differentiallyPrivate = false;
  private readonly honest: PlainRoundTrainer;

  constructor(
    private readonly trainer: LocalTrainer,
    private readonly attack: Attack,
  ) {
    this.honest = new PlainRoundTrainer(trainer);
  }

  get numExamples(): number {
    return this.trainer.numExamples;
  }

  async train(globalWeights: Float32Array, config: FitConfig, hooks?: TrainHooks): Promise<RoundTrainResult> {
    const result = await this.honest.train(globalWeights, config, hooks);
    const factor = this.attack === 'scale' ? 100 : -1;
    const update = result.update;
    for (let i = 0; i < update.length; i++) update[i]! *= factor;
    return result;
  }
}

const ROUNDS = 5;
const TOTAL_SHARDS = 16; // 500 examples per participant: small enough for 5 federations in well under 2 minutes
const ATTACKS: readonly Attack[] = ['scale', 'sign-flip'];

interface Run {
  readonly accuracy: number;
  readonly status: FederationStatus;
}

describe('Byzantine participants', () => {
  let demo: DemoData;
  const cleanup: (() => Promise<void>)[] = [];
  const accuracies: Record<string, number> = {};
  let clean: Run;

  const mathRandom = Math.random;

  before(async () => {
    demo = await loadMnistDemo();
  });

  after(async () => {
    Math.random = mathRandom;
    for (const step of cleanup.reverse()) await step().catch(() => {});
    console.log(
      `accuracy after ${ROUNDS} rounds: ${Object.entries(accuracies)
        .map(([k, v]) => `${k} ${(100 * v).toFixed(2)}%`)
        .join(', ')}`,
    );
  });

  /** Two more participants on shards 6 and 7: honest, or the attackers. */
  function startExtra(coordinator: Coordinator, attacking: boolean): { participants: Participant[]; trainers: LocalTrainer[] } {
    const participants: Participant[] = [];
    const trainers: LocalTrainer[] = [];
    ATTACKS.forEach((attack, i) => {
      const data = subset(demo.train, shardIndices(demo.train.labels, { index: 6 + i, count: TOTAL_SHARDS, skew: 'iid' }));
      const local = new LocalTrainer(coordinator.task.model, data);
      trainers.push(local);
      const participant = new Participant({
        url: coordinator.url,
        client: { backend: 'wasm', platform: attacking ? `attacker (${attack})` : `node ${process.version}` },
        trainer: attacking ? new PoisoningTrainer(local, attack) : new PlainRoundTrainer(local),
        reconnectionDelayMs: 200,
      });
      participant.start();
      participants.push(participant);
    });
    return { participants, trainers };
  }

  async function federate(label: string, strategyFlags: string[], attacking: boolean): Promise<Run> {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'fl-byz-'));
    // --seed fixes the initial model and the selection; this fixes the participants' batch shuffling
    // (tfjs draws it from Math.random), so every run starts from the same random sequence.
    const random = new SeededRandom(2024);
    Math.random = () => random.next();
    const config = parseConfig(
      [
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--quiet',
        '--data-dir',
        dataDir,
        '--seed',
        '7',
        '--rounds',
        String(ROUNDS),
        '--min-clients',
        '8',
        '--clients-per-round',
        '8',
        '--min-updates',
        '8',
        '--round-timeout',
        '60',
        '--epochs',
        '1',
        '--batch-size',
        '32',
        '--learning-rate',
        '0.1',
        // The default outlier bound (docs/poisoning.md) would refuse the ×100 updates before any rule saw them:
        // off here, so each rule meets the attack on its own (hostile-poisoning.test.ts tests the bound).
        '--outlier-norm-multiple',
        '0',
        ...strategyFlags,
      ],
      {},
    ) as CoordinatorConfig;
    const coordinator = await startCoordinator(config);
    let honest: NodeParticipant[] = [];
    let extra: { participants: Participant[]; trainers: LocalTrainer[] } = { participants: [], trainers: [] };
    const stop = async () => {
      stopNodeParticipants(honest);
      for (const p of extra.participants) p.stop();
      for (const t of extra.trainers) t.dispose();
      await coordinator.close();
      await rm(dataDir, { recursive: true, force: true });
    };
    cleanup.push(stop);
    try {
      honest = await startNodeParticipants(coordinator.url, demo, coordinator.task, 6, { totalShards: TOTAL_SHARDS });
      extra = startExtra(coordinator, attacking);
      const status = await coordinator.done;
      const last = status.history.filter((r) => r.metrics).at(-1);
      const accuracy = last?.metrics?.accuracy ?? 0;
      accuracies[label] = accuracy;
      return { accuracy, status };
    } finally {
      cleanup.splice(cleanup.indexOf(stop), 1);
      await stop();
    }
  }

  function assertAllAggregated(run: Run): void {
    assert.equal(run.status.history.length, ROUNDS);
    for (const r of run.status.history) {
      assert.equal(r.outcome, 'aggregated', `round ${r.round}: ${r.reason}`);
      assert.equal(r.received, 8, `round ${r.round} received ${r.received} updates`);
    }
  }

  it('clean FedAvg baseline (8 honest participants)', { timeout: 60_000 }, async () => {
    clean = await federate('clean fedavg', [], false);
    assertAllAggregated(clean);
    assert.ok(clean.accuracy > 0.8, `clean accuracy ${clean.accuracy}`);
  });

  it('plain FedAvg breaks under the attack', { timeout: 60_000 }, async () => {
    const attacked = await federate('fedavg under attack', [], true);
    assert.ok(
      attacked.accuracy < clean.accuracy - 0.2,
      `FedAvg under attack: ${(100 * attacked.accuracy).toFixed(2)}%, clean ${(100 * clean.accuracy).toFixed(2)}%`,
    );
  });

  const robust: [string, string[], number][] = [
    ['median', ['--strategy', 'median'], 0.02],
    ['trimmed mean', ['--strategy', 'trimmed-mean', '--trim-fraction', '0.25'], 0.02],
    // Multi-Krum with m = n - f = 6: the 6 best-scored updates, which are the 6 honest ones.
    ['multi-krum', ['--strategy', 'multi-krum', '--byzantine', '2'], 0.02],
    // Krum proper applies one participant's update per round and drops the other 7 updates' work, so
    // after 5 rounds it trails clean FedAvg by 1.5 to 4 points depending on the batch shuffling (in
    // runs with other shuffles than this file's seeded one): its bound is looser, and still far from
    // what the attack does to FedAvg.
    ['krum', ['--strategy', 'krum', '--byzantine', '2'], 0.05],
  ];
  for (const [label, flags, tolerance] of robust) {
    it(`${label} under attack stays within ${100 * tolerance} points of the clean run`, { timeout: 60_000 }, async () => {
      const run = await federate(`${label} under attack`, flags, true);
      assertAllAggregated(run);
      assert.ok(
        run.accuracy >= clean.accuracy - tolerance,
        `${label} under attack: ${(100 * run.accuracy).toFixed(2)}%, clean ${(100 * clean.accuracy).toFixed(2)}%`,
      );
    });
  }
});
