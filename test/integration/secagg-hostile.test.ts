import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { io, type Socket } from 'socket.io-client';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { startCoordinator, type Coordinator } from '../../coordinator/server.ts';
import { loadMnistDemo } from '../../coordinator/task/demo-data.ts';
import { ErrorCode, type Ack } from '../../core/protocol/errors.ts';
import {
  PROTOCOL_VERSION,
  type JoinAccepted,
  type RoundStartMessage,
  type SecAggForwardedWire,
  type SecAggKeysWire,
} from '../../core/protocol/messages.ts';
import { decodeForwarded, decodeKeys, encodeAdvertise, encodeShares, toBytes } from '../../core/protocol/secagg-wire.ts';
import { SecAggClient } from '../../core/secagg/protocol.ts';
import { startNodeParticipants, stopNodeParticipants, type NodeParticipant } from '../helpers/node-participants.ts';

/**
 * Hostile secure aggregation messages (docs/protocol.md §10.3) against a real
 * coordinator with --secure-aggregation and seven honest Node participants.
 * Six scripted participants speak the protocol over socket.io-client, get
 * selected into the same round, and each sends one kind of bad message:
 * a wrong `from`, public keys of the wrong size, a duplicate advertisement,
 * an advertisement after its step closed, shares for an unknown recipient,
 * and a masked vector of the wrong length. Each must be answered with
 * SECAGG_REJECTED and the core's code, the sender must be out of the round
 * (its next message: NOT_SELECTED), and the round must still aggregate the
 * seven honest updates.
 *
 * n = 13 selected, so t = ⌊13/2⌋ + 1 = 7: exactly the honest participants,
 * who all reach the unmasking step.
 */

const HONEST = 7;
type Attack = 'wrong-from' | 'wrong-size' | 'duplicate' | 'late' | 'unknown-recipient' | 'wrong-length';
const ATTACKS: readonly Attack[] = ['wrong-from', 'wrong-size', 'duplicate', 'late', 'unknown-recipient', 'wrong-length'];

interface Answer {
  readonly attack: Attack;
  /** The refused message's answer. */
  readonly refused: Ack<unknown>;
  /** The answer to one more message after that. */
  readonly after: Ack<unknown>;
}

/**
 * The duplicate must reach step 0 while it is still open: the attackers that
 * advertise honestly first wait until it was answered, so step 0 cannot close
 * before (it waits for every selected participant).
 */
let duplicateAnswered!: () => void;
const duplicateSettled = new Promise<void>((resolve) => (duplicateAnswered = resolve));

type Emit = (event: string, message: unknown) => Promise<Ack<unknown>>;

async function connect(url: string): Promise<{ socket: Socket; emit: Emit }> {
  const socket = io(url, { transports: ['websocket'], reconnection: false });
  const emit: Emit = (event, message) => socket.timeout(30_000).emitWithAck(event, message) as Promise<Ack<unknown>>;
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  const joined = (await socket
    .timeout(15_000)
    .emitWithAck('join', { protocolVersion: PROTOCOL_VERSION, client: { backend: 'scripted', numExamples: 100 } })) as Ack<JoinAccepted>;
  assert.ok(joined.ok, `attacker join: ${JSON.stringify(joined)}`);
  return { socket, emit };
}

function next<T>(socket: Socket, event: string): Promise<T> {
  return new Promise((resolve) => socket.once(event, (message: T) => resolve(message)));
}

