import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { startCoordinator } from '../../coordinator/server.ts';
import { loadMnistDemo, type DemoData } from '../../coordinator/task/demo-data.ts';
import { shardIndices, subset } from '../../core/data/dataset.ts';
import { Participant, type ParticipantEvent } from '../../core/participant/participant.ts';
import { PlainRoundTrainer, type RoundTrainer, type RoundTrainResult } from '../../core/participant/trainers.ts';
import { l2Norm } from '../../core/privacy/update-privacy.ts';
import { ErrorCode } from '../../core/protocol/errors.ts';
import type { FitConfig } from '../../core/protocol/messages.ts';
import type { FederationStatus } from '../../core/protocol/status.ts';
import { MAX_EXAMPLES } from '../../core/protocol/validate.ts';
import { SeededRandom } from '../../core/random/prng.ts';
import { LocalTrainer, type TrainHooks } from '../../core/training/local-trainer.ts';
import { startNodeParticipants, stopNodeParticipants, type NodeParticipant } from '../helpers/node-participants.ts';

/**
 * Issue 16, item 1, as the attack: three honest Node participants and one
 * attacker, a real participant whose trainer trains on its own shard and
 * then lies, every round, with the largest example count the protocol
 * accepts (10^8):
 * - "huge": every value 1e38 (finite: the wire's NaN/Inf check lets it in).
 *   Before the defences the third such round made every global weight
 *   Infinity for good; now each update is refused with UPDATE_OUTLIER.
 * - "norm 9.5" (with --max-update-norm 10, as in the audit): its honest
 *   update sign-flipped and scaled to norm 9.5, just under the fixed bound.
 *   Before, the 10^8 count erased the honest updates (run here with the new
 *   update defences off); now the count buys at most 3 × the median claim,
 *   and past the warm-up round the outlier bound refuses it.
 * The model stays finite and within a few points of a clean run. With the
 * update defences off, the aggregate guard alone still never commits the
 * 1e38 rounds: they are skipped and the model is kept.
 */

const ROUNDS = 5;
const TOTAL_SHARDS = 16; // 3,750 examples each: five small federations in about a minute and a half
const HONEST = 3;

type Attack = 'huge' | 'norm-9.5';

class LyingTrainer implements RoundTrainer {
  readonly differentiallyPrivate = false;
  private readonly honest: PlainRoundTrainer;

  constructor(
    trainer: LocalTrainer,
    private readonly attack: Attack,
  ) {
    this.honest = new PlainRoundTrainer(trainer);
  }

  get numExamples(): number {
    return MAX_EXAMPLES;
  }

  async train(globalWeights: Float32Array, config: FitConfig, hooks?: TrainHooks): Promise<RoundTrainResult> {
    const result = await this.honest.train(globalWeights, config, hooks);
    const update = result.update;
    if (this.attack === 'huge') update.fill(1e38);
    else {
      const scale = -9.5 / l2Norm(update);
      for (let i = 0; i < update.length; i++) update[i]! *= scale;
    }
    return { ...result, update, numExamples: MAX_EXAMPLES };
  }
}

interface Run {
  readonly status: FederationStatus;
  readonly accuracy: number;
  readonly weights: Float32Array;
  readonly attackerEvents: ParticipantEvent[];
  readonly attackerId?: string;
}

