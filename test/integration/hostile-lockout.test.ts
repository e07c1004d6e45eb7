import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect as tcpConnect, type Socket as TcpSocket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { io, type Socket } from 'socket.io-client';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { mintCredentials, revokeCredentials, type CredentialFile } from '../../coordinator/security/credentials.ts';
import { startCoordinator, type Coordinator } from '../../coordinator/server.ts';
import { ErrorCode } from '../../core/protocol/errors.ts';

/**
 * Issue 16 item 3 (lock-out) and the admission half of item 2: raw
 * transports that never open a namespace, and sockets over the per-address
 * and per-credential caps, must not keep honest participants out.
 */

const TOKEN = 'lockout-test-join-token-0001';
const MAX_CONNECTIONS = 60;
const RAW_ATTACKERS = 100;

const dirs: string[] = [];
const clients: Socket[] = [];

async function coordinatorWith(flags: string[]): Promise<Coordinator> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'fl-lockout-'));
  dirs.push(dataDir);
  // --manual-start: no round runs; only admission is under test.
  const config = parseConfig(
    [
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--quiet',
      '--manual-start',
      '--admin-token',
      'lockout-test-admin-token-0002',
      '--data-dir',
      dataDir,
      ...flags,
    ],
    {},
  ) as CoordinatorConfig;
  return startCoordinator(config, { log: () => {} });
}

function client(url: string, token: string): Socket {
  const socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true, auth: { token } });
  clients.push(socket);
  return socket;
}

/** 'connected', or the code of the refused handshake. */
function handshake(socket: Socket, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('timed out'), timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve('connected');
    });
    socket.once('connect_error', (error: Error & { data?: { code?: string } }) => {
      clearTimeout(timer);
      resolve(error.data?.code ?? `no code (${error.message})`);
    });
  });
}

/** Opens a raw Engine.IO WebSocket transport and never joins a namespace. Resolves with the HTTP status line. */
function rawTransport(port: number): Promise<{ status: string; tcp: TcpSocket }> {
  return new Promise((resolve) => {
    const tcp = tcpConnect(port, '127.0.0.1');
    tcp.on('error', () => {});
    let head = '';
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n');
      if (end >= 0) {
        tcp.off('data', onData);
        resolve({ status: head.slice(0, end), tcp });
      }
    };
    tcp.on('data', onData);
    tcp.on('close', () => resolve({ status: head.split('\r\n')[0] || 'closed', tcp }));
    tcp.once('connect', () => {
      tcp.write(
        `GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
  });
}

after(async () => {
  for (const s of clients) s.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('lock-out by raw transports', () => {
  let coordinator: Coordinator;
  before(async () => {
    coordinator = await coordinatorWith(['--join-token', TOKEN, '--max-connections', String(MAX_CONNECTIONS)]);
  });
  after(() => coordinator.close());

  it(`${RAW_ATTACKERS} raw transports re-opened continuously do not keep honest participants out`, async () => {
    let stop = false;
    let opened = 0;
    const attackers: Promise<void>[] = [];
    const live = new Set<TcpSocket>();
    for (let i = 0; i < RAW_ATTACKERS; i++) {
      attackers.push(
        (async () => {
          while (!stop) {
            const { tcp } = await rawTransport(coordinator.port);
            opened++;
            live.add(tcp);
            // Held until the server closes it, then re-opened at once.
            await new Promise<void>((resolve) => (tcp.destroyed ? resolve() : tcp.once('close', () => resolve())));
            live.delete(tcp);
          }
        })(),
      );
    }
    // Let the attackers fill every slot they can.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const results: string[] = [];
    for (let i = 0; i < 13; i++) {
      const socket = client(coordinator.url, TOKEN);
      results.push(await handshake(socket));
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    stop = true;
    for (const tcp of live) tcp.destroy();
    await Promise.all(attackers);
    const joined = results.filter((r) => r === 'connected').length;
    console.log(
      `# ${opened} raw transports opened; honest handshakes: ${joined} of ${results.length} connected (${JSON.stringify(results.filter((r) => r !== 'connected'))})`,
    );
    assert.ok(opened >= RAW_ATTACKERS, 'the attackers opened their transports');
    assert.equal(joined, results.length, `every honest handshake got through: ${JSON.stringify(results)}`);
  });

  it('over the connection cap, a WebSocket upgrade gets HTTP 403, as documented', async () => {
    for (const s of clients.splice(0)) s.close();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const fillers: Socket[] = [];
    for (let i = 0; i < MAX_CONNECTIONS; i++) {
      const s = client(coordinator.url, TOKEN);
      fillers.push(s);
      assert.equal(await handshake(s), 'connected', `filler ${i}`);
    }
    // At the cap, a socket.io handshake gets the coded refusal...
    assert.equal(await handshake(client(coordinator.url, TOKEN)), ErrorCode.TooManyConnections);
    // ...and raw transports beyond the small waiting pool get HTTP 403 (engine.io alone answered 400).
    const held: TcpSocket[] = [];
    let status = '';
    for (let i = 0; i < 40 && !/ 403 /.test(status); i++) {
      const raw = await rawTransport(coordinator.port);
      held.push(raw.tcp);
      status = raw.status;
    }
    for (const tcp of held) tcp.destroy();
    assert.match(status, /^HTTP\/1\.1 403 /, status);
    assert.ok(held.length <= 17, `403 once the waiting pool (16) was full, after ${held.length} transports`);
    // And with room again, the same upgrade is accepted (101).
    fillers.pop()!.close();
    let accepted = '';
    for (let i = 0; i < 50 && !/ 101 /.test(accepted); i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      const raw = await rawTransport(coordinator.port);
      raw.tcp.destroy();
      accepted = raw.status;
    }
    assert.match(accepted, /^HTTP\/1\.1 101 /);
    for (const s of fillers) s.close();
  });
});

