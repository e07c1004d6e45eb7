import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { io, type Socket } from 'socket.io-client';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { startCoordinator, type Coordinator } from '../../coordinator/server.ts';
import type { Ack } from '../../core/protocol/errors.ts';
import { PROTOCOL_VERSION, type JoinAccepted, type RoundStartMessage } from '../../core/protocol/messages.ts';
import type { FederationStatus } from '../../core/protocol/status.ts';
import { encodeFrame, FrameKind } from '../../core/wire/frame.ts';

/**
 * Issue 16 item 2: with the single shared join token, 40 sockets that join
 * and never train stalled every round to its deadline. Now rounds learn who
 * delivers: a round closes as soon as the honest updates are in once the
 * Sybils have a record of never delivering (selected twice, nothing sent).
 * Honest participants here answer each round:start at once with a small
 * update (the protocol as documented; training is not what is under test).
 */

const TOKEN = 'sybil-test-shared-join-token-01';
const HONEST = 3;
const SYBILS = 40;
const ROUNDS = 5;
const ROUND_TIMEOUT_S = 4;

describe('Sybil sockets with the shared token', () => {
  let coordinator: Coordinator;
  let dataDir: string;
  const sockets: Socket[] = [];

  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'fl-sybil-'));
    const config = parseConfig(
      ['--port', '0', '--host', '127.0.0.1', '--quiet', '--data-dir', dataDir, '--join-token', TOKEN, '--rounds', String(ROUNDS)].concat([
        '--min-clients',
        String(HONEST + SYBILS),
        '--clients-per-round',
        '50',
        '--min-updates',
        '1',
        '--round-timeout',
        String(ROUND_TIMEOUT_S),
      ]),
      {},
    ) as CoordinatorConfig;
    coordinator = await startCoordinator(config, { log: () => {} });
  });
  after(async () => {
    for (const s of sockets) s.close();
    await coordinator.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  async function join(): Promise<Socket> {
    const socket = io(coordinator.url, { transports: ['websocket'], reconnection: false, forceNew: true, auth: { token: TOKEN } });
    sockets.push(socket);
    const answer = (await socket
      .timeout(15_000)
      .emitWithAck('join', { protocolVersion: PROTOCOL_VERSION, client: { backend: 'cpu', numExamples: 100 } })) as Ack<JoinAccepted>;
    assert.ok(answer.ok, JSON.stringify(answer));
    return socket;
  }

  it(`${SYBILS} idle sockets stall at most the first two rounds; later rounds close as soon as the honest updates are in`, async () => {
    const paramCount = coordinator.task.paramCount;
    for (let i = 0; i < HONEST; i++) {
      const socket = await join();
      socket.on('round:start', (message: RoundStartMessage) => {
        const update = new Float32Array(paramCount).fill(1e-4);
        socket.emit(
          'update',
          {
            round: message.round,
            baseVersion: message.model.version,
            numExamples: 100,
            trainMs: 1,
            update: new Uint8Array(encodeFrame(FrameKind.Update, update)),
          },
          () => {},
        );
      });
    }
    // The Sybils join and never answer a round:start.
    for (let i = 0; i < SYBILS; i++) await join();
    const final: FederationStatus = await coordinator.done;
    const durations = final.history.map((r) => r.durationMs);
    console.log(`# round durations (ms): ${durations.join(', ')}; received per round: ${final.history.map((r) => r.received).join(', ')}`);
    assert.equal(final.history.length, ROUNDS);
    for (const r of final.history) {
      assert.equal(r.outcome, 'aggregated');
      assert.equal(r.received, HONEST, `round ${r.round}: every honest update aggregated`);
      assert.equal(r.selected, HONEST + SYBILS);
    }
    for (const r of final.history.slice(2)) {
      assert.ok(r.durationMs < (ROUND_TIMEOUT_S * 1000) / 2, `round ${r.round} closed before its deadline: ${r.durationMs} ms`);
      assert.ok(
        r.participants!.some((p) => /never delivered/.test(p.reason ?? '')),
        `round ${r.round}: the Sybils were not waited for`,
      );
    }
  });
});
