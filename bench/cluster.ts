import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import type { FederationStatus, RoundRecord } from '../core/protocol/status.ts';
import { type CoordinatorProcess, launchCoordinator } from '../test/helpers/coordinator-process.ts';
import { nodeEntryArgs } from '../test/helpers/entry-bundle.ts';
import { freePort } from '../test/helpers/free-port.ts';
import { TestRedis } from '../test/support/redis.ts';
import type { ClientRoundReport } from './cluster-clients.ts';
import { median } from './stats.ts';

/**
 * A cluster's rounds end to end (docs/cluster.md): one redis-server (started
 * here: appendonly yes, appendfsync always), N coordinator processes with
 * `--redis`, and simulated participants (bench/cluster-clients.ts, no
 * training, real update frames of the demo MLP) in separate client
 * processes, spread evenly over the nodes, each connected by its node's own
 * address. The leader selects across all nodes; each node collects its own
 * participants' updates and the leader combines the nodes' partials.
 *
 * Per configuration, medians over the timed rounds (round 1 warms up and is
 * not timed):
 * - updates/s and MB/s per node: the updates its participants had
 *   acknowledged / (its last acknowledgement - the first round:start its
 *   participants received), and in all: every update / (last acknowledgement
 *   anywhere - first round:start anywhere);
 * - combine ms: the leader's own log line, from the close request to the
 *   members' partials added (coordinator/cluster/leader-rounds.ts); none
 *   with one node, where there are no members;
 * - round ms: the round record's duration (open to close, evaluation and
 *   storing not included);
 * - Redis bytes per round: Redis `INFO stats` total_net_input_bytes and
 *   total_net_output_bytes between the completion of round 1 and of the
 *   last round, divided by the rounds: everything the cluster sends
 *   through Redis (partials, model, commit, adapter, heartbeats, directory);
 * - peak RSS per node: VmHWM, reset once the node listens.
 *
 * On one machine N nodes share its cores: on this 2-core machine the numbers
 * measure a cluster's overheads, not scale-out speedup.
 *
 *   npm run bench -- cluster
 *   node --import tsx bench/cluster.ts [--nodes 1,2,4] [--participants 1000] [--selected N] [--rounds 3] [--timeout 240] [--leader-lease-ms MS]
 */

const { values: flags } = parseArgs({
  options: {
    nodes: { type: 'string', default: '1,2,4' },
    participants: { type: 'string', default: '1000' },
    /** Participants per round; by default every connected participant. */
    selected: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    /** Client processes per node. */
    'clients-per-node': { type: 'string', default: '1' },
    /** Seconds one configuration may take, connecting included; past it the configuration is reported as incomplete. */
    timeout: { type: 'string', default: '240' },
    /** Also run each configuration with the coordinator of another checkout (the code before a change), first, in the same run. */
    'baseline-root': { type: 'string' },
    /** Every node's --leader-lease-ms (the coordinator's default when absent). */
    'leader-lease-ms': { type: 'string' },
    /** Keep every node's log (stdout and stderr, timestamped) in this folder, a file per node of each configuration: fl-bench-cluster-XXXXXX-node-N.log. */
    'log-dir': { type: 'string' },
    help: { type: 'boolean' },
  },
});
if (flags.help) {
  console.log(
    'Usage: npm run bench -- cluster [--nodes 1,2,4] [--participants 1000] [--selected N] [--rounds 3] [--clients-per-node 1] [--timeout 240] [--baseline-root DIR] [--leader-lease-ms MS] [--log-dir DIR]',
  );
  process.exit(0);
}
const nodeCounts = flags.nodes!.split(',').map(Number);
const participantCounts = flags.participants!.split(',').map(Number);
const timedRounds = Number(flags.rounds);
const clientsPerNode = Number(flags['clients-per-node']);
const timeoutMs = Number(flags.timeout) * 1000;
const baselineRoot = flags['baseline-root'] && path.resolve(flags['baseline-root']);

interface Node {
  readonly url: string;
  readonly process: CoordinatorProcess;
  /** round → the leader's combine time, from its log line. */
  readonly combineMs: Map<number, number>;
  /** round → where that time went, where the log line says (members asked at close, request, read, add). */
  readonly combineSteps: Map<number, readonly number[]>;
}