describe('per-address and per-credential caps', () => {
  it('one address may hold --max-connections-per-ip authenticated connections', async () => {
    const coordinator = await coordinatorWith(['--join-token', TOKEN, '--max-connections', '50', '--max-connections-per-ip', '5']);
    try {
      const results: string[] = [];
      for (let i = 0; i < 7; i++) results.push(await handshake(client(coordinator.url, TOKEN)));
      assert.deepEqual(results, [
        'connected',
        'connected',
        'connected',
        'connected',
        'connected',
        ErrorCode.TooManyConnections,
        ErrorCode.TooManyConnections,
      ]);
    } finally {
      for (const s of clients.splice(0)) s.close();
      await coordinator.close();
    }
  });

  it('a credential holds at most --max-connections-per-credential connections; a revoked one is closed and refused', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'fl-credentials-'));
    dirs.push(dir);
    const file = path.join(dir, 'credentials.json');
    const minted = mintCredentials([], 2);
    const content: CredentialFile = { version: 1, credentials: minted.entries };
    await writeFile(file, JSON.stringify(content));
    const [alice, bob] = minted.tokens;
    const coordinator = await coordinatorWith(['--credentials', file, '--max-connections-per-credential', '1']);
    try {
      const first = client(coordinator.url, alice!.token);
      assert.equal(await handshake(first), 'connected');
      assert.equal(
        await handshake(client(coordinator.url, alice!.token)),
        ErrorCode.TooManyConnections,
        'a second connection on the same credential',
      );
      assert.equal(await handshake(client(coordinator.url, bob!.token)), 'connected', 'another credential is unaffected');
      assert.equal(await handshake(client(coordinator.url, TOKEN)), ErrorCode.Unauthorized, 'a token that is no credential');
      // Revoke alice's credential in the file: the running coordinator closes her connection.
      const closed = new Promise<string>((resolve) => first.once('disconnect', (reason) => resolve(reason)));
      await writeFile(file, JSON.stringify(revokeCredentials(content, [alice!.id])));
      assert.equal(await closed, 'io server disconnect');
      assert.equal(await handshake(client(coordinator.url, alice!.token)), ErrorCode.Unauthorized, 'a revoked credential');
    } finally {
      for (const s of clients.splice(0)) s.close();
      await coordinator.close();
    }
  });
});
