import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { io, type Socket } from 'socket.io-client';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { startCoordinator, type Coordinator } from '../../coordinator/server.ts';
import { loadMnistDemo } from '../../coordinator/task/demo-data.ts';
import { ErrorCode, type Ack } from '../../core/protocol/errors.ts';
import { PROTOCOL_VERSION, type JoinAccepted, type RoundStartMessage, type UpdateAccepted } from '../../core/protocol/messages.ts';
import { encodeFrame, FrameKind } from '../../core/wire/frame.ts';
import { startNodeParticipants, stopNodeParticipants, type NodeParticipant } from '../helpers/node-participants.ts';
import { accuracyOn, loadSavedModel } from '../helpers/saved-model.ts';

/**
 * The real coordinator on a free port with five real Node participants and
 * one hostile client, for three rounds. One participant's connection breaks
 * in the middle of round 2; it must rejoin by itself under the same id.
 */
describe('federation over socket.io', () => {
  let coordinator: Coordinator;
  let dataDir: string;
  let participants: NodeParticipant[] = [];
  let hostile: Socket;
  const hostileAnswers: string[] = [];

  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'fl-run-'));
    const config = parseConfig(
      [
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--rounds',
        '3',
        '--min-clients',
        '6',
        '--clients-per-round',
        '6',
        '--min-updates',
        '3',
        '--round-timeout',
        '60',
        '--data-dir',
        dataDir,
        '--quiet',
      ],
      {},
    ) as CoordinatorConfig;
    coordinator = await startCoordinator(config);
  });

  after(async () => {
    hostile?.close();
    stopNodeParticipants(participants);
    await coordinator?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('runs 3 rounds through a dropped connection and a malformed client', { timeout: 180_000 }, async () => {
    const demo = await loadMnistDemo();
    participants = await startNodeParticipants(coordinator.url, demo, coordinator.task, 5);

    hostile = io(coordinator.url, { transports: ['websocket'] });
    hostile.on('round:start', async (message: RoundStartMessage) => {
      const base = {
        round: message.round,
        baseVersion: message.model.version,
        numExamples: 100,
        metrics: { loss: 1, accuracy: 0 },
        trainMs: 1,
      };
      // Sent in this order: the wrong-length frame excludes the sender from the round, the rest fail validation.
      const answers = await Promise.all([
        hostile.emitWithAck('update', { ...base, update: encodeFrame(FrameKind.Update, new Float32Array(10)) }),
        hostile.emitWithAck('unknown-event', { x: 1 }),
        hostile.emitWithAck('update', { ...base, update: 'not binary' }),
        hostile.emitWithAck('update', { ...base, numExamples: -5, update: new Uint8Array(4) }),
      ]);
      for (const a of answers as Ack<UpdateAccepted>[]) hostileAnswers.push(a.ok ? 'ok' : a.error.code);
    });
    hostile.emit('progress', { nonsense: true });
    const joined: Ack<JoinAccepted> = await hostile.emitWithAck('join', {
      protocolVersion: PROTOCOL_VERSION,
      client: { backend: 'evil', numExamples: 100 },
    });
    assert.ok(joined.ok);

    // Break participant 5's connection while it trains in round 2 (the transport closes, as on a network drop).
    const dropper = participants[4]!;
    let droppedId: string | undefined;
    dropper.participant.socket.on('round:start', (message) => {
      if (message.round === 2 && droppedId === undefined) {
        droppedId = dropper.participant.id;
        setTimeout(() => dropper.participant.socket.io.engine.close(), 5);
      }
    });

    const final = await coordinator.done;
    assert.equal(final.history.length, 3);
    assert.ok(
      final.history.every((r) => r.outcome === 'aggregated'),
      JSON.stringify(final.history.map((r) => r.outcome)),
    );
    const round2 = final.history[1]!;
    assert.ok(round2.dropped >= 1, `round 2 dropped ${round2.dropped}`);
    assert.ok(round2.durationMs < 60_000, 'round 2 did not wait for its deadline');
    for (const r of final.history) assert.ok(r.rejected >= 1, `round ${r.round}: the hostile client was excluded`);
    assert.ok(final.history[2]!.metrics!.accuracy > 0.8, `accuracy ${final.history[2]!.metrics!.accuracy}`);

    // The hostile client got coded errors, the coordinator counted them and stayed up.
    assert.ok(hostileAnswers.includes(ErrorCode.UnknownEvent));
    assert.ok(hostileAnswers.includes(ErrorCode.BadPayload));
    assert.ok(hostileAnswers.includes(ErrorCode.WrongLength));
    assert.ok(!hostileAnswers.includes('ok'));
    assert.ok((final.rejections[ErrorCode.BadPayload] ?? 0) >= 3);

    // The dropped participant rejoined under the same id and trained again in round 3.
    assert.ok(droppedId);
    assert.equal(dropper.participant.id, droppedId);
    const record = final.participants.find((p) => p.id === droppedId)!;
    assert.equal(record.connected, true);
    assert.equal(final.participants.filter((p) => p.backend === 'wasm').length, 5, 'no duplicate participant records');
    assert.ok(dropper.events.some((e) => e.type === 'uploaded' && e.round === 3));

    // HTTP status API agrees with the engine.
    const status = (await (await fetch(`${coordinator.url}/api/status`)).json()) as typeof final;
    assert.equal(status.history.length, 3);
    assert.equal(status.done, true);
  });

  it('a rejoin from a new connection replaces the old one, and a late joiner learns the federation is done', async () => {
    const first = io(coordinator.url, { transports: ['websocket'], reconnection: false });
    const joined: Ack<JoinAccepted> = await first.emitWithAck('join', {
      protocolVersion: PROTOCOL_VERSION,
      client: { backend: 'cpu', numExamples: 10 },
    });
    assert.ok(joined.ok);
    const id = joined.value.participantId;
    // Ids are public in the status: naming one without its rejoin secret gets a fresh id, and takes nothing over.
    const thief = io(coordinator.url, { transports: ['websocket'], reconnection: false });
    const stolen: Ack<JoinAccepted> = await thief.emitWithAck('join', {
      protocolVersion: PROTOCOL_VERSION,
      participantId: id,
      rejoinSecret: 'guess',
      client: { backend: 'cpu', numExamples: 10 },
    });
    assert.ok(stolen.ok);
    assert.notEqual(stolen.value.participantId, id);
    assert.equal(first.connected, true, 'the real participant kept its connection');
    thief.close();

    const firstClosed = new Promise((resolve) => first.once('disconnect', resolve));
    const second = io(coordinator.url, { transports: ['websocket'], reconnection: false });
    const done = new Promise((resolve) => second.once('federation:done', resolve));
    const again: Ack<JoinAccepted> = await second.emitWithAck('join', {
      protocolVersion: PROTOCOL_VERSION,
      participantId: id,
      rejoinSecret: joined.value.rejoinSecret,
      client: { backend: 'cpu', numExamples: 10 },
    });
    assert.ok(again.ok);
    assert.equal(again.value.participantId, id);
    await firstClosed;
    await done;
    const record = coordinator.engine.status().participants.find((p) => p.id === id)!;
    assert.equal(record.connected, true, 'the old connection closing did not mark the participant gone');
    second.close();
  });

  it('saved the final model in tfjs format and it loads and predicts', async () => {
    const dir = path.join(dataDir, coordinator.task.name);
    const model = await loadSavedModel(path.join(dir, 'model.json'), path.join(dir, 'weights.bin'));
    const accuracy = accuracyOn(model, (await loadMnistDemo()).test);
    model.dispose();
    const last = coordinator.engine.status().history.at(-1)!.metrics!.accuracy;
    assert.ok(Math.abs(accuracy - last) < 1e-6, `loaded model accuracy ${accuracy}, coordinator measured ${last}`);
    const history = JSON.parse(await readFile(path.join(dir, 'history.json'), 'utf8'));
    assert.equal(history.length, 3);
  });
});
