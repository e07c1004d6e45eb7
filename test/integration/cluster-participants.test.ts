import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import type { RoundTrainer, RoundTrainResult } from '../../core/participant/trainers.ts';
import type { FederationStatus } from '../../core/protocol/status.ts';
import { launchCoordinator } from '../helpers/coordinator-process.ts';
import { freePort } from '../helpers/free-port.ts';
import { clusterFixture } from '../support/cluster-fixture.ts';

/**
 * Every node's /api/status lists every live node's participants, each with
 * its node (docs/cluster.md): node C, with none of its own, lists A's and
 * B's; one that leaves goes; a SIGKILLed node's go with its heartbeat.
 */

/** Trains only when selected: these nodes select no one (--min-clients above the participants), so it is never asked. */
class UnselectedTrainer implements RoundTrainer {
  readonly differentiallyPrivate = false;
  constructor(readonly numExamples: number) {}

  train(): Promise<RoundTrainResult> {
    return Promise.reject(new Error('no round is started in this test'));
  }
}

async function status(url: string): Promise<FederationStatus> {
  const response = await fetch(`${url}/api/status`);
  assert.equal(response.status, 200);
  return (await response.json()) as FederationStatus;
}

async function until(url: string, ok: (s: FederationStatus) => boolean, timeoutMs: number, what: string): Promise<FederationStatus> {
  const started = Date.now();
  for (;;) {
    const value = await status(url);
    if (ok(value)) return value;
    if (Date.now() - started > timeoutMs)
      throw new Error(`timed out waiting for ${what}: ${JSON.stringify(value.participants.map((p) => [p.id, p.node]))}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The connected participants a status lists, as `id@node`, sorted. */
const listed = (s: FederationStatus) =>
  s.participants
    .filter((p) => p.connected)
    .map((p) => `${p.id}@${p.node}`)
    .sort();

test("every node's status lists every live node's participants with their node; one that leaves and a dead node's go", {
  timeout: 60_000,
}, async (t) => {
  const cluster = await clusterFixture(t, 'cluster-participants');
  const { redis, dataDir } = cluster;
  // No round starts (50 needed), and a participant that leaves is forgotten at once.
  const federation = ['--rounds', '1', '--min-clients', '50', '--participant-grace', '0'];
  const start = (name: string) => cluster.start(name, federation);
  const attach = (url: string, numExamples: number) => cluster.attach(url, new UnselectedTrainer(numExamples));
  const a = await start('a');
  const c = await start('c');
  // B is a process of its own: the node SIGKILLed below.
  const port = await freePort();
  const urlB = `http://127.0.0.1:${port}`;
  const b = await launchCoordinator([
    '--port',
    String(port),
    '--host',
    '127.0.0.1',
    '--data-dir',
    path.join(dataDir, 'b'),
    '--redis',
    redis.url,
    ...federation,
  ]);
  t.after(async () => {
    b.child.kill('SIGKILL');
    await b.exited;
  });
  const self = async (url: string) => (await until(url, (s) => s.cluster?.self !== undefined, 10_000, 'the node id')).cluster!.self;
  const [idA, idB, idC] = [await self(a.url), await self(urlB), await self(c.url)];
  await until(c.url, (s) => s.cluster?.nodes.length === 3, 15_000, 'C to list the three nodes');

  const leaving = attach(a.url, 10);
  attach(a.url, 20);
  attach(urlB, 30);
  const ownIds = async (url: string, node: string) =>
    (
      await until(url, (s) => s.participants.some((p) => p.connected && p.node === node), 10_000, `node ${node}'s own participants`)
    ).participants
      .filter((p) => p.node === node)
      .map((p) => p.id);
  await until(a.url, (s) => s.participants.filter((p) => p.connected && p.node === idA).length === 2, 10_000, "A's two participants");
  const onA = await ownIds(a.url, idA);
  const [onB] = await ownIds(urlB, idB);
  const everyone = [...onA.map((id) => `${id}@${idA}`), `${onB}@${idB}`].sort();

  // C, with no participant of its own, lists A's and B's with their node, and counts them.
  const seenByC = await until(c.url, (s) => listed(s).length === 3, 10_000, "C to list A's and B's participants");
  assert.deepEqual(listed(seenByC), everyone);
  assert.equal(seenByC.participantTotals?.connected, 3);
  assert.equal(seenByC.participantTotals?.listed, 3);
  assert.equal(seenByC.participants.find((p) => p.node === idB)?.numExamples, 30);
  assert.ok(!seenByC.participants.some((p) => p.node === idC));
  // A lists B's too, and its own with its own id.
  assert.deepEqual(listed(await until(a.url, (s) => listed(s).length === 3, 10_000, "A to list B's participant")), everyone);

  // A participant that leaves A disappears from C.
  const leftId = (await status(a.url)).participants.find((p) => p.node === idA && p.numExamples === 10)!.id;
  leaving.stop();
  const afterLeave = await until(
    c.url,
    (s) => !s.participants.some((p) => p.id === leftId),
    10_000,
    'the departed participant to go from C',
  );
  assert.deepEqual(
    listed(afterLeave),
    everyone.filter((row) => row !== `${leftId}@${idA}`),
  );

  // B dies without a word: its participant goes from C with its heartbeat; A's stays.
  b.child.kill('SIGKILL');
  await b.exited;
  const afterDeath = await until(
    c.url,
    (s) => !s.participants.some((p) => p.node === idB),
    15_000,
    "the dead node's participant to go from C",
  );
  assert.deepEqual(
    listed(afterDeath),
    everyone.filter((row) => row !== `${leftId}@${idA}` && !row.endsWith(`@${idB}`)),
  );
  assert.equal(afterDeath.participantTotals?.connected, 1);
});
