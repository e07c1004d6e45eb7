import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { io, type Socket } from 'socket.io-client';
import { ConfigError, parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { startCoordinator, type Coordinator } from '../../coordinator/server.ts';
import { ErrorCode, type Ack } from '../../core/protocol/errors.ts';
import { PROTOCOL_VERSION, type JoinAccepted } from '../../core/protocol/messages.ts';
import type { FederationStatus } from '../../core/protocol/status.ts';
import { startCoordinatorProcess } from '../../e2e/helpers/coordinator-process.ts';
import { nodeEntryArgs } from '../helpers/entry-bundle.ts';

/**
 * HTTPS and WSS with a self-signed certificate made here with openssl: the
 * coordinator serves its pages, API and socket.io over TLS, prints https
 * URLs, checks join tokens over WSS, and keeps its dashboard open but
 * read-only when it has no admin token. Bad certificate flags stop the CLI
 * with exit code 2.
 */

const repoRoot = path.resolve(import.meta.dirname, '../..');
const JOIN_TOKEN = 'tls-test-join-token-0123456789';

/** Makes a self-signed certificate for localhost and 127.0.0.1. openssl is required: the test fails, clearly, without it. */
function makeCertificate(dir: string, name: string): { cert: string; key: string } {
  const cert = path.join(dir, `${name}-cert.pem`);
  const key = path.join(dir, `${name}-key.pem`);
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-sha256', '-days', '2'];
  args.push('-keyout', key, '-out', cert, '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1');
  try {
    execFileSync('openssl', args, { stdio: 'pipe' });
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === 'ENOENT')
      throw new Error(
        'this test needs the openssl command to make its certificate: install OpenSSL (e.g. apt-get install openssl) and put it on PATH',
      );
    throw new Error(`openssl could not make a test certificate: ${e.stderr?.toString() ?? e.message}`);
  }
  return { cert, key };
}

