import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Participant, type ParticipantEvent } from '../../core/participant/participant.ts';
import type { RoundTrainer, RoundTrainResult } from '../../core/participant/trainers.ts';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { startCoordinator } from '../../coordinator/server.ts';

/** Trains until the test lets it finish, whatever shouldAbort says (as a trainer between two abort checks would). */
class HeldTrainer implements RoundTrainer {
  readonly differentiallyPrivate = false;
  readonly numExamples = 10;
  started!: () => void;
  readonly training = new Promise<void>((resolve) => (this.started = resolve));
  finish!: () => void;
  private readonly finished = new Promise<void>((resolve) => (this.finish = resolve));

  async train(weights: Float32Array): Promise<RoundTrainResult> {
    this.started();
    await this.finished;
    return { update: new Float32Array(weights.length), metrics: { loss: 0, accuracy: 0 }, numExamples: this.numExamples, trainMs: 1 };
  }
}

test('a participant stopped while it trains sends no update (it would sit in the closed socket, its ack timer holding the process)', async (t) => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'fl-participant-stop-'));
  const coordinator = await startCoordinator(
    parseConfig(
      ['--port', '0', '--host', '127.0.0.1', '--quiet', '--data-dir', dataDir, '--min-clients', '1', '--clients-per-round', '1'],
      {},
    ) as CoordinatorConfig,
  );
  t.after(async () => {
    await coordinator.close();
    await rm(dataDir, { recursive: true, force: true, maxRetries: 5 });
  });
  const trainer = new HeldTrainer();
  const events: ParticipantEvent[] = [];
  const participant = new Participant({
    url: coordinator.url,
    client: { backend: 'test', platform: `node ${process.version}` },
    trainer,
    reconnectionDelayMs: 200,
    onEvent: (event) => events.push(event),
  });
  participant.start();
  await trainer.training;
  participant.stop();
  trainer.finish();
  await new Promise((resolve) => setTimeout(resolve, 300));
  const uploads = events.filter((e) => e.type === 'uploaded' || (e.type === 'status' && e.status === 'uploading'));
  assert.deepEqual(uploads, []);
});
