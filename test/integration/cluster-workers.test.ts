import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Participant } from '../../core/participant/participant.ts';
import type { RoundTrainer, RoundTrainResult } from '../../core/participant/trainers.ts';
import type { FederationStatus } from '../../core/protocol/status.ts';
import { nodeEntryArgs } from '../helpers/entry-bundle.ts';
import { TestRedis } from '../support/redis.ts';

/**
 * `--workers 2` (docs/cluster.md): the command line as `npm start` runs it
 * forks two cluster nodes behind one port. Participants on that one port,
 * half of them on long-polling only (every poll and every upload a new HTTP
 * request that @socket.io/sticky must route to the worker holding the
 * session), train rounds to completion; /api/status lists both nodes; a
 * worker killed with SIGKILL is replaced by a fresh node, its participants
 * come back through the port, and the rounds go on.
 */

const root = path.resolve(import.meta.dirname, '../..');

/** Trains nothing: a fixed small update; from its second round on it waits for `gate` (a round open while a worker dies). */
class GatedTrainer implements RoundTrainer {
  readonly differentiallyPrivate = false;
  readonly numExamples = 10;
  private rounds = 0;
  constructor(private readonly gate: Promise<void>) {}

  async train(globalWeights: Float32Array): Promise<RoundTrainResult> {
    if (++this.rounds === 2) await this.gate;
    return { update: new Float32Array(globalWeights.length).fill(1e-4), metrics: { loss: 0, accuracy: 0 }, numExamples: 10, trainMs: 1 };
  }
}