function httpsGet(url: string, options: https.RequestOptions = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, options, (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

describe('TLS: HTTPS and WSS', () => {
  let dir: string;
  let ca: Buffer;
  /** The same certificate as text, as socket.io-client's `ca` option wants it. */
  let pem: string;
  let files: { cert: string; key: string };
  let coordinator: Coordinator;
  const sockets: Socket[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'fl-tls-'));
    files = makeCertificate(dir, 'server');
    ca = await readFile(files.cert);
    pem = ca.toString('utf8');
    const config = parseConfig(
      ['--port', '0', '--host', '127.0.0.1', '--rounds', '1', '--min-clients', '5', '--data-dir', path.join(dir, 'runs'), '--quiet'].concat(
        ['--tls-cert', files.cert, '--tls-key', files.key, '--join-token', JOIN_TOKEN],
      ),
      {},
    ) as CoordinatorConfig;
    coordinator = await startCoordinator(config);
  });

  after(async () => {
    for (const s of sockets) s.close();
    await coordinator?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('prints an https URL and serves its API over HTTPS with a certificate that verifies', async () => {
    assert.match(coordinator.url, /^https:\/\/localhost:\d+$/);
    const task = await httpsGet(`${coordinator.url}/api/task`, { ca });
    assert.equal(task.status, 200);
    assert.equal(JSON.parse(task.body).paramCount, coordinator.task.paramCount);
    // Without the certificate as a trusted CA, the client refuses the self-signed one: real TLS.
    await assert.rejects(httpsGet(`${coordinator.url}/api/task`), /self[- ]signed/i);
    // Plain HTTP on the TLS port gets no API answer.
    const plain = await new Promise<string>((resolve) => {
      http
        .get(`http://127.0.0.1:${coordinator.port}/api/task`, (response) => resolve(`HTTP ${response.statusCode}`))
        .on('error', (error) => resolve(`error ${error.message}`));
    });
    assert.ok(!plain.startsWith('HTTP 200'), plain);
  });

  it('accepts a participant over WSS with its join token and refuses one without', async () => {
    const good = io(coordinator.url, {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      ca: pem,
      auth: { token: JOIN_TOKEN },
    });
    sockets.push(good);
    const joined: Ack<JoinAccepted> = await good.emitWithAck('join', {
      protocolVersion: PROTOCOL_VERSION,
      client: { backend: 'cpu', numExamples: 10 },
    });
    assert.ok(joined.ok, JSON.stringify(joined));
    assert.equal(joined.value.task.paramCount, coordinator.task.paramCount);

    const bad = io(coordinator.url, { transports: ['websocket'], reconnection: false, forceNew: true, ca: pem });
    sockets.push(bad);
    const error = await new Promise<Error & { data?: { code?: string } }>((resolve) => bad.once('connect_error', resolve));
    assert.equal(error.data?.code, ErrorCode.Unauthorized);
  });

  it('without an admin token, the dashboard is open but read-only, and so is /api/status', async () => {
    const dashboard = io(`${coordinator.url}/admin`, { transports: ['websocket'], reconnection: false, forceNew: true, ca: pem });
    sockets.push(dashboard);
    const status = await new Promise<FederationStatus>((resolve) => dashboard.once('status', resolve));
    assert.equal(status.task.paramCount, coordinator.task.paramCount);
    const refused: Ack<never> = await dashboard.timeout(5000).emitWithAck('admin:stop', {});
    assert.ok(!refused.ok);
    assert.equal(refused.error.code, ErrorCode.Unauthorized);
    assert.equal(coordinator.engine.isDone, false, 'the admin event changed nothing');
    const api = await httpsGet(`${coordinator.url}/api/status`, { ca });
    assert.equal(api.status, 200);
    assert.ok(!api.body.includes(JOIN_TOKEN));
  });

  it("refuses a key that is not the certificate's, a file that is no certificate, and a missing file", async () => {
    const other = makeCertificate(dir, 'other');
    assert.throws(
      () => parseConfig(['--tls-cert', files.cert, '--tls-key', other.key], {}),
      (e: Error) => e instanceof ConfigError && /does not belong to the certificate/.test(e.message),
    );
    const junk = path.join(dir, 'junk.pem');
    await writeFile(junk, 'not a certificate\n');
    assert.throws(
      () => parseConfig(['--tls-cert', junk, '--tls-key', files.key], {}),
      (e: Error) => e instanceof ConfigError && /not a PEM certificate/.test(e.message),
    );
    assert.throws(
      () => parseConfig(['--tls-cert', files.cert, '--tls-key', junk], {}),
      (e: Error) => e instanceof ConfigError && /not an unencrypted PEM private key/.test(e.message),
    );
  });

  it('the CLI exits with code 2 and a clear message when the certificate file is missing', async () => {
    const missing = path.join(dir, 'missing-cert.pem');
    const result = spawnSync(
      process.execPath,
      [...(await nodeEntryArgs('coordinator/cli.ts')), '--tls-cert', missing, '--tls-key', files.key],
      {
        cwd: repoRoot,
        encoding: 'utf8',
      },
    );
    assert.equal(result.status, 2, result.stderr);
    assert.ok(result.stderr.includes(`error: --tls-cert ${missing}: cannot read it (no such file)`), result.stderr);
  });

  it('the CLI prints https URLs and placeholders, never the tokens', { timeout: 120_000 }, async () => {
    const adminToken = 'tls-test-admin-token-987654321';
    const tokenFile = path.join(dir, 'join-tokens.txt');
    await writeFile(tokenFile, `# test\n${JOIN_TOKEN}\n`);
    const cli = await startCoordinatorProcess([
      '--tls-cert',
      files.cert,
      '--tls-key',
      files.key,
      '--join-token-file',
      tokenFile,
      '--admin-token',
      adminToken,
    ]);
    try {
      assert.match(cli.url, /^https:\/\/localhost:\d+$/);
      const text = cli.output.join('\n');
      assert.match(text, /participants: https:\/\/localhost:\d+\/\?shard=1\/3&token=JOIN_TOKEN/);
      assert.match(text, /dashboard: +https:\/\/localhost:\d+\/dashboard\?admin-token=ADMIN_TOKEN/);
      assert.match(text, /join token required \(1 known\); dashboard needs the admin token; HTTPS\/WSS/);
      assert.ok(!text.includes('WARNING'));
      const status = await httpsGet(`${cli.url}/api/status`, { ca });
      assert.equal(status.status, 401);
      assert.equal(JSON.parse(status.body).error.code, ErrorCode.Unauthorized);
      const allowed = await httpsGet(`${cli.url}/api/status`, { ca, headers: { authorization: `Bearer ${adminToken}` } });
      assert.equal(allowed.status, 200);
      for (const token of [JOIN_TOKEN, adminToken]) assert.ok(!cli.output.join('\n').includes(token) && !allowed.body.includes(token));
    } finally {
      await cli.stop();
    }
  });
});