/** One scripted participant: honest up to its attack, then one bad message and one more after it. */
async function attacker(url: string, attack: Attack): Promise<{ socket: Socket; result: Promise<Answer> }> {
  const { socket, emit } = await connect(url);
  const keys = next<SecAggKeysWire>(socket, 'secagg:keys');
  const forwarded = next<SecAggForwardedWire>(socket, 'secagg:forwarded');
  const result = next<RoundStartMessage>(socket, 'round:start').then(async (start): Promise<Answer> => {
    assert.ok(start.secagg, 'round:start carries secagg');
    const { index } = start.secagg;
    const config = { ...start.secagg.config, roundSeed: toBytes(start.secagg.config.roundSeed) };
    const client = await SecAggClient.create(config, index);
    const advertise = encodeAdvertise(client.advertise());
    const done = async (refused: Ack<unknown>, again: () => Promise<Ack<unknown>>): Promise<Answer> => ({
      attack,
      refused,
      after: await again(),
    });
    switch (attack) {
      case 'wrong-from': {
        const other = index === 1 ? 2 : 1;
        return done(await emit('secagg:advertise', { ...advertise, from: other }), () => emit('secagg:advertise', advertise));
      }
      case 'wrong-size':
        return done(await emit('secagg:advertise', { ...advertise, encryptionKey: new Uint8Array(10) }), () =>
          emit('secagg:advertise', advertise),
        );
      case 'duplicate': {
        assert.deepEqual(await emit('secagg:advertise', advertise), { ok: true, value: { round: start.round } });
        const refused = await emit('secagg:advertise', advertise);
        duplicateAnswered();
        return done(refused, () => emit('secagg:advertise', advertise));
      }
      case 'late': {
        await duplicateSettled;
        assert.ok((await emit('secagg:advertise', advertise)).ok);
        await keys;
        // Step 0 closed when the directory went out: a second advertisement is late.
        return done(await emit('secagg:advertise', advertise), () => emit('secagg:advertise', advertise));
      }
      case 'unknown-recipient': {
        await duplicateSettled;
        assert.ok((await emit('secagg:advertise', advertise)).ok);
        const directory = decodeKeys(await keys);
        const shares = encodeShares(await client.shareKeys(directory));
        // A real index of the round, but not a live neighbour: one that never advertised keys (wrong-from, wrong-size).
        const live = new Set(directory.keys.map((k) => k.index));
        const stranger = Array.from({ length: config.participants }, (_, i) => i + 1).find((i) => !live.has(i))!;
        const to = [...shares.to];
        to[0] = stranger;
        return done(await emit('secagg:shares', { ...shares, to }), () => emit('secagg:shares', shares));
      }
      case 'wrong-length': {
        await duplicateSettled;
        assert.ok((await emit('secagg:advertise', advertise)).ok);
        const shares = encodeShares(await client.shareKeys(decodeKeys(await keys)));
        assert.ok((await emit('secagg:shares', shares)).ok);
        decodeForwarded(await forwarded);
        const short = new Uint32Array(config.vectorLength - 1);
        for (let i = 0; i < short.length; i += 16_384) crypto.getRandomValues(short.subarray(i, i + 16_384));
        const masked = { round: start.round, from: index, masked: new Uint8Array(short.buffer) };
        const right = { ...masked, masked: new Uint8Array(config.vectorLength * 4) };
        return done(await emit('secagg:masked', masked), () => emit('secagg:masked', right));
      }
    }
  });
  return { socket, result };
}

describe('hostile secure aggregation messages', () => {
  let coordinator: Coordinator;
  let dataDir: string;
  let participants: NodeParticipant[] = [];
  const sockets: Socket[] = [];

  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'fl-secagg-hostile-'));
    const n = HONEST + ATTACKS.length;
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
        '--round-timeout',
        '120',
        '--secure-aggregation',
        '--secagg-step-timeout',
        '20',
        '--data-dir',
        dataDir,
        '--quiet',
      ],
      {},
    ) as CoordinatorConfig;
    coordinator = await startCoordinator(config);
  });

  after(async () => {
    for (const socket of sockets) socket.disconnect();
    stopNodeParticipants(participants);
    await coordinator?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('refuses each bad message with SECAGG_REJECTED, excludes the sender, and aggregates the honest updates', {
    timeout: 300_000,
  }, async () => {
    const attackers = [];
    for (const attack of ATTACKS) {
      const a = await attacker(coordinator.url, attack);
      sockets.push(a.socket);
      attackers.push(a);
    }
    const demo = await loadMnistDemo();
    participants = await startNodeParticipants(coordinator.url, demo, coordinator.task, HONEST);

    const answers = await Promise.all(attackers.map((a) => a.result));
    const code = (ack: Ack<unknown>) => (ack.ok ? 'ok' : ack.error.code);
    const message = (ack: Ack<unknown>) => (ack.ok ? '' : ack.error.message);
    for (const { attack, refused, after } of answers) {
      assert.equal(code(refused), ErrorCode.SecAggRejected, `${attack}: ${JSON.stringify(refused)}`);
      // The message starts with the core's code; a wrong `from` is caught by the transport as unknown-participant.
      const expected = attack === 'wrong-from' ? 'unknown-participant' : attack;
      assert.match(message(refused), new RegExp(`^${expected}:`), `${attack}: ${message(refused)}`);
      // Out of the round: whatever it sends next is refused.
      assert.equal(code(after), ErrorCode.NotSelected, `${attack}, next message: ${JSON.stringify(after)}`);
    }

    const final = await coordinator.done;
    const round = final.history[0]!;
    assert.equal(round.outcome, 'aggregated', round.reason);
    assert.equal(round.received, HONEST);
    const stats = round.secagg!;
    assert.equal(stats.participants, HONEST + ATTACKS.length);
    assert.equal(stats.excluded, ATTACKS.length);
    assert.equal(stats.aborted, undefined);
    // Advertised: the honest seven plus duplicate, late, unknown-recipient and wrong-length (their first advertisement was fine).
    assert.equal(stats.advertised, HONEST + 4);
    // Shares: the honest seven plus wrong-length, whose pairwise masks are then removed as a drop-out's.
    assert.equal(stats.shared, HONEST + 1);
    assert.equal(stats.masked, HONEST);
    assert.equal(stats.dropoutsRecovered, 1);
    assert.equal(stats.unmasked, HONEST);
  });
});
