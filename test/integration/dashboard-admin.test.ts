import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { io, type Socket } from 'socket.io-client';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import type { RunReport } from '../../coordinator/report/run-report.ts';
import { ADMIN_PATHS, ADMIN_PATH_PREFIXES } from '../../coordinator/security/admin-routes.ts';
import { startCoordinator, type Coordinator } from '../../coordinator/server.ts';
import { loadMnistDemo, type DemoData } from '../../coordinator/task/demo-data.ts';
import { ErrorCode, type Ack } from '../../core/protocol/errors.ts';
import type { AdminClientToServerEvents, AdminServerToClientEvents, FederationStatus } from '../../core/protocol/status.ts';
import { featureTensor } from '../../core/training/data-tensors.ts';
import { startNodeParticipants, stopNodeParticipants, type NodeParticipant } from '../helpers/node-participants.ts';

const ADMIN_TOKEN = 'dashboard-admin-test-token-0123';
const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };

type AdminSocket = Socket<AdminServerToClientEvents, AdminClientToServerEvents>;

/**
 * The operator's side end to end: a coordinator started with --manual-start
 * and an admin token, two real Node participants, and a dashboard client on
 * /admin that starts, pauses, changes settings, resumes, downloads the model,
 * the report and the history, and stops — every request acknowledged.
 */
