import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { io, type Socket } from 'socket.io-client';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { initNodeBackend } from '../../coordinator/tf-node.ts';
import { startCoordinator, type Coordinator } from '../../coordinator/server.ts';
import { decodeDataset, type Dataset } from '../../core/data/dataset.ts';
import { gatherFrozen, gatherTrainable, trainableLayout, type TrainableLayout } from '../../core/model/fine-tune.ts';
import type { FrozenWeightsStore } from '../../core/model/fine-tune-weights.ts';
import { Participant, type ParticipantEvent } from '../../core/participant/participant.ts';
import { PlainRoundTrainer } from '../../core/participant/trainers.ts';
import type { Ack } from '../../core/protocol/errors.ts';
import {
  PROTOCOL_VERSION,
  type ClientToServerEvents,
  type FrozenWeightsMessage,
  type JoinAccepted,
  type RoundStartMessage,
  type ServerToClientEvents,
  type UpdateAccepted,
} from '../../core/protocol/messages.ts';
import { LocalTrainer } from '../../core/training/local-trainer.ts';
import { encodeFrame, FRAME_HEADER_BYTES, FrameKind } from '../../core/wire/frame.ts';
import { startNodeParticipants, stopNodeParticipants, type NodeParticipant } from '../helpers/node-participants.ts';

const TASK = 'tasks/fashion-finetune/task.json';
/** tasks/fashion-finetune: features 784×64+64 frozen; hidden 64×64+64 and head 64×10+10 trained. */
const PARAMS = 55_050;
const TRAINABLE = 4_810;

/** Frozen weights in memory, counting what is saved and loaded. */
class MemoryFrozenStore implements FrozenWeightsStore {
  readonly saved = new Map<string, Float32Array>();
  async load(hash: string): Promise<Float32Array | undefined> {
    return this.saved.get(hash)?.slice();
  }
  async save(hash: string, values: Float32Array): Promise<void> {
    this.saved.set(hash, values.slice());
  }
}

type ClientSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

/** A participant that joins by hand and answers every round with a full-size update, as a client unaware of fine-tuning would. */
async function fullSizeSender(url: string): Promise<{ socket: ClientSocket; acks: Ack<UpdateAccepted>[] }> {
  const socket: ClientSocket = io(url, { transports: ['websocket'], reconnection: false });
  const acks: Ack<UpdateAccepted>[] = [];
  socket.on('round:start', (message: RoundStartMessage) => {
    void socket
      .emitWithAck('update', {
        round: message.round,
        baseVersion: message.model.version,
        numExamples: 100,
        update: encodeFrame(FrameKind.Update, new Float32Array(PARAMS)),
      })
      .then((ack) => acks.push(ack));
  });
  const joined: Ack<JoinAccepted> = await socket.emitWithAck('join', {
    protocolVersion: PROTOCOL_VERSION,
    client: { backend: 'cpu', numExamples: 100 },
  });
  assert.ok(joined.ok, 'the hand-made participant joins');
  return { socket, acks };
}

const events = (p: NodeParticipant, type: ParticipantEvent['type']) => p.events.filter((e) => e.type === type);

/**
 * The shipped fine-tuning task end to end (tasks/fashion-finetune): the
 * coordinator aggregates only the trainable layers, keeps the frozen feature
 * layer bit-identical, and each participant downloads the frozen weights
 * once and uploads exactly the trainable values each round.
 */