interface ClientProcess {
  readonly node: number;
  readonly child: ChildProcess;
  readonly lines: AsyncIterator<string>;
}

const children: ChildProcess[] = [];
// A benchmark that fails or is interrupted must not leave its processes running (and holding the heavy-run lock).
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

async function startNode(redisUrl: string, dataDir: string, federation: readonly string[], checkout: string | undefined): Promise<Node> {
  const port = await freePort();
  const started = await launchCoordinator(
    [
      ...['--port', String(port), '--host', '127.0.0.1', '--data-dir', dataDir, '--redis', redisUrl],
      ...(flags['leader-lease-ms'] === undefined ? [] : ['--leader-lease-ms', flags['leader-lease-ms']]),
      ...federation,
    ],
    {},
    checkout === undefined ? undefined : path.join(checkout, 'coordinator/cli.ts'),
  );
  children.push(started.child);
  const combineMs = new Map<number, number>();
  const combineSteps = new Map<number, readonly number[]>();
  const lines = createInterface({ input: started.child.stdout! });
  const logDir = flags['log-dir'];
  // One file per node of each configuration (and each checkout): named by its data folder, unique to the run.
  const logFile =
    logDir === undefined ? undefined : path.join(logDir, `${path.basename(path.dirname(dataDir))}-${path.basename(dataDir)}.log`);
  if (logDir !== undefined) mkdirSync(logDir, { recursive: true });
  const keep = (line: string) => {
    if (logFile) appendFileSync(logFile, `${new Date().toISOString()} ${line}\n`);
  };
  lines.on('line', (line) => {
    keep(line);
    const match = /cluster: round (\d+): partials of .* combined in ([\d.]+) ms/.exec(line);
    if (match) combineMs.set(Number(match[1]), Number(match[2]));
    const steps = /cluster: round (\d+): .* \((\d+) asked at close, request ([\d.]+) ms, read ([\d.]+) ms, add ([\d.]+) ms\)/.exec(line);
    if (steps) combineSteps.set(Number(steps[1]), steps.slice(2).map(Number));
  });
  // What a node says on stderr (a stale leader's exit, a failed save) is shown, so an incomplete run says why.
  createInterface({ input: started.child.stderr! }).on('line', (line) => {
    keep(line);
    console.error(`node ${dataDir.split('-').at(-1)}: ${line}`);
  });
  // Forget the start-up peak (parsing the demo data), so VmHWM measures the run itself.
  writeFileSync(`/proc/${started.child.pid}/clear_refs`, '5');
  return { url: `http://127.0.0.1:${port}`, process: started, combineMs, combineSteps };
}

function peakRssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