describe('dashboard admin controls and downloads', () => {
  let coordinator: Coordinator;
  let dataDir: string;
  let participants: NodeParticipant[] = [];
  let admin: AdminSocket;
  let demo: DemoData;
  let latest: FederationStatus | undefined;
  const waiters: { predicate: (s: FederationStatus) => boolean; resolve: (s: FederationStatus) => void }[] = [];

  /** Resolves with the first pushed status that satisfies `predicate` (the current one included). */
  function statusWhere(predicate: (s: FederationStatus) => boolean): Promise<FederationStatus> {
    if (latest && predicate(latest)) return Promise.resolve(latest);
    return new Promise((resolve) => waiters.push({ predicate, resolve }));
  }

  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'fl-admin-'));
    const config = parseConfig(
      [
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--quiet',
        '--data-dir',
        dataDir,
        '--rounds',
        '10',
        '--min-clients',
        '2',
        '--clients-per-round',
        '2',
        '--round-timeout',
        '120',
        '--manual-start',
        '--admin-token',
        ADMIN_TOKEN,
      ],
      {},
    ) as CoordinatorConfig;
    coordinator = await startCoordinator(config);
    demo = await loadMnistDemo();
    // Eight shards, two trained: small rounds.
    participants = await startNodeParticipants(coordinator.url, demo, coordinator.task, 2, { totalShards: 8 });
    // Its own connection: the participants' manager in this process must not carry the dashboard.
    admin = io(`${coordinator.url}/admin`, { transports: ['websocket'], auth: { token: ADMIN_TOKEN }, forceNew: true });
    admin.on('status', (status) => {
      latest = status;
      for (const w of [...waiters]) {
        if (w.predicate(status)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(status);
        }
      }
    });
  });

  after(async () => {
    admin?.close();
    stopNodeParticipants(participants);
    await coordinator?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('validates admin payloads and acknowledges every request with a coded result', async () => {
    const waiting = await statusWhere((s) => s.participants.filter((p) => p.connected).length === 2);
    assert.equal(waiting.control, 'awaiting-start');
    assert.equal(waiting.history.length, 0);
    const bad = async (event: 'control' | 'settings', payload: unknown) => {
      const ack = (await (admin.timeout(10_000).emitWithAck as (e: string, p: unknown) => Promise<Ack<unknown>>)(
        event,
        payload,
      )) as Ack<unknown>;
      return ack.ok ? 'ok' : ack.error.code;
    };
    assert.equal(await bad('control', { action: 'reboot' }), ErrorCode.BadPayload);
    assert.equal(await bad('control', 'start'), ErrorCode.BadPayload);
    assert.equal(await bad('control', { action: 'start', extra: 1 }), ErrorCode.BadPayload);
    assert.equal(await bad('settings', { epochs: '2' }), ErrorCode.BadPayload);
    assert.equal(await bad('settings', { rounds: 3 }), ErrorCode.BadPayload);
    assert.equal(await bad('settings', {}), ErrorCode.BadPayload);
    assert.equal(await bad('settings', { epochs: 0 }), ErrorCode.InvalidSetting);
    assert.equal(await bad('settings', { clientsPerRound: 0 }), ErrorCode.InvalidSetting);
    assert.equal(await bad('control', { action: 'resume' }), ErrorCode.ControlNotAllowed);
    const unknown = (await (admin.timeout(10_000).emitWithAck as (e: string, p: unknown) => Promise<Ack<unknown>>)(
      'reset',
      {},
    )) as Ack<unknown>;
    assert.equal(unknown.ok ? 'ok' : unknown.error.code, ErrorCode.UnknownEvent);
    assert.equal(coordinator.engine.status().round, 0, 'nothing started');
  });

  it('starts, pauses after the open round, applies new settings from the next round, resumes', { timeout: 240_000 }, async () => {
    const started = await admin.timeout(10_000).emitWithAck('control', { action: 'start' });
    assert.deepEqual(started, { ok: true, value: { control: 'running' } });
    await statusWhere((s) => s.round >= 1);
    assert.deepEqual(await admin.timeout(10_000).emitWithAck('control', { action: 'pause' }), { ok: true, value: { control: 'paused' } });
    // Rounds are short: the pause may land in round 1 or a later one; that round closes normally.
    const paused = await statusWhere((s) => s.control === 'paused' && s.phase === 'waiting');
    const before = paused.history.length;
    assert.ok(before >= 1);
    assert.equal(paused.round, before, 'no round opened while paused');
    assert.match(paused.waitingFor ?? '', /resume/);

    const changed = await admin.timeout(10_000).emitWithAck('settings', { epochs: 2, learningRate: 0.05, roundTimeoutMs: 90_000 });
    assert.ok(changed.ok, JSON.stringify(changed));
    assert.equal(changed.value.fit.epochs, 2);
    assert.deepEqual(await admin.timeout(10_000).emitWithAck('control', { action: 'resume' }), { ok: true, value: { control: 'running' } });
    await statusWhere((s) => s.round > before);
    assert.ok((await admin.timeout(10_000).emitWithAck('control', { action: 'pause' })).ok);
    const after = await statusWhere((s) => s.control === 'paused' && s.phase === 'waiting');
    assert.ok(after.history.length > before);
    for (const r of after.history.slice(0, before))
      assert.deepEqual(r.applied, { clientsPerRound: 2, epochs: 1, batchSize: 32, learningRate: 0.1, deadlineMs: 120_000 });
    for (const r of after.history.slice(before))
      assert.deepEqual(r.applied, { clientsPerRound: 2, epochs: 2, batchSize: 32, learningRate: 0.05, deadlineMs: 90_000 });
    const last = after.history.at(-1)!;
    assert.equal(last.participants?.length, 2);
    assert.ok(last.participants!.every((p) => p.outcome === 'received' && p.durationMs > 0 && p.updateNorm! > 0));
    assert.equal(last.updateNorms?.count, 2);
  });

  it('serves the current model: tf.loadLayersModel reads it, and its test accuracy is the reported one', async () => {
    const status = coordinator.engine.status();
    assert.equal(status.control, 'paused', 'the model cannot move under the download');
    const unauthorized = await fetch(`${coordinator.url}/api/model/model.json`);
    assert.equal(unauthorized.status, 401);
    const head = await fetch(`${coordinator.url}/api/model/model.json`, { headers: auth });
    assert.equal(head.headers.get('x-model-version'), String(status.modelVersion));

    const model = await tf.loadLayersModel(`${coordinator.url}/api/model/model.json`, { requestInit: { headers: auth } });
    const xs = featureTensor(demo.test);
    const predicted = tf.tidy(() => (model.predict(xs) as tf.Tensor).argMax(1));
    const labels = await predicted.data();
    let correct = 0;
    for (let i = 0; i < demo.test.count; i++) if (labels[i] === demo.test.labels[i]) correct++;
    xs.dispose();
    predicted.dispose();
    model.dispose();
    const reported = [...status.history].reverse().find((r) => r.modelVersion === status.modelVersion && r.metrics)!.metrics!;
    assert.equal(correct / demo.test.count, reported.accuracy);
    assert.ok(reported.accuracy > 0.5, `trained: ${reported.accuracy}`);

    // ?version=N on model.json pins weights.bin too: tfjs copies the query string onto the weight URLs.
    const fetched: string[] = [];
    const recording = (input: RequestInfo | URL, init?: RequestInit) => {
      fetched.push(String(input instanceof Request ? input.url : input));
      return fetch(input, init);
    };
    const pinned = await tf.loadLayersModel(`${coordinator.url}/api/model/model.json?version=${status.modelVersion}`, {
      requestInit: { headers: auth },
      fetchFunc: recording,
    });
    pinned.dispose();
    assert.deepEqual(fetched, [
      `${coordinator.url}/api/model/model.json?version=${status.modelVersion}`,
      `${coordinator.url}/api/model/weights.bin?version=${status.modelVersion}`,
    ]);
    assert.equal((await fetch(`${coordinator.url}/api/model/model.json?version=999`, { headers: auth })).status, 404);

    const gone = await fetch(`${coordinator.url}/api/model/weights.bin?version=999`, { headers: auth });
    assert.equal(gone.status, 404);
    const malformed = await fetch(`${coordinator.url}/api/model/weights.bin?version=x`, { headers: auth });
    assert.equal(malformed.status, 400);
  });

  it('serves the report as JSON and as a self-contained page, and the history as CSV', async () => {
    const status = coordinator.engine.status();
    const response = await fetch(`${coordinator.url}/api/report.json`, { headers: auth });
    assert.equal(response.status, 200);
    const report = (await response.json()) as RunReport;
    assert.equal(report.final, false);
    assert.equal(report.task.name, coordinator.task.name);
    assert.equal(report.rounds.length, status.history.length);
    assert.equal(report.outcome.finalMetrics?.accuracy, status.history.at(-1)!.metrics!.accuracy);
    assert.equal(report.privacy.kind, 'none');
    assert.ok(report.audit.available, JSON.stringify(report.audit));
    assert.equal(report.audit.members, 1000);
    assert.equal(report.audit.nonMembers, demo.test.count);
    assert.equal(report.audit.modelVersion, status.modelVersion);
    assert.ok(report.audit.auc >= 0 && report.audit.auc <= 1);
    assert.ok(report.audit.advantage >= 0 && report.audit.advantage <= 1);

    const html = await fetch(`${coordinator.url}/api/report.html`, { headers: auth });
    assert.match(html.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    const page = await html.text();
    assert.doesNotMatch(page, /<script|<link|src=|href=/i, 'nothing external, nothing executable');
    assert.equal((page.match(/<svg /g) ?? []).length, 3, 'accuracy, loss, participants (no ε without DP)');
    assert.ok(page.includes(`AUC ${report.audit.auc.toFixed(3)}`));

    const csv = await (await fetch(`${coordinator.url}/api/history.csv`, { headers: auth })).text();
    const lines = csv.split('\r\n');
    assert.equal(
      lines[0],
      'round,outcome,reason,accuracy,loss,selected,received,dropped,rejected,declined,bytes_in,bytes_out,duration_ms,epsilon,delta',
    );
    assert.equal(lines.length, status.history.length + 2, 'the header, a line per round, and the final line end');
    assert.equal(lines.at(-1), '');
    const first = lines[1]!.split(',');
    assert.equal(first[0], '1');
    assert.equal(first[1], 'aggregated');
    assert.equal(Number(first[3]), status.history[0]!.metrics!.accuracy);
  });

  it('refuses every admin route without the admin token, and serves each one with it', async () => {
    assert.ok(ADMIN_PATHS.length >= 6, 'the status and the five downloads');
    for (const route of ADMIN_PATHS) {
      const refused = await fetch(`${coordinator.url}${route}`);
      assert.equal(refused.status, 401, route);
      assert.match(refused.headers.get('www-authenticate') ?? '', /^Bearer/, route);
      assert.equal(
        (await fetch(`${coordinator.url}${route}`, { headers: { authorization: 'Bearer not-the-token-000000000000' } })).status,
        401,
        route,
      );
      // Served with the token: a route in the list is a route that exists.
      assert.equal((await fetch(`${coordinator.url}${route}`, { headers: auth })).status, 200, route);
    }
    // Reserved subtrees are refused even where nothing is served yet.
    for (const prefix of ADMIN_PATH_PREFIXES) assert.equal((await fetch(`${coordinator.url}${prefix}not-yet`)).status, 401, prefix);
  });

  it('stops: the acknowledgement comes once the federation is done, and the final report is written', { timeout: 120_000 }, async () => {
    const stopped = await admin.timeout(60_000).emitWithAck('control', { action: 'stop' });
    assert.deepEqual(stopped, { ok: true, value: { control: 'stopped', doneReason: 'stopped by the operator' } });
    const final = await coordinator.finalReport;
    assert.ok(final);
    const written = JSON.parse(await readFile(path.join(dataDir, coordinator.task.name, 'report.json'), 'utf8')) as RunReport;
    assert.equal(written.final, true);
    assert.equal(written.outcome.doneReason, 'stopped by the operator');
    assert.equal(written.rounds.length, coordinator.engine.status().history.length, 'stopped while paused: no round was open');
    assert.equal(coordinator.engine.status().control, 'stopped');
    assert.match(await readFile(path.join(dataDir, coordinator.task.name, 'report.html'), 'utf8'), /Run report: mnist-demo/);
    const again = await admin.timeout(10_000).emitWithAck('control', { action: 'start' });
    assert.equal(again.ok ? 'ok' : again.error.code, ErrorCode.ControlNotAllowed);
  });
});