describe('fine-tuning a pretrained model (tasks/fashion-finetune)', () => {
  let coordinator: Coordinator;
  let dataDir: string;
  let participants: NodeParticipant[] = [];
  let layout: TrainableLayout;
  const stores = [new MemoryFrozenStore(), new MemoryFrozenStore()];

  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'fl-fine-tune-'));
    const config = parseConfig(
      [
        ...['--task', TASK, '--port', '0', '--host', '127.0.0.1', '--quiet', '--data-dir', dataDir],
        ...['--rounds', '3', '--min-clients', '3', '--clients-per-round', '3', '--min-updates', '2', '--epochs', '1'],
      ],
      {},
    ) as CoordinatorConfig;
    coordinator = await startCoordinator(config);
    layout = trainableLayout(coordinator.task.weightShapes, coordinator.task.fineTune!.trainableWeights);
  });

  after(async () => {
    stopNodeParticipants(participants);
    await coordinator?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('tells participants which weights train: the task file names the layers, the model.json marks none', () => {
    const { task } = coordinator;
    assert.equal(task.paramCount, PARAMS);
    assert.equal(task.fineTune?.trainableParamCount, TRAINABLE);
    assert.equal(layout.trainableCount, TRAINABLE);
    assert.deepEqual(
      task.fineTune!.trainableWeights.map((i) => task.weightShapes[i]!.name),
      ['hidden/kernel', 'hidden/bias', 'head/kernel', 'head/bias'],
    );
    assert.match(task.fineTune!.frozenHash, /^[0-9a-f]{64}$/);
  });

  it('serves the frozen weights only by their hash', async () => {
    const socket: ClientSocket = io(coordinator.url, { transports: ['websocket'], reconnection: false });
    try {
      const early: Ack<FrozenWeightsMessage> = await socket.emitWithAck('model:frozen', { hash: coordinator.task.fineTune!.frozenHash });
      assert.equal(early.ok ? 'ok' : early.error.code, 'NOT_JOINED');
      const joined: Ack<JoinAccepted> = await socket.emitWithAck('join', {
        protocolVersion: PROTOCOL_VERSION,
        client: { backend: 'cpu', numExamples: 1 },
      });
      assert.ok(joined.ok);
      assert.equal(joined.value.model.frozenHash, coordinator.task.fineTune!.frozenHash);
      assert.equal(new Uint8Array(joined.value.model.weights as ArrayBuffer).byteLength, FRAME_HEADER_BYTES + 4 * TRAINABLE);
      const wrong: Ack<FrozenWeightsMessage> = await socket.emitWithAck('model:frozen', { hash: '0'.repeat(64) });
      assert.equal(wrong.ok ? 'ok' : wrong.error.code, 'UNKNOWN_FROZEN_WEIGHTS');
      const right: Ack<FrozenWeightsMessage> = await socket.emitWithAck('model:frozen', { hash: coordinator.task.fineTune!.frozenHash });
      assert.ok(right.ok);
      assert.equal(new Uint8Array(right.value.weights as ArrayBuffer).byteLength, FRAME_HEADER_BYTES + 4 * (PARAMS - TRAINABLE));
    } finally {
      socket.disconnect();
    }
  });

  it('trains and aggregates only the trainable weights; the frozen ones stay bit-identical; uploads are exactly the trainable values', {
    timeout: 120_000,
  }, async () => {
    const { task, engine } = coordinator;
    const initial = engine.globalModel.weights.slice();
    const train = decodeDataset(new Uint8Array(await (await fetch(`${coordinator.url}${task.demoData!.url}`)).arrayBuffer()));
    // Each round's global model, read when its round:end reaches participant 0.
    const models: Float32Array[] = [];
    const sender = await fullSizeSender(coordinator.url);
    try {
      participants = await startNodeParticipants(coordinator.url, { train, test: train }, task, 2, { frozenStores: stores });
      const watched = participants[0]!.participant;
      const done = new Promise<void>((resolve) =>
        watched.socket.on('round:end', () => {
          models.push(engine.globalModel.weights.slice());
          if (models.length === 3) resolve();
        }),
      );
      const final = await coordinator.done;
      await done;

      assert.deepEqual(
        final.history.map((r) => [r.outcome, r.received]),
        [
          ['aggregated', 2],
          ['aggregated', 2],
          ['aggregated', 2],
        ],
      );
      // A full-size update is refused with a clear code: the task fine-tunes. By round 3 the sender has a record of
      // never delivering, so the quorum rule may close that round on the two honest updates before its upload lands.
      assert.deepEqual(
        final.history.slice(0, 2).map((r) => r.rejected),
        [1, 1],
      );
      assert.ok(final.history[2]!.rejected <= 1);
      const refused = sender.acks.filter((ack) => !ack.ok && ack.error.code === 'WRONG_LENGTH');
      assert.ok(refused.length >= 2, `${refused.length} full-size updates refused as WRONG_LENGTH`);
      assert.ok(sender.acks.every((ack) => !ack.ok));
      for (const ack of refused) if (!ack.ok) assert.match(ack.error.message, /4810/);

      const frozen = gatherFrozen(initial, layout);
      let previous = gatherTrainable(initial, layout);
      for (const [k, model] of models.entries()) {
        const frozenNow = gatherFrozen(model, layout);
        // Bit-identical: compare the float32 bytes, not the numbers.
        assert.deepEqual(new Uint8Array(frozenNow.buffer), new Uint8Array(frozen.buffer), `round ${k + 1}: frozen weights changed`);
        const trainable = gatherTrainable(model, layout);
        assert.ok(
          trainable.some((v, i) => v !== previous[i]),
          `round ${k + 1}: the trainable weights did not change`,
        );
        previous = trainable;
      }

      const updateBytes = FRAME_HEADER_BYTES + 4 * TRAINABLE;
      assert.equal(updateBytes, 19_256);
      for (const p of participants) {
        const uploads = events(p, 'uploaded') as Extract<ParticipantEvent, { type: 'uploaded' }>[];
        assert.equal(uploads.length, 3);
        for (const u of uploads) assert.equal(u.bytes, updateBytes, 'an update is the trainable values plus the frame header');
        // The frozen weights came once, from the coordinator, and went into this participant's store.
        const frozenEvents = events(p, 'frozen-weights') as Extract<ParticipantEvent, { type: 'frozen-weights' }>[];
        assert.deepEqual(
          frozenEvents.map((e) => e.source),
          [{ kind: 'download', bytes: FRAME_HEADER_BYTES + 4 * (PARAMS - TRAINABLE) }],
        );
      }
      for (const store of stores) assert.deepEqual([...store.saved.keys()], [task.fineTune!.frozenHash]);
      // What the coordinator received: two updates a round of exactly the trainable values (the refused one is not counted).
      for (const record of final.history) assert.equal(record.bytesIn, 2 * updateBytes);
    } finally {
      sender.socket.disconnect();
    }
  });

  it('a returning participant takes the frozen weights from its store and downloads nothing', { timeout: 30_000 }, async () => {
    const task = coordinator.task;
    const local: Dataset = { count: 1, features: 784, numClasses: 10, values: new Uint8Array(784), labels: new Uint8Array(1) };
    await initNodeBackend();
    const trainer = new LocalTrainer(task.model, local);
    const seen: ParticipantEvent[] = [];
    const returning = new Participant({
      url: coordinator.url,
      client: { backend: 'wasm' },
      trainer: new PlainRoundTrainer(trainer),
      frozenStore: stores[0],
      onEvent: (event) => seen.push(event),
    });
    try {
      const frozen = new Promise<ParticipantEvent>((resolve) => {
        const check = setInterval(() => {
          const event = seen.find((e) => e.type === 'frozen-weights' || e.type === 'error');
          if (event) {
            clearInterval(check);
            resolve(event);
          }
        }, 20);
      });
      returning.start();
      assert.deepEqual(await frozen, { type: 'frozen-weights', hash: task.fineTune!.frozenHash, source: { kind: 'cache' } });
    } finally {
      returning.stop();
      trainer.dispose();
    }
  });
});

