import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Socket } from 'socket.io-client';
import type { RoundStartMessage } from '../core/protocol/messages.ts';
import { encodeFrame, FrameKind } from '../core/wire/frame.ts';
import { connect, join, updateMessage } from './simulated-participants.ts';
import { median } from './stats.ts';

/**
 * Coordinator throughput: N simulated participants (socket.io clients in this
 * process, no training) upload 2NN-sized updates (199,210 parameters) to the
 * real coordinator, which validates, decodes and aggregates them. The same
 * clients then upload the same payloads to a bare socket.io server that only
 * acknowledges them: the baseline. Both servers run in child processes so
 * their peak RSS (VmHWM, reset once the server is up) can be read.
 *
 * Timing: every client first holds its round's payload; on "go" all send at
 * once; the time runs until the last acknowledgement. Broadcasting the model
 * and evaluating it are outside the window (they do not depend on uploads).
 */

const { values: flags } = parseArgs({
  options: {
    participants: { type: 'string', default: '50,100,200' },
    rounds: { type: 'string', default: '3' },
    json: { type: 'string' },
    /** Write the coordinator's CPU profile (node --cpu-prof) into this folder; not for timed runs. */
    'profile-dir': { type: 'string' },
    /** Also measure the coordinator of another checkout (e.g. the code before a change), in the same run. */
    'baseline-root': { type: 'string' },
    help: { type: 'boolean' },
  },
});
if (flags.help) {
  console.log('Usage: npm run bench -- coordinator [--participants 50,100,200] [--rounds 3] [--json FILE]');
  process.exit(0);
}
const sizes = flags.participants!.split(',').map(Number);
const rounds = Number(flags.rounds);
const PARAMS = 199_210; // McMahan et al. 2NN on MNIST
const root = path.resolve(import.meta.dirname, '..');

interface ServerProcess {
  url: string;
  child: ChildProcess;
  peakRssBytes(): number;
  stop(): Promise<void>;
}

async function startServer(script: string, args: string[], nodeFlags: string[] = [], checkout = root): Promise<ServerProcess> {
  const child = spawn(process.execPath, [...nodeFlags, '--import', 'tsx', script, ...args], {
    cwd: checkout,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  // A benchmark that fails must not leave its server running (and holding the heavy-run lock it inherited).
  process.once('exit', () => child.kill('SIGKILL'));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      const match = /listening (\S+)/.exec(chunk.toString());
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
  });
  // Forget the start-up peak (parsing the demo data), so VmHWM measures the run itself.
  writeFileSync(`/proc/${child.pid}/clear_refs`, '5');
  return {
    url,
    child,
    peakRssBytes() {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
    },
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      // SIGTERM: the servers exit through process.exit, so a --cpu-prof profile gets written.
      child.kill('SIGTERM');
      await exited;
    },
  };
}

const update = new Float32Array(PARAMS).map((_, i) => Math.sin(i) * 1e-3);
const frame = encodeFrame(FrameKind.Update, update);

interface Measure {
  seconds: number[];
  peakRssBytes: number;
}

async function measureCoordinator(n: number, checkout = root): Promise<Measure> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'fl-bench-'));
  const server = await startServer(
    'bench/servers/coordinator-server.ts',
    [
      '--model',
      '2nn',
      '--min-clients',
      String(n),
      '--clients-per-round',
      String(n),
      '--min-updates',
      String(n),
      '--rounds',
      String(rounds + 2),
      // Every simulated participant connects from 127.0.0.1.
      '--max-connections',
      String(Math.max(n, 1000)),
      '--max-connections-per-ip',
      String(n),
      '--round-timeout',
      '600',
      '--data-dir',
      dataDir,
    ],
    flags['profile-dir'] ? ['--cpu-prof', '--cpu-prof-dir', flags['profile-dir']] : [],
    checkout,
  );
  const sockets = await connect(server.url, n);
  const pending = new Map<number, { message: RoundStartMessage; socket: Socket }[]>();
  const waiters = new Map<number, () => void>();
  for (const socket of sockets) {
    socket.on('round:start', (message: RoundStartMessage) => {
      const list = pending.get(message.round) ?? [];
      list.push({ message, socket });
      pending.set(message.round, list);
      if (list.length === n) waiters.get(message.round)?.();
    });
  }
  await join(sockets);
  const seconds: number[] = [];
  // Round 1 warms up the JIT and is not timed.
  for (let round = 1; round <= rounds + 1; round++) {
    if ((pending.get(round)?.length ?? 0) < n) await new Promise<void>((resolve) => waiters.set(round, resolve));
    const started = performance.now();
    const acks = await Promise.all(
      pending.get(round)!.map(({ message, socket }) => socket.emitWithAck('update', updateMessage(round, message.model.version, frame))),
    );
    if (round > 1) seconds.push((performance.now() - started) / 1000);
    const refused = acks.filter((a) => !a.ok);
    if (refused.length) throw new Error(`coordinator refused ${refused.length} updates: ${JSON.stringify(refused[0])}`);
    pending.delete(round);
  }
  const peakRssBytes = server.peakRssBytes();
  for (const s of sockets) s.close();
  await server.stop();
  rmSync(dataDir, { recursive: true, force: true });
  return { seconds, peakRssBytes };
}

