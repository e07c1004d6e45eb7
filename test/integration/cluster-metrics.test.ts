import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Socket } from 'socket.io-client';
import type { Coordinator } from '../../coordinator/server.ts';
import { ErrorCode, type Ack } from '../../core/protocol/errors.ts';
import type { UpdateAccepted } from '../../core/protocol/messages.ts';
import { encodeFrame, FrameKind } from '../../core/wire/frame.ts';
import { joinAnsweringWith } from '../helpers/frame-participant.ts';
import { clusterFixture } from '../support/cluster-fixture.ts';
import { until } from '../helpers/until.ts';

const ADMIN_TOKEN = 'cluster-metrics-test-admin-token-01';

/** The value of one sample line (`name{labels} value`) of a Prometheus text exposition, or undefined when absent. */
function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/**
 * /metrics on every node of a cluster (docs/metrics.md, "On a cluster"): one
 * distributed round with an honest participant on the leader, and an honest
 * one and one whose frame has the wrong length on a member. Each node counts
 * its own participants, its own accepted and refused updates and their bytes,
 * says whether it leads, times Redis, shows the federation's rounds, and
 * answers only with the admin token.
 */
test("every node serves its own /metrics behind the admin token: a member counts its participants' updates, refusals and bytes", {
  timeout: 60_000,
}, async (t) => {
  const { start } = await clusterFixture(t, 'cluster-metrics');
  const federation = [
    '--rounds',
    '1',
    '--min-clients',
    '3',
    '--clients-per-round',
    '3',
    '--round-timeout',
    '30',
    '--admin-token',
    ADMIN_TOKEN,
  ];
  const leader = await start('leader', federation);
  await until(
    async () => leader.engine.control as string,
    (c) => c !== 'awaiting-start',
    15_000,
    'the first node to lead',
  );
  const member = await start('member', federation);
  const sockets: Socket[] = [];
  t.after(() => {
    for (const s of sockets) s.close();
  });
  const scrape = async (node: Coordinator): Promise<string> => {
    const response = await fetch(`${node.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.equal(response.status, 200);
    return response.text();
  };
  for (const node of [leader, member]) assert.equal((await fetch(`${node.url}/metrics`)).status, 401);

  const paramCount = leader.task.paramCount;
  const honest = encodeFrame(FrameKind.Update, new Float32Array(paramCount).fill(1e-4));
  const wrongLength = encodeFrame(FrameKind.Update, new Float32Array(10));
  const answers: Promise<Ack<UpdateAccepted>>[] = [];
  const send = async (node: Coordinator, frame: ArrayBuffer) => sockets.push(await joinAnsweringWith(node.url, frame, answers));
  await send(leader, honest);
  await send(member, honest);
  await send(member, wrongLength);
  const final = await leader.done;
  assert.equal(final.history[0]!.outcome, 'aggregated', final.history[0]!.reason);
  assert.equal(final.history[0]!.received, 2);
  assert.deepEqual(
    (await Promise.all(answers)).map((a) => (a.ok ? 'ok' : a.error.code)).sort(),
    ['ok', 'ok', ErrorCode.WrongLength].sort(),
  );

  // The member: its own two participants, its one accepted and one refused update and the accepted one's bytes; the federation's round once it followed.
  const ofMember = await until(
    () => scrape(member),
    (text) => sample(text, 'fl_rounds_total', '{outcome="aggregated"}') === 1,
    10_000,
    "the member to follow the leader's round",
  );
  assert.equal(sample(ofMember, 'fl_leader'), 0);
  assert.ok(sample(ofMember, 'fl_redis_round_trip_seconds')! >= 0, 'the Redis round trip is timed');
  assert.equal(sample(ofMember, 'fl_participants', '{state="connected"}'), 2);
  assert.equal(sample(ofMember, 'fl_updates_accepted_total'), 1);
  assert.equal(sample(ofMember, 'fl_updates_rejected_total', `{code="${ErrorCode.WrongLength}"}`), 1);
  assert.equal(sample(ofMember, 'fl_requests_rejected_total', `{code="${ErrorCode.WrongLength}"}`), 1);
  assert.equal(sample(ofMember, 'fl_updates_accepted_bytes_total'), honest.byteLength);
  assert.ok(sample(ofMember, 'fl_transport_received_bytes_total')! > honest.byteLength + wrongLength.byteLength);
  assert.equal(sample(ofMember, 'fl_round'), 1);
  assert.equal(sample(ofMember, 'fl_round_duration_seconds_count'), 1);
  assert.equal(sample(ofMember, 'fl_update_latency_seconds_count'), 2);

  // The leader: its own participant and update only; it leads.
  const ofLeader = await scrape(leader);
  assert.equal(sample(ofLeader, 'fl_leader'), 1);
  assert.ok(sample(ofLeader, 'fl_redis_round_trip_seconds')! >= 0);
  assert.equal(sample(ofLeader, 'fl_participants', '{state="connected"}'), 1);
  assert.equal(sample(ofLeader, 'fl_updates_accepted_total'), 1);
  assert.equal(sample(ofLeader, 'fl_updates_rejected_total', `{code="${ErrorCode.WrongLength}"}`), undefined);
  assert.equal(sample(ofLeader, 'fl_updates_accepted_bytes_total'), honest.byteLength);
  assert.equal(sample(ofLeader, 'fl_rounds_total', '{outcome="aggregated"}'), 1);
  assert.equal(sample(ofLeader, 'fl_round_duration_seconds_count'), 1);
  assert.equal(sample(ofLeader, 'fl_update_latency_seconds_count'), 2);
});
