import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { io, type Socket } from 'socket.io-client';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { startCoordinator, type Coordinator } from '../../coordinator/server.ts';
import { ErrorCode, type Ack } from '../../core/protocol/errors.ts';
import { PROTOCOL_VERSION, type JoinAccepted } from '../../core/protocol/messages.ts';
import { encodeFrame, FrameKind } from '../../core/wire/frame.ts';
import { launchCoordinator } from '../helpers/coordinator-process.ts';
import { freePort } from '../helpers/free-port.ts';
import { RawClient } from '../helpers/raw-socket-io.ts';

/**
 * The protocol corners of the hostile-client audit (issue 16, item 6) that
 * docs/protocol.md promises and the coordinator once did otherwise: each
 * case names what it did before.
 */

const JOIN_TOKEN = 'protocol-test-join-token-0001';
const ADMIN_TOKEN = 'protocol-test-admin-token-002';

const opened: Socket[] = [];

function client(url: string, transports: ('websocket' | 'polling')[] = ['websocket']): Socket {
  const socket = io(url, { transports, reconnection: false, forceNew: true, auth: { token: JOIN_TOKEN } });
  opened.push(socket);
  return socket;
}

function connected(socket: Socket): Promise<void> {
  if (socket.connected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', (error) => reject(new Error(`refused: ${error.message}`)));
  });
}

async function request<T = unknown>(socket: Socket, event: string, ...args: unknown[]): Promise<Ack<T>> {
  return (await socket.timeout(15_000).emitWithAck(event, ...args)) as Ack<T>;
}

const codeOf = (answer: Ack<unknown>) => (answer.ok ? 'ok' : answer.error.code);

const joinRequest = (extra: Record<string, unknown> = {}) => ({
  protocolVersion: PROTOCOL_VERSION,
  client: { backend: 'cpu', numExamples: 10 },
  ...extra,
});

/** The ack of request `id` on a raw connection, decoded (`43<id>[answer]`, or `46<n>-<id>[answer]` when it carries binary data). */
async function rawAck(raw: RawClient, id: number): Promise<Ack<unknown>> {
  const prefix = new RegExp(`^(?:43|46\\d+-)${id}\\[`);
  const frame = await Promise.race([
    raw.next((f) => prefix.test(f)),
    raw.closedByServer.then(() => {
      throw new Error(`the coordinator closed the connection instead of answering request ${id}`);
    }),
  ]);
  return (JSON.parse(frame.slice(frame.indexOf('['))) as [Ack<unknown>])[0];
}