async function measureEcho(n: number): Promise<Measure> {
  const server = await startServer('bench/servers/echo-server.ts', [String(frame.byteLength + 64 * 1024)]);
  const sockets = await connect(server.url, n);
  const seconds: number[] = [];
  for (let round = 1; round <= rounds + 1; round++) {
    const started = performance.now();
    await Promise.all(sockets.map((socket) => socket.emitWithAck('update', updateMessage(round, round - 1, frame))));
    if (round > 1) seconds.push((performance.now() - started) / 1000);
  }
  const peakRssBytes = server.peakRssBytes();
  for (const s of sockets) s.close();
  await server.stop();
  return { seconds, peakRssBytes };
}

const mb = (bytes: number) => bytes / 1e6;

// Interrupted (a timeout's SIGINT/SIGTERM): exit through process.exit, so the servers are killed too.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

const rows: Record<string, number | undefined>[] = [];
const verbose = process.env.BENCH_VERBOSE === '1';
console.log(
  `Coordinator upload throughput: ${PARAMS.toLocaleString('en')}-parameter updates (${(frame.byteLength / 1e6).toFixed(2)} MB each), median of ${rounds} rounds\n`,
);
const baselineRoot = flags['baseline-root'] && path.resolve(flags['baseline-root']);
console.log(
  `| participants | ours: updates/s | ours: MB/s | echo: updates/s | echo: MB/s | ours / echo | ours: peak RSS | echo: peak RSS |${baselineRoot ? ' before: updates/s | before / echo | before: peak RSS |' : ''}`,
);
console.log(`|---:|---:|---:|---:|---:|---:|---:|---:|${baselineRoot ? '---:|---:|---:|' : ''}`);
for (const n of sizes) {
  // Alternate the servers per size so slow drift of a shared machine hits all of them.
  const echo = await measureEcho(n);
  const before = baselineRoot ? await measureCoordinator(n, baselineRoot) : undefined;
  const ours = await measureCoordinator(n);
  if (verbose)
    console.error(
      `n=${n} echo seconds ${echo.seconds.map((x) => x.toFixed(3))} ours ${ours.seconds.map((x) => x.toFixed(3))}` +
        (before ? ` before ${before.seconds.map((x) => x.toFixed(3))}` : ''),
    );
  const oursRate = n / median(ours.seconds);
  const echoRate = n / median(echo.seconds);
  const beforeRate = before && n / median(before.seconds);
  const row = {
    participants: n,
    oursUpdatesPerSecond: oursRate,
    oursMBps: (oursRate * frame.byteLength) / 1e6,
    echoUpdatesPerSecond: echoRate,
    echoMBps: (echoRate * frame.byteLength) / 1e6,
    ratio: oursRate / echoRate,
    oursPeakRssMB: mb(ours.peakRssBytes),
    echoPeakRssMB: mb(echo.peakRssBytes),
    ...(before && beforeRate
      ? { beforeUpdatesPerSecond: beforeRate, beforeRatio: beforeRate / echoRate, beforePeakRssMB: mb(before.peakRssBytes) }
      : {}),
  };
  rows.push(row);
  console.log(
    `| ${n} | ${row.oursUpdatesPerSecond.toFixed(0)} | ${row.oursMBps.toFixed(0)} | ${row.echoUpdatesPerSecond.toFixed(0)} | ${row.echoMBps.toFixed(0)} | ${row.ratio.toFixed(2)} | ${row.oursPeakRssMB.toFixed(0)} MB | ${row.echoPeakRssMB.toFixed(0)} MB |` +
      (row.beforeUpdatesPerSecond === undefined
        ? ''
        : ` ${row.beforeUpdatesPerSecond.toFixed(0)} | ${row.beforeRatio!.toFixed(2)} | ${row.beforePeakRssMB!.toFixed(0)} MB |`),
  );
}
if (flags.json) writeFileSync(flags.json, JSON.stringify({ params: PARAMS, frameBytes: frame.byteLength, rounds, rows }, null, 2));
process.exit(0);