async function startClients(node: number, url: string, count: number): Promise<ClientProcess> {
  const child = spawn(process.execPath, [...(await nodeEntryArgs('bench/cluster-clients.ts')), url, String(count)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  children.push(child);
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const first = await lines.next();
  if (first.done || first.value !== 'ready') throw new Error(`client process for node ${node} did not get ready: ${first.value}`);
  return { node, child, lines };
}

async function report(client: ClientProcess): Promise<ClientRoundReport[]> {
  client.child.stdin!.write('report\n');
  const line = await client.lines.next();
  if (line.done) throw new Error(`client process for node ${client.node} exited without its report`);
  return JSON.parse(line.value) as ClientRoundReport[];
}

async function status(url: string): Promise<FederationStatus> {
  return (await (await fetch(`${url}/api/status`)).json()) as FederationStatus;
}

async function redisBytes(client: Redis): Promise<number> {
  const info = await client.info('stats');
  const read = (name: string) => Number(new RegExp(`${name}:(\\d+)`).exec(info)![1]);
  return read('total_net_input_bytes') + read('total_net_output_bytes');
}

interface Row {
  nodes: number;
  participants: number;
  selected: number;
  completedRounds: number;
  perNode: { updatesPerSecond: number; peakRssMB: number; updates: number }[];
  updatesPerSecond: number;
  combineMs: number | undefined;
  /** Medians over the timed rounds: members asked at close, request ms, read ms, add ms. */
  combineSteps: readonly number[] | undefined;
  roundMs: number;
  redisMBPerRound: number;
  refused: number;
  frameMB: number;
  note?: string;
}

async function measure(nodeCount: number, participants: number, selected: number, checkout?: string): Promise<Row> {
  const redis = await TestRedis.start();
  const redisClient = new Redis(redis.url);
  const dataRoot = await mkdtemp(path.join(tmpdir(), 'fl-bench-cluster-'));
  const perNode = Math.ceil(participants / nodeCount);
  const federation = [
    ...['--min-clients', String(participants), '--clients-per-round', String(selected), '--min-updates', String(selected)],
    ...['--rounds', String(timedRounds + 1), '--round-timeout', '600', '--open'],
    // Every simulated participant connects from 127.0.0.1.
    ...['--max-connections', String(Math.max(perNode, 1000)), '--max-connections-per-ip', String(perNode)],
  ];
  const nodes: Node[] = [];
  const clients: ClientProcess[] = [];
  const deadline = Date.now() + timeoutMs;
  try {
    for (let n = 0; n < nodeCount; n++) nodes.push(await startNode(redis.url, path.join(dataRoot, `node-${n}`), federation, checkout));
    for (let n = 0; n < nodeCount; n++) {
      const onNode = Math.min(perNode, participants - n * perNode);
      for (let c = 0; c < clientsPerNode; c++) {
        const count = Math.floor(onNode / clientsPerNode) + (c < onNode % clientsPerNode ? 1 : 0);
        if (count > 0) clients.push(await startClients(n, nodes[n]!.url, count));
      }
    }
    // Round 1 warms up; Redis bytes are counted from its completion to the last round's.
    let history: readonly RoundRecord[] = [];
    let bytesAfterWarmUp: number | undefined;
    while (history.length < timedRounds + 1 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      // Any node's status shows the federation's history; a node that exited (a stale leader exits 75) is skipped.
      const live = nodes.find((node) => node.process.child.exitCode === null);
      if (live === undefined) break;
      history = (await status(live.url).catch(() => undefined))?.history ?? history;
      if (bytesAfterWarmUp === undefined && history.length >= 1) bytesAfterWarmUp = await redisBytes(redisClient);
    }
    const bytesAtEnd = await redisBytes(redisClient);
    const exits = nodes.flatMap((node, n) =>
      node.process.child.exitCode === null ? [] : [`node ${n} exited with ${node.process.child.exitCode}`],
    );
    const peaks = nodes.map((node) => (node.process.child.exitCode === null ? peakRssBytes(node.process.child.pid!) : Number.NaN));
    const reports = await Promise.all(clients.map(report));
    const completed = history.filter((r) => r.outcome === 'aggregated').length;
    const timed = history.filter((r) => r.round > 1 && r.outcome === 'aggregated').map((r) => r.round);
    const refused = reports.flat().reduce((sum, r) => sum + r.refused, 0);
    const refusal = reports.flat().find((r) => r.refusal)?.refusal;
    const windowOf = (list: readonly ClientRoundReport[]) => {
      const updates = list.reduce((sum, r) => sum + r.acked, 0);
      const seconds = (Math.max(...list.map((r) => r.lastAckMs)) - Math.min(...list.map((r) => r.firstStartMs))) / 1000;
      return { updates, rate: updates / seconds };
    };
    const perRound = (round: number, node?: number) =>
      windowOf(
        reports.flatMap((list, i) => (node === undefined || clients[i]!.node === node ? list.filter((r) => r.round === round) : [])),
      );
    const combine = timed
      .map((round) => nodes.map((n) => n.combineMs.get(round)).find((ms) => ms !== undefined))
      .filter((ms) => ms !== undefined);
    const steps = timed
      .map((round) => nodes.map((n) => n.combineSteps.get(round)).find((s) => s !== undefined))
      .filter((s) => s !== undefined);
    const durations = history.filter((r) => timed.includes(r.round)).map((r) => r.durationMs);
    const timedCount = Math.max(1, history.length - 1);
    return {
      nodes: nodeCount,
      participants,
      selected,
      completedRounds: completed,
      perNode: nodes.map((_, n) => ({
        updatesPerSecond: timed.length ? median(timed.map((round) => perRound(round, n).rate)) : Number.NaN,
        updates: timed.length ? median(timed.map((round) => perRound(round, n).updates)) : 0,
        peakRssMB: peaks[n]! / 1e6,
      })),
      updatesPerSecond: timed.length ? median(timed.map((round) => perRound(round).rate)) : Number.NaN,
      combineMs: combine.length ? median(combine) : undefined,
      combineSteps: steps.length ? [0, 1, 2, 3].map((i) => median(steps.map((s) => s[i]!))) : undefined,
      roundMs: durations.length ? median(durations) : Number.NaN,
      redisMBPerRound: bytesAfterWarmUp === undefined ? Number.NaN : (bytesAtEnd - bytesAfterWarmUp) / timedCount / 1e6,
      refused,
      frameMB: Math.max(0, ...reports.flat().map((r) => r.frameBytes)) / 1e6,
      ...(completed < timedRounds + 1
        ? {
            note: `${completed} of ${timedRounds + 1} rounds completed in ${timeoutMs / 1000} s${history.length ? `; last: ${history.at(-1)!.outcome} ${history.at(-1)!.reason ?? ''}` : ''}`,
          }
        : {}),
      ...(refusal ? { note: `refused: ${refusal}` } : {}),
      ...(exits.length ? { note: exits.join('; ') } : {}),
    };
  } finally {
    for (const client of clients) client.child.kill('SIGKILL');
    for (const node of nodes) {
      node.process.child.kill('SIGTERM');
      await node.process.exited;
    }
    redisClient.disconnect();
    await redis.cleanup();
    rmSync(dataRoot, { recursive: true, force: true, maxRetries: 5 });
  }
}

console.log(
  `Cluster rounds: N coordinator processes on one Redis, simulated participants in ${clientsPerNode} client process(es) per node, the demo MLP (float32 update frames), medians of ${timedRounds} timed rounds\n`,
);
if (baselineRoot)
  console.log(`Each configuration runs first with the coordinator of ${baselineRoot} ("before"), then with this checkout's ("after").\n`);
console.log(
  `|${baselineRoot ? ' code |' : ''} nodes | connected | selected | rounds done | updates/s in all | MB/s in all | per node: updates/s (MB/s) | round ms | leader combine ms | combine / round | Redis MB / round | per node: peak RSS MB |`,
);
console.log(`|${baselineRoot ? '---|' : ''}---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|`);
for (const participants of participantCounts) {
  const selected = flags.selected ? Number(flags.selected) : participants;
  for (const nodeCount of nodeCounts)
    for (const checkout of baselineRoot ? [baselineRoot, undefined] : [undefined]) {
      const row = await measure(nodeCount, participants, selected, checkout);
      const updateMB = row.frameMB;
      const combine = row.combineMs === undefined ? '—' : row.combineMs.toFixed(1);
      const share = row.combineMs === undefined ? '—' : `${((100 * row.combineMs) / row.roundMs).toFixed(1)}%`;
      console.log(
        `|${baselineRoot ? (checkout ? ' before |' : ' after |') : ''} ${row.nodes} | ${row.participants} | ${row.selected} | ${row.completedRounds} | ${row.updatesPerSecond.toFixed(0)} | ${(row.updatesPerSecond * updateMB).toFixed(0)} | ${row.perNode.map((p) => `${p.updatesPerSecond.toFixed(0)} (${(p.updatesPerSecond * updateMB).toFixed(0)})`).join(', ')} | ${row.roundMs.toFixed(0)} | ${combine} | ${share} | ${row.redisMBPerRound.toFixed(1)} | ${row.perNode.map((p) => p.peakRssMB.toFixed(0)).join(', ')} |` +
          (row.note ? ` ${row.note}` : '') +
          (row.combineSteps
            ? ` combine steps (medians): ${row.combineSteps[0]} member(s) asked at close, request ${row.combineSteps[1]!.toFixed(1)} ms, read ${row.combineSteps[2]!.toFixed(1)} ms, add ${row.combineSteps[3]!.toFixed(1)} ms`
            : ''),
      );
    }
}
process.exit(0);