async function until<T>(read: () => T | Promise<T>, ok: (value: T) => boolean, timeoutMs: number, what: string): Promise<T> {
  const started = Date.now();
  for (;;) {
    // A request may fail while a worker dies: ask again.
    const value = await Promise.resolve()
      .then(read)
      .catch(() => undefined);
    if (value !== undefined && ok(value)) return value;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test('--workers 2: two cluster nodes on one port, long-polling sessions stick to their worker, a killed worker is replaced and rounds go on', {
  timeout: 60_000,
}, async (t) => {
  const redis = await TestRedis.start();
  const dataDir = await mkdtemp(path.join(tmpdir(), 'fl-workers-'));
  const participants: Participant[] = [];
  let primary: ChildProcess | undefined;
  t.after(async () => {
    for (const p of participants) p.stop();
    if (primary && primary.exitCode === null) {
      const exited = new Promise((resolve) => primary!.once('exit', resolve));
      primary.kill('SIGTERM');
      await exited;
    }
    await redis.cleanup();
    await rm(dataDir, { recursive: true, force: true, maxRetries: 5 });
  });

  const federation = ['--rounds', '3', '--min-clients', '4', '--clients-per-round', '4', '--min-updates', '2', '--round-timeout', '20'];
  const child = spawn(
    process.execPath,
    [
      ...(await nodeEntryArgs('coordinator/cli.ts')),
      ...['--redis', redis.url, '--workers', '2', '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, '--quiet'],
      ...federation,
    ],
    { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  primary = child;
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  void exited.then((code) => (output += `\n[primary exited: ${code}]`));
  const workers = () =>
    [...output.matchAll(/worker (\d) \(pid (\d+)\) serves as node (\w+)/g)].map((m) => ({ pid: Number(m[2]), node: m[3]! }));
  await until(
    () => output,
    (o) => o.includes('all 2 serve') || o.includes('[primary exited'),
    30_000,
    `both workers:\n${output}`,
  );
  assert.match(output, /all 2 serve/, output);
  const port = Number(/on port (\d+)/.exec(output)![1]);
  const url = `http://127.0.0.1:${port}`;
  const status = async (): Promise<FederationStatus> => (await (await fetch(`${url}/api/status`)).json()) as FederationStatus;

  let openGate!: () => void;
  const gate = new Promise<void>((resolve) => (openGate = resolve));
  const polling: Participant[] = [];
  for (let k = 0; k < 4; k++) {
    const participant = new Participant({
      url,
      client: { backend: 'test', platform: `node ${process.version}` },
      trainer: new GatedTrainer(gate),
      reconnectionDelayMs: 200,
      // Two on long-polling only: no upgrade, every request a new connection the primary routes by its sid.
      transports: k % 2 === 0 ? ['polling'] : ['websocket'],
    });
    participant.start();
    participants.push(participant);
    if (k % 2 === 0) polling.push(participant);
    // One at a time: the primary learns each session's worker before it places the next (least-connection).
    await until(
      () => participant.id,
      (id) => id !== undefined,
      10_000,
      `participant ${k} to join`,
    );
  }

  const first = (await until(status, (s) => s.history.length >= 1, 20_000, 'round 1')).history[0]!;
  assert.equal(first.outcome, 'aggregated', first.reason);
  assert.equal(first.received, 4);
  // The polling participants' uploads (a request body the primary forwards chunk by chunk) reached their session's worker.
  for (const p of polling) assert.equal(first.participants?.find((r) => r.id === p.id)?.outcome, 'received');

  const both = workers().map((w) => w.node);
  assert.equal(both.length, 2);
  // Both workers hold participants: the port spreads sessions over them. A node's status lists the other node's
  // participants from the rows each node writes to Redis once a second, so the listing may lag round 1 by that much.
  const nodesHolding = (s: FederationStatus) => new Set(s.participants.filter((p) => p.connected).map((p) => p.node));
  const seen = await until(status, (s) => nodesHolding(s).size === 2, 5_000, "every worker's participants in the status");
  assert.deepEqual(seen.cluster?.nodes.map((n) => n.id).sort(), [...both].sort(), 'cluster.nodes lists both workers');
  // Each node counts its port's bytes, its participants' uploads among them (a polling upload is forwarded by the primary: traffic.ts),
  // as its next heartbeat (once a second) reports them.
  await until(
    status,
    (s) => s.cluster!.nodes.filter((n) => both.includes(n.id) && n.bytesIn > 400_000).length === 2,
    5_000,
    'both nodes to report their uploads in bytes',
  );
  // Every worker serves /metrics too: a scrape of the shared port is answered by one of them.
  assert.match(await (await fetch(`${url}/metrics`)).text(), /^fl_transport_received_bytes_total \d+/m);

  // Round 2 is open and its participants train; SIGKILL the worker that does not lead.
  await until(status, (s) => s.round === 2, 10_000, 'round 2 to open');
  const victim = workers().find((w) => w.node !== seen.cluster?.leader)!;
  process.kill(victim.pid, 'SIGKILL');
  openGate();
  const replaced = await until(workers, (ws) => ws.length === 3, 25_000, `a fresh worker:\n${output}`);
  const fresh = replaced[2]!.node;
  assert.match(output, new RegExp(`pid ${victim.pid}\\) exited \\(SIGKILL\\); a fresh node replaces it`));

  const final = await until(status, (s) => s.history.length >= 3, 30_000, 'round 3');
  const second = final.history[1]!;
  assert.equal(second.outcome, 'aggregated', second.reason);
  assert.equal(second.received, 2, "round 2 closes on the surviving worker's participants");
  const third = final.history[2]!;
  assert.equal(third.outcome, 'aggregated', third.reason);
  assert.equal(third.received, 4, "the killed worker's participants came back through the port and trained in round 3");
  const live = final.cluster!.nodes.filter((n) => n.lastSeenMs < 3_000).map((n) => n.id);
  assert.ok(live.includes(fresh) && live.length === 2, `live nodes ${live}, the fresh one ${fresh}`);

  // SIGTERM to the primary shuts every worker down cleanly.
  child.kill('SIGTERM');
  assert.equal(await exited, 143);
  for (const w of replaced) assert.throws(() => process.kill(w.pid, 0), /ESRCH/, `worker pid ${w.pid} is gone`);
});
