import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { HeapReport } from './servers/heap-report.ts';
import { launchServer } from './servers/server-process.ts';
import { connect, join } from './simulated-participants.ts';

/**
 * Memory per connected participant: what one more idle participant costs a
 * coordinator, against what one more connection costs a bare socket.io
 * server (the transport's own share). Each server runs in a child process;
 * it reports its heap after two full collections with no participant, then
 * with N connected (joined, for the coordinator: no round starts, since
 * --min-clients is N + 1), and the difference divided by N is the cost of
 * one. The clients live in this process, in batches of 16 (simulated-participants.ts).
 * The heap is the main thread's, the one that takes the uploads; "RSS with
 * none" is the whole process's, every thread's (the coordinator's model
 * thread, which holds its tfjs, too).
 *
 *   npx tsx bench/participant-memory.ts --participants 1000,4000 [--baseline-root DIR]
 */
const { values: flags } = parseArgs({
  options: {
    participants: { type: 'string', default: '1000,4000' },
    /** Also measure the coordinator of another checkout (e.g. the code before a change), in the same run. */
    'baseline-root': { type: 'string' },
    help: { type: 'boolean' },
  },
});
if (flags.help) {
  console.log('Usage: npx tsx bench/participant-memory.ts [--participants 1000,4000] [--baseline-root DIR]');
  process.exit(0);
}
const sizes = flags.participants.split(',').map(Number);
if (sizes.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--participants: positive integers, got ${flags.participants}`);
const root = path.resolve(import.meta.dirname, '..');
const baselineRoot = flags['baseline-root'] && path.resolve(flags['baseline-root']);

interface Server {
  readonly url: string;
  heap(): Promise<HeapReport>;
  stop(): Promise<void>;
}

async function startServer(script: string, args: string[], checkout: string): Promise<Server> {
  const heapReport = path.join(root, 'bench/servers/heap-report.ts');
  const { child, url, stop } = await launchServer(script, process.execPath, ['--import', 'tsx', '--import', heapReport, script, ...args], {
    cwd: checkout,
    ipc: true,
  });
  return {
    url,
    heap: () =>
      new Promise<HeapReport>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${script} did not report its heap within 30 s`)), 30_000);
        child.once('message', (report) => {
          clearTimeout(timer);
          resolve(report as HeapReport);
        });
        child.send('heap');
      }),
    stop,
  };
}

interface PerParticipant {
  readonly heapBytes: number;
  readonly externalBytes: number;
  readonly rssBytes: number;
  readonly idleHeapBytes: number;
  /** The whole process's resident memory with no participant: every thread (the coordinator's model thread too). */
  readonly idleRssBytes: number;
}

async function measure(server: Server, n: number, joinThem: boolean): Promise<PerParticipant> {
  // Let start-up settle (the coordinator's first status, timers) before the empty measurement.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const idle = await server.heap();
  const sockets = await connect(server.url, n);
  if (joinThem) await join(sockets);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const full = await server.heap();
  for (const socket of sockets) socket.close();
  await server.stop();
  return {
    heapBytes: (full.heapUsed - idle.heapUsed) / n,
    externalBytes: (full.external - idle.external) / n,
    rssBytes: (full.rss - idle.rss) / n,
    idleHeapBytes: idle.heapUsed,
    idleRssBytes: idle.rss,
  };
}

async function coordinator(n: number, checkout: string): Promise<PerParticipant> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'fl-bench-memory-'));
  // No round starts (min-clients n + 1); the connection caps as in bench/coordinator.ts (every client comes from 127.0.0.1).
  const limits = ['--max-connections', String(Math.max(n, 1000)), '--max-connections-per-ip', String(n)];
  const args = ['--model', '2nn', '--min-clients', String(n + 1), ...limits];
  const server = await startServer('bench/servers/coordinator-server.ts', [...args, '--data-dir', dataDir], checkout);
  try {
    return await measure(server, n, true);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const kb = (bytes: number) => (bytes / 1024).toFixed(1);
console.log(
  `| participants | server | heap per participant, KB | external per participant, KB | RSS per participant, KB | heap with none, MB | RSS with none, MB | heap per participant beyond the bare server's, KB |`,
);
console.log('|---:|---|---:|---:|---:|---:|---:|---:|');
for (const n of sizes) {
  const echoServer = await startServer('bench/servers/echo-server.ts', ['2000000'], root);
  const echo = await measure(echoServer, n, false);
  const rows: [string, PerParticipant][] = [['bare socket.io', echo]];
  if (baselineRoot) rows.push(['coordinator (baseline)', await coordinator(n, baselineRoot)]);
  rows.push(['coordinator', await coordinator(n, root)]);
  for (const [name, m] of rows) {
    console.log(
      `| ${n} | ${name} | ${kb(m.heapBytes)} | ${kb(m.externalBytes)} | ${kb(m.rssBytes)} | ${(m.idleHeapBytes / 1e6).toFixed(1)} | ${(m.idleRssBytes / 1e6).toFixed(0)} | ${name === 'bare socket.io' ? '–' : kb(m.heapBytes - echo.heapBytes)} |`,
    );
  }
}
process.exit(0);
