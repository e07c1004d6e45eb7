import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Socket } from 'socket.io-client';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { startCoordinator, type Coordinator } from '../../coordinator/server.ts';
import { ErrorCode, type Ack } from '../../core/protocol/errors.ts';
import type { UpdateAccepted } from '../../core/protocol/messages.ts';
import { encodeFrame, FrameKind } from '../../core/wire/frame.ts';
import { startTestFederation } from '../helpers/federation.ts';
import { joinAnsweringWith } from '../helpers/frame-participant.ts';

const ADMIN_TOKEN = 'metrics-test-admin-token-0123456';

/** The value of one sample line (`name{labels} value`) of a Prometheus text exposition, or undefined when absent. */
function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/**
 * /metrics on a real coordinator: one round with an honest sender and one
 * whose frame has the wrong length, scraped before and after. The counters
 * must move by exactly what happened, and the route needs the admin token.
 */
describe('/metrics', () => {
  let coordinator: Coordinator;
  let dataDir: string;
  const sockets: Socket[] = [];

  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'fl-metrics-'));
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
        '1',
        '--min-clients',
        '2',
        '--clients-per-round',
        '2',
        '--round-timeout',
        '60',
        '--admin-token',
        ADMIN_TOKEN,
      ],
      {},
    ) as CoordinatorConfig;
    coordinator = await startCoordinator(config);
  });

  after(async () => {
    for (const s of sockets) s.close();
    await coordinator?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  const scrape = async (): Promise<string> => {
    const response = await fetch(`${coordinator.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return response.text();
  };

  it('needs the admin token', async () => {
    assert.equal((await fetch(`${coordinator.url}/metrics`)).status, 401);
    const wrong = await fetch(`${coordinator.url}/metrics`, { headers: { authorization: 'Bearer not-the-token' } });
    assert.equal(wrong.status, 401);
  });

  it('counts a real round: participants, updates by outcome and code, rounds, bytes, histograms', { timeout: 60_000 }, async () => {
    const before = await scrape();
    assert.equal(sample(before, 'fl_updates_accepted_total'), 0);
    assert.equal(sample(before, 'fl_rounds_total', '{outcome="aggregated"}'), undefined);
    assert.equal(sample(before, 'fl_leader'), 1);
    assert.equal(sample(before, 'fl_redis_round_trip_seconds'), undefined, 'no Redis, no gauge');
    const bytesBefore = sample(before, 'fl_transport_received_bytes_total')!;

    const paramCount = coordinator.task.paramCount;
    const honest = encodeFrame(FrameKind.Update, new Float32Array(paramCount).fill(1e-4));
    const wrongLength = encodeFrame(FrameKind.Update, new Float32Array(10));
    const answers: Promise<Ack<UpdateAccepted>>[] = [];
    for (const frame of [honest, wrongLength]) sockets.push(await joinAnsweringWith(coordinator.url, frame, answers));
    const final = await coordinator.done;
    assert.deepEqual((await Promise.all(answers)).map((a) => (a.ok ? 'ok' : a.error.code)).sort(), ['ok', ErrorCode.WrongLength].sort());
    assert.equal(final.history[0]!.outcome, 'aggregated');

    const text = await scrape();
    assert.equal(sample(text, 'fl_participants', '{state="connected"}'), 2);
    assert.equal(sample(text, 'fl_updates_accepted_total'), 1);
    assert.equal(sample(text, 'fl_updates_rejected_total', `{code="${ErrorCode.WrongLength}"}`), 1);
    assert.equal(sample(text, 'fl_requests_rejected_total', `{code="${ErrorCode.WrongLength}"}`), 1);
    assert.equal(sample(text, 'fl_rounds_total', '{outcome="aggregated"}'), 1);
    assert.equal(sample(text, 'fl_round'), 1);
    assert.equal(sample(text, 'fl_round_update_bytes_total'), honest.byteLength);
    assert.equal(sample(text, 'fl_updates_accepted_bytes_total'), honest.byteLength);
    assert.ok(sample(text, 'fl_round_model_bytes_total')! > 0);
    // Both uploads crossed the wire, whatever the coordinator did with them.
    assert.ok(sample(text, 'fl_transport_received_bytes_total')! - bytesBefore > honest.byteLength + wrongLength.byteLength);
    assert.ok(sample(text, 'fl_transport_sent_bytes_total')! > 2 * 4 * paramCount, 'two join answers carried the model');
    assert.equal(sample(text, 'fl_round_duration_seconds_count'), 1);
    assert.equal(sample(text, 'fl_update_latency_seconds_count'), 1);
    assert.ok(sample(text, 'process_resident_memory_bytes')! > 0);

    // A second scrape observes no round twice.
    const again = await scrape();
    assert.equal(sample(again, 'fl_round_duration_seconds_count'), 1);
    assert.equal(sample(again, 'fl_rounds_total', '{outcome="aggregated"}'), 1);

    // The cluster layer's setters.
    coordinator.metrics.setLeader(false);
    coordinator.metrics.setRedisRoundTripMs(2.5);
    const cluster = await scrape();
    assert.equal(sample(cluster, 'fl_leader'), 0);
    assert.equal(sample(cluster, 'fl_redis_round_trip_seconds'), 0.0025);
  });
});

/**
 * Under secure aggregation a participant's update arrives as its masked
 * input (`secagg:masked`), not as `update`: each accepted one counts as an
 * accepted update, with its packed bytes.
 */
describe('/metrics under secure aggregation', () => {
  it('counts every accepted masked input as an accepted update, with its bytes', { timeout: 120_000 }, async () => {
    const participants = 3;
    const fed = await startTestFederation(
      [
        ...['--rounds', '1', '--min-clients', String(participants), '--clients-per-round', String(participants)],
        ...['--min-updates', String(participants), '--round-timeout', '60', '--seed', '7'],
        ...['--secure-aggregation', '--secagg-step-timeout', '30'],
      ],
      participants,
    );
    try {
      const final = await fed.coordinator.done;
      const round = final.history[0]!;
      assert.equal(round.outcome, 'aggregated', round.reason);
      assert.equal(round.received, participants);
      const { body } = await fed.coordinator.metrics.render();
      assert.equal(sample(body, 'fl_updates_accepted_total'), participants);
      // The round's input bytes are its masked vectors (secure-collection.ts): the same bytes, counted as each was acknowledged.
      assert.equal(sample(body, 'fl_updates_accepted_bytes_total'), round.bytesIn);
    } finally {
      await fed.close();
    }
  });
});