describe('poisoning: one attacker with the maximal example count among honest participants', () => {
  let demo: DemoData;
  let clean: Run;
  const accuracies: Record<string, string> = {};
  const mathRandom = Math.random;

  before(async () => {
    demo = await loadMnistDemo();
  });

  after(() => {
    Math.random = mathRandom;
    console.log(
      `accuracy after ${ROUNDS} rounds: ${Object.entries(accuracies)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
  });

  async function federate(label: string, flags: string[], attack: Attack | undefined): Promise<Run> {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'fl-poison-'));
    // Same initial model and selection (--seed), same batch shuffles (tfjs draws them from Math.random).
    const random = new SeededRandom(16);
    Math.random = () => random.next();
    const participants = attack ? HONEST + 1 : HONEST;
    const config = parseConfig(
      ['--port', '0', '--host', '127.0.0.1', '--quiet', '--data-dir', dataDir, '--seed', '5', '--rounds', String(ROUNDS)]
        .concat([
          '--min-clients',
          String(participants),
          '--clients-per-round',
          String(participants),
          '--min-updates',
          '1',
          '--round-timeout',
          '60',
        ])
        .concat(['--epochs', '1', '--batch-size', '32', '--learning-rate', '0.1', ...flags]),
      {},
    ) as CoordinatorConfig;
    const coordinator = await startCoordinator(config);
    let honest: NodeParticipant[] = [];
    let attacker: { participant: Participant; trainer: LocalTrainer; events: ParticipantEvent[] } | undefined;
    try {
      honest = await startNodeParticipants(coordinator.url, demo, coordinator.task, HONEST, { totalShards: TOTAL_SHARDS });
      if (attack) {
        const trainer = new LocalTrainer(
          coordinator.task.model,
          subset(demo.train, shardIndices(demo.train.labels, { index: HONEST, count: TOTAL_SHARDS, skew: 'iid' })),
        );
        const events: ParticipantEvent[] = [];
        const participant = new Participant({
          url: coordinator.url,
          client: { backend: 'wasm', platform: `attacker (${attack})` },
          trainer: new LyingTrainer(trainer, attack),
          reconnectionDelayMs: 200,
          onEvent: (event) => events.push(event),
        });
        participant.start();
        attacker = { participant, trainer, events };
      }
      const status = await coordinator.done;
      const last = status.history.filter((r) => r.metrics).at(-1);
      const accuracy = last?.metrics?.accuracy ?? 0;
      accuracies[label] = `${(100 * accuracy).toFixed(2)}%`;
      return {
        status,
        accuracy,
        weights: Float32Array.from(coordinator.engine.globalModel.weights),
        attackerEvents: attacker?.events ?? [],
        attackerId: attacker?.participant.id,
      };
    } finally {
      stopNodeParticipants(honest);
      attacker?.participant.stop();
      attacker?.trainer.dispose();
      await coordinator.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  }

  /**
   * From round `from` on, every round aggregated exactly the three honest updates and kept the attacker's out:
   * refused with UPDATE_OUTLIER, or, once its record shows it never delivered an accepted update, not waited
   * for (the round closes at its quorum, docs/admission.md) and its late update refused.
   */
  function assertAttackerKeptOut(run: Run, from = 1): void {
    assert.equal(run.status.history.length, ROUNDS);
    for (const r of run.status.history) {
      assert.equal(r.outcome, 'aggregated', `round ${r.round}: ${r.reason}`);
      if (r.round < from) continue;
      assert.equal(r.received, HONEST, `round ${r.round}: only the honest updates are aggregated`);
      const mine = r.participants?.find((p) => p.id === run.attackerId);
      assert.ok(mine, `round ${r.round}: the attacker was selected`);
      if (mine.outcome === 'rejected') assert.match(mine.reason ?? '', /^UPDATE_OUTLIER/);
      else assert.match(`${mine.outcome}: ${mine.reason}`, /^dropped: the round reached its quorum/);
      assert.ok(
        !run.attackerEvents.some((e) => e.type === 'uploaded' && e.round === r.round),
        `round ${r.round}: no update of the attacker was accepted`,
      );
    }
    const refused = run.attackerEvents.filter((e) => e.type === 'rejected' && e.code === ErrorCode.UpdateOutlier).length;
    assert.ok(refused >= 1, 'the attacker was told UPDATE_OUTLIER');
  }

  it('clean run (three honest participants)', { timeout: 90_000 }, async () => {
    clean = await federate('clean', [], undefined);
    assert.ok(clean.accuracy > 0.8, `clean accuracy ${clean.accuracy}`);
  });

  it('1e38 values with 10^8 examples every round: refused with UPDATE_OUTLIER, the model stays finite and close to clean', {
    timeout: 90_000,
  }, async () => {
    const run = await federate('1e38 attacker', [], 'huge');
    assertAttackerKeptOut(run);
    // Rounds 1 and 2 at least: the attacker is selected and delivers before its record keeps the round from waiting.
    for (const r of run.status.history.slice(0, 2)) assert.equal(r.participants?.find((p) => p.id === run.attackerId)?.outcome, 'rejected');
    assert.ok(run.weights.every(Number.isFinite), 'the model is finite');
    assert.ok(run.accuracy >= clean.accuracy - 0.03, `under attack ${run.accuracy}, clean ${clean.accuracy}`);
  });

  let before95: Run;
  it('before: norm 9.5 under --max-update-norm 10 with 10^8 examples and the new update defences off', { timeout: 90_000 }, async () => {
    before95 = await federate(
      'norm-9.5 attacker, update defences off',
      ['--max-update-norm', '10', '--outlier-norm-multiple', '0', '--claim-cap-multiple', '0'],
      'norm-9.5',
    );
    // Its claimed 10^8 examples outweigh the honest 3 × 3,750 in every round.
    assert.ok(before95.accuracy < clean.accuracy - 0.3, `before: ${before95.accuracy}, clean ${clean.accuracy}`);
  });

  it('norm 9.5 under --max-update-norm 10 with 10^8 examples: its weight is capped in the warm-up round, then it is refused as an outlier', {
    timeout: 90_000,
  }, async () => {
    const run = await federate('norm-9.5 attacker', ['--max-update-norm', '10'], 'norm-9.5');
    // Round 1 is the warm-up: the bound is 5 × the model's norm, and the update gets in with its weight capped to 3 × the median claim.
    assertAttackerKeptOut(run, 2);
    assert.ok(run.accuracy > before95.accuracy + 0.3, `defended ${run.accuracy}, before ${before95.accuracy}`);
    assert.ok(run.accuracy >= clean.accuracy - 0.2, `under attack ${run.accuracy}, clean ${clean.accuracy}`);
  });

  it('with the update defences off, the aggregate guard alone never commits a 1e38 round', { timeout: 90_000 }, async () => {
    const run = await federate('1e38 attacker, update defences off', ['--outlier-norm-multiple', '0', '--claim-cap-multiple', '0'], 'huge');
    assert.equal(run.status.history.length, ROUNDS);
    for (const r of run.status.history) {
      assert.equal(r.outcome, 'skipped', `round ${r.round} must not commit the attacker's aggregate`);
      assert.match(
        r.reason ?? '',
        /the aggregate changes the model by L2 norm .* above 10 × .*; the round is skipped and the model is unchanged/,
      );
      assert.equal(r.modelVersion, 0);
    }
    assert.ok(run.weights.every(Number.isFinite), 'the model is finite');
    assert.equal(run.status.modelVersion, 0, 'the initial model is kept');
  });
});