describe('protocol corners (hostile clients, docs/protocol.md)', () => {
  let coordinator: Coordinator;
  let dataDir: string;
  let staticDir: string;

  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'fl-protocol-'));
    staticDir = path.join(dataDir, 'no-such-build');
    const config = parseConfig(
      ['--port', '0', '--host', '127.0.0.1', '--min-clients', '100', '--data-dir', dataDir, '--static-dir', staticDir, '--quiet'].concat([
        '--join-token',
        JOIN_TOKEN,
        '--admin-token',
        ADMIN_TOKEN,
      ]),
      {},
    ) as CoordinatorConfig;
    coordinator = await startCoordinator(config, { log: () => {} });
  });

  after(async () => {
    for (const s of opened) s.close();
    await coordinator?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('secagg:* events on a coordinator without secure aggregation are unknown events (before: WRONG_ROUND or BAD_PAYLOAD)', async () => {
    const socket = client(coordinator.url);
    await connected(socket);
    await request(socket, 'join', joinRequest());
    const before = coordinator.engine.status().rejections[ErrorCode.UnknownEvent] ?? 0;
    const advertise = { round: 1, from: 1, encryptionKey: new Uint8Array(65), maskingKey: new Uint8Array(65) };
    for (const [event, payload] of [
      ['secagg:advertise', advertise],
      ['secagg:shares', { round: 1, from: 1, to: [], ciphertexts: new Uint8Array(0) }],
      ['secagg:masked', { round: 1, from: 1, masked: new Uint8Array(8) }],
      [
        'secagg:unmask',
        {
          round: 1,
          from: 1,
          selfMaskOwners: [],
          selfMaskShares: new Uint8Array(0),
          maskingKeyOwners: [],
          maskingKeyShares: new Uint8Array(0),
        },
      ],
      ['secagg:advertise', 'garbage'],
    ] as const) {
      const answer = await request(socket, event, payload);
      assert.equal(codeOf(answer), ErrorCode.UnknownEvent, `${event}: ${JSON.stringify(answer)}`);
    }
    assert.equal(coordinator.engine.status().rejections[ErrorCode.UnknownEvent], before + 5);
  });

  it('malformed event packets get UNKNOWN_EVENT and the connection stays (before: the connection was closed)', async () => {
    const raw = await RawClient.open(coordinator.port, JOIN_TOKEN);
    try {
      const cases: [string, string][] = [
        ['a reserved event name', '421["disconnect"]'],
        ['another reserved name, with arguments', '422["newListener",{"round":1}]'],
        ['a null event name', '423[null,{}]'],
        ['an object as the event name', '424[{"name":"join"},{}]'],
        ['invalid JSON', '425["update",{"round":'],
        ['a payload that is not an array', '426{"event":"join"}'],
      ];
      for (const [what, packet] of cases) {
        raw.send(packet);
        const id = Number(packet[2]);
        const answer = await rawAck(raw, id);
        assert.equal(codeOf(answer), ErrorCode.UnknownEvent, `${what}: ${JSON.stringify(answer)}`);
        assert.ok(!answer.ok && answer.error.message.startsWith('unreadable event packet'), `${what}: ${JSON.stringify(answer)}`);
      }
      // A binary event with a reserved name: its attachment is read and dropped.
      raw.send('451-7["disconnecting",{"_placeholder":true,"num":0}]');
      raw.sendBinary(new Uint8Array([1, 2, 3, 4]));
      assert.equal(codeOf(await rawAck(raw, 7)), ErrorCode.UnknownEvent);
      // The connection still works: a join is answered.
      raw.send(`428${JSON.stringify(['join', joinRequest()])}`);
      const joined = (await rawAck(raw, 8)) as Ack<JoinAccepted>;
      assert.ok(joined.ok, JSON.stringify(joined));
    } finally {
      raw.tcp.destroy();
    }
  });

  it('a join that names the socket’s own id again, without the secret, keeps it (before: BAD_PAYLOAD)', async () => {
    const socket = client(coordinator.url);
    await connected(socket);
    const first = await request<JoinAccepted>(socket, 'join', joinRequest());
    assert.ok(first.ok);
    const again = await request<JoinAccepted>(socket, 'join', joinRequest({ participantId: first.value.participantId }));
    assert.ok(again.ok, JSON.stringify(again));
    assert.equal(again.value.participantId, first.value.participantId);
    assert.equal(again.value.rejoinSecret, first.value.rejoinSecret, 'the secret stays the one issued');
    // Another id, or none, on the same socket is still refused (docs/protocol.md §4.1, join check 3).
    assert.equal(codeOf(await request(socket, 'join', joinRequest({ participantId: 'someone-else' }))), ErrorCode.BadPayload);
    assert.equal(codeOf(await request(socket, 'join', joinRequest())), ErrorCode.BadPayload);
    // And a new socket gets the id back only with the secret.
    const other = client(coordinator.url);
    await connected(other);
    const stolen = await request<JoinAccepted>(other, 'join', joinRequest({ participantId: first.value.participantId }));
    assert.ok(stolen.ok);
    assert.notEqual(stolen.value.participantId, first.value.participantId);
  });

  it('a full-size frame sent as base64 text gets BAD_PAYLOAD, not a closed connection (before: the connection was closed)', async () => {
    const socket = client(coordinator.url);
    await connected(socket);
    assert.ok((await request(socket, 'join', joinRequest())).ok);
    const frame = encodeFrame(FrameKind.Update, new Float32Array(coordinator.task.paramCount));
    const base64 = Buffer.from(frame).toString('base64');
    assert.ok(base64.length > 472_632, `${base64.length} B: over the old limit`);
    const answer = await request(socket, 'update', { round: 1, baseVersion: 0, numExamples: 10, trainMs: 1, update: base64 });
    assert.equal(codeOf(answer), ErrorCode.BadPayload, JSON.stringify(answer));
    assert.ok(socket.connected);
  });

  it('a full update travels over long-polling (before: over the limit, the connection was closed)', async () => {
    const socket = client(coordinator.url, ['polling']);
    await connected(socket);
    assert.equal(socket.io.engine.transport.name, 'polling');
    assert.ok((await request(socket, 'join', joinRequest())).ok);
    const frame = encodeFrame(FrameKind.Update, new Float32Array(coordinator.task.paramCount));
    // No round is open: the coordinator read the whole update and answers WRONG_ROUND.
    const answer = await request(socket, 'update', { round: 1, baseVersion: 0, numExamples: 10, trainMs: 1, update: frame });
    assert.equal(codeOf(answer), ErrorCode.WrongRound, JSON.stringify(answer));
    assert.ok(socket.connected);
  });

  it('non-GET requests to admin routes get 405, with or without the token (before: 401)', async () => {
    for (const route of ['/api/status', '/api/report.json', '/api/model/model.json', '/api/admin/anything']) {
      for (const method of ['POST', 'PUT', 'DELETE']) {
        const response = await fetch(`${coordinator.url}${route}`, { method });
        assert.equal(response.status, 405, `${method} ${route}`);
        assert.equal(response.headers.get('allow'), 'GET, HEAD');
      }
    }
    // GET still needs the token.
    assert.equal((await fetch(`${coordinator.url}/api/status`)).status, 401);
  });

  it('/dashboard/<anything> is a plain 404 that shows no server path (before: the absolute build path)', async () => {
    for (const route of ['/dashboard/anything', '/dashboard/../../etc/passwd', '/dashboard/x/y.js']) {
      const response = await fetch(`${coordinator.url}${route}`);
      assert.equal(response.status, 404, route);
      const body = await response.text();
      assert.equal(body, 'not found\n', route);
    }
    // The page routes say the app is not built, still without the path.
    for (const route of ['/', '/dashboard']) {
      const body = await (await fetch(`${coordinator.url}${route}`)).text();
      assert.match(body, /not built/);
      assert.ok(!body.includes(dataDir) && !body.includes(`${path.sep}no-such-build`), body);
    }
  });
});

describe('shutdown', () => {
  it('SIGTERM exits at once while clients hold their connections open (before: about 30 s)', { timeout: 90_000 }, async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'fl-sigterm-'));
    try {
      const port = await freePort();
      const coordinator = await launchCoordinator([
        '--port',
        String(port),
        '--host',
        '127.0.0.1',
        '--min-clients',
        '100',
        '--data-dir',
        dataDir,
        '--open',
      ]);
      // A WebSocket client that joined the namespace and then stops reading (it will never answer the close),
      // and a TCP connection that never sends a request.
      const silent = await RawClient.open(port, 'no token needed');
      silent.tcp.pause();
      const idle = tcpConnect(port, '127.0.0.1');
      idle.on('error', () => {});
      await new Promise<void>((resolve) => idle.once('connect', () => resolve()));
      const start = Date.now();
      coordinator.child.kill('SIGTERM');
      const code = await coordinator.exited;
      const elapsed = Date.now() - start;
      silent.tcp.destroy();
      idle.destroy();
      console.log(`SIGTERM with two connections held open: exited after ${elapsed} ms`);
      assert.equal(code, 143);
      assert.ok(elapsed < 10_000, `exited after ${elapsed} ms`);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