describe('fine-tuning under secure aggregation with distributed client-level DP', () => {
  let coordinator: Coordinator;
  let dataDir: string;
  let participants: NodeParticipant[] = [];
  const maskedLengths: number[] = [];
  const plainLengths: number[] = [];

  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'fl-fine-tune-secagg-'));
    const config = parseConfig(
      [
        ...['--task', TASK, '--port', '0', '--host', '127.0.0.1', '--quiet', '--data-dir', dataDir],
        ...['--rounds', '2', '--min-clients', '3', '--clients-per-round', '3', '--min-updates', '3', '--epochs', '1'],
        ...['--secure-aggregation', '--client-dp', 'distributed', '--fresh-privacy-budget', '--client-noise-multiplier', '1'],
        ...['--client-sample-rate', '1', '--client-clip', '1', '--expected-clients', '3', '--admin-token', 'fine-tune-secagg-admin'],
        // Gaussian shares: each masked vector is the trainable values themselves, not rotated and padded as Skellam's are.
        ...['--distributed-noise', 'gaussian'],
      ],
      {},
    ) as CoordinatorConfig;
    coordinator = await startCoordinator(config, {
      secaggObserver: { masked: (_round, _id, vector) => maskedLengths.push(vector.length) },
    });
  });

  after(async () => {
    stopNodeParticipants(participants);
    await coordinator?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('clips, noises and masks only the trainable values; the noised sum leaves the frozen weights bit-identical', {
    timeout: 120_000,
  }, async () => {
    const { task, engine } = coordinator;
    const layout = trainableLayout(task.weightShapes, task.fineTune!.trainableWeights);
    const initial = engine.globalModel.weights.slice();
    const train = decodeDataset(new Uint8Array(await (await fetch(`${coordinator.url}${task.demoData!.url}`)).arrayBuffer()));
    participants = await startNodeParticipants(coordinator.url, { train, test: train }, task, 3, {
      onPlainUpdate: (_k, _round, update) => plainLengths.push(update.length),
    });
    const final = await coordinator.done;
    assert.deepEqual(
      final.history.map((r) => [r.outcome, r.secagg?.masked]),
      [
        ['aggregated', 3],
        ['aggregated', 3],
      ],
    );
    assert.deepEqual(plainLengths, new Array(6).fill(TRAINABLE), 'each plain update, before clipping, noise and masking');
    assert.deepEqual(maskedLengths, new Array(6).fill(TRAINABLE), 'each masked vector the coordinator held');
    const uploads = participants.flatMap((p) => events(p, 'uploaded')) as Extract<ParticipantEvent, { type: 'uploaded' }>[];
    assert.equal(uploads.length, 6);
    for (const u of uploads) {
      assert.ok(u.masked && u.noised);
      assert.equal(u.bytes, 4 * TRAINABLE, 'masked words of the trainable values only');
    }
    const model = engine.globalModel.weights;
    assert.deepEqual(new Uint8Array(gatherFrozen(model, layout).buffer), new Uint8Array(gatherFrozen(initial, layout).buffer));
    assert.ok(gatherTrainable(model, layout).some((v, i) => v !== gatherTrainable(initial, layout)[i]));
  });
});
