import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { io, type Socket } from 'socket.io-client';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { startCoordinator, type Coordinator } from '../../coordinator/server.ts';
import { loadMnistDemo, type DemoData } from '../../coordinator/task/demo-data.ts';
import type { Ack } from '../../core/protocol/errors.ts';
import {
  PROTOCOL_VERSION,
  type JoinAccepted,
  type RoundStartMessage,
  type SecAggForwardedWire,
  type SecAggKeysWire,
  type SecAggUnmaskRequestWire,
} from '../../core/protocol/messages.ts';
import {
  decodeForwarded,
  decodeKeys,
  encodeAdvertise,
  encodeMasked,
  encodeShares,
  encodeUnmask,
  toBytes,
} from '../../core/protocol/secagg-wire.ts';
import { SecAggClient } from '../../core/secagg/protocol.ts';
import { startNodeParticipants, stopNodeParticipants, type NodeParticipant } from '../helpers/node-participants.ts';

/**
 * Issue 16, item 5: under secure aggregation, colluding participants that
 * follow the key exchange but send a random masked vector and random shares
 * when asked to unmask. Before the decoded-sum check, the round was
 * "aggregated" and the garbage became the model (12.25% accuracy, loss
 * 2.6e8). Now the decoded sum falls outside the range honest inputs span,
 * the round aborts with the reason, the model is kept byte for byte, and the
 * status counts the refused sum. One attacker, then three, among four
 * honest Node participants.
 */

const HONEST = 4;
const TOTAL_SHARDS = 16;

/** Random bytes below the Shamir field prime (top byte 0): a well-formed share that is not the real one. */
function randomShare(): Uint8Array {
  const share = crypto.getRandomValues(new Uint8Array(32));
  share[0] = 0;
  return share;
}

function randomMasked(length: number): Uint32Array {
  const out = new Uint32Array(length);
  for (let i = 0; i < length; i += 16_384) crypto.getRandomValues(out.subarray(i, Math.min(length, i + 16_384)));
  return out;
}

function next<T>(socket: Socket, event: string): Promise<T> {
  return new Promise((resolve) => socket.once(event, (message: T) => resolve(message)));
}

/** A participant honest through the key exchange, then garbage: a random masked vector, random shares. */
async function garbageParticipant(url: string): Promise<{ socket: Socket; finished: Promise<void> }> {
  const socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true });
  const emit = async (event: string, message: unknown): Promise<void> => {
    const ack = (await socket.timeout(30_000).emitWithAck(event, message)) as Ack<unknown>;
    assert.ok(ack.ok, `${event}: ${JSON.stringify(ack)}`);
  };
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  const joined = (await socket
    .timeout(15_000)
    .emitWithAck('join', { protocolVersion: PROTOCOL_VERSION, client: { backend: 'garbage', numExamples: 100 } })) as Ack<JoinAccepted>;
  assert.ok(joined.ok, JSON.stringify(joined));
  const keys = next<SecAggKeysWire>(socket, 'secagg:keys');
  const forwarded = next<SecAggForwardedWire>(socket, 'secagg:forwarded');
  const unmaskRequest = next<SecAggUnmaskRequestWire>(socket, 'secagg:unmask-request');
  const finished = next<RoundStartMessage>(socket, 'round:start').then(async (start) => {
    assert.ok(start.secagg, 'round:start carries secagg');
    const { index } = start.secagg;
    const config = { ...start.secagg.config, roundSeed: toBytes(start.secagg.config.roundSeed) };
    const client = await SecAggClient.create(config, index);
    await emit('secagg:advertise', encodeAdvertise(client.advertise()));
    await emit('secagg:shares', encodeShares(await client.shareKeys(decodeKeys(await keys))));
    const honestForwarded = decodeForwarded(await forwarded);
    // Mask a zero update so the client reaches the unmasking step, then send random values instead.
    await client.maskInput(honestForwarded, new Float32Array(config.vectorLength));
    await emit('secagg:masked', encodeMasked({ round: start.round, from: index, masked: randomMasked(config.vectorLength) }));
    const request = await unmaskRequest;
    const honest = await client.unmask(request);
    await emit(
      'secagg:unmask',
      encodeUnmask({
        ...honest,
        selfMaskShares: honest.selfMaskShares.map((s) => ({ owner: s.owner, share: randomShare() })),
        maskingKeyShares: honest.maskingKeyShares.map((s) => ({ owner: s.owner, share: randomShare() })),
      }),
    );
  });
  return { socket, finished };
}

describe('secure aggregation: garbage inputs never change the model', () => {
  let demo: DemoData;

  before(async () => {
    demo = await loadMnistDemo();
  });

  for (const attackers of [1, 3]) {
    it(`${attackers} attacker(s) among ${HONEST} honest participants: the round aborts, the model is kept, the refusal is counted`, {
      timeout: 180_000,
    }, async () => {
      const dataDir = await mkdtemp(path.join(tmpdir(), 'fl-secagg-garbage-'));
      const n = HONEST + attackers;
      const config = parseConfig(
        [
          '--port',
          '0',
          '--host',
          '127.0.0.1',
          '--rounds',
          '1',
          '--min-clients',
          String(n),
          '--clients-per-round',
          String(n),
          '--min-updates',
          '3',
        ].concat(['--round-timeout', '120', '--secure-aggregation', '--secagg-step-timeout', '30', '--data-dir', dataDir, '--quiet']),
        {},
      ) as CoordinatorConfig;
      let coordinator: Coordinator | undefined;
      let participants: NodeParticipant[] = [];
      const sockets: Socket[] = [];
      try {
        coordinator = await startCoordinator(config);
        const initial = Float32Array.from(coordinator.engine.globalModel.weights);
        const scripted = [];
        for (let i = 0; i < attackers; i++) {
          const a = await garbageParticipant(coordinator.url);
          sockets.push(a.socket);
          scripted.push(a.finished);
        }
        participants = await startNodeParticipants(coordinator.url, demo, coordinator.task, HONEST, { totalShards: TOTAL_SHARDS });
        await Promise.all(scripted);
        const final = await coordinator.done;
        const round = final.history[0]!;
        assert.equal(round.outcome, 'skipped', `the round must not aggregate garbage: ${round.reason}`);
        assert.match(
          round.reason ?? '',
          /secure aggregation aborted: decoded sum refused: the sum of \d+ updates is out of range: \d+ of \d+ coordinates exceed/,
        );
        assert.match(round.reason ?? '', /the model is unchanged$/);
        assert.equal(round.secagg?.sumRefused, true);
        assert.equal(round.secagg?.masked, n, 'every input, garbage included, reached the sum');
        assert.equal(final.secureSumRejections, 1);
        assert.equal(final.modelVersion, 0);
        const weights = coordinator.engine.globalModel.weights;
        assert.ok(
          weights.length === initial.length && weights.every((w, i) => Object.is(w, initial[i])),
          'the global model is byte for byte the initial one',
        );
      } finally {
        for (const s of sockets) s.disconnect();
        stopNodeParticipants(participants);
        await coordinator?.close();
        await rm(dataDir, { recursive: true, force: true });
      }
    });
  }
});
