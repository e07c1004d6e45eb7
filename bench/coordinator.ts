import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Socket } from 'socket.io-client';
import { FedAvg } from '../core/aggregation/fedavg.ts';
import { ErrorFeedback } from '../core/compression/error-feedback.ts';
import { RoundDecoder } from '../core/compression/round-decoder.ts';
import { type RoundStartMessage, type UpdateCompression, UpdateEncodingName } from '../core/protocol/messages.ts';
import { SecureRandom } from '../core/random/prng.ts';
import { encodeFrame, FrameKind } from '../core/wire/frame.ts';
import { launchServer } from './servers/server-process.ts';
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
 * Over the same window it reads each server's CPU (all threads, and its main
 * thread) and the clients' CPU, per update: on a shared machine updates/s is
 * a share of its cores, CPU per update is what a server costs.
 *
 * --update-encoding float32,int8,int4 runs the coordinator once per encoding
 * (its --update-encoding), with frames made as a participant makes them
 * (ErrorFeedback.encode with the round's FitConfig.compression, int4 with the
 * round's rotation seed, stochastic rounding from SecureRandom), in an order
 * that rotates from one size to the next so drift hits every encoding.
 */

const { values: flags } = parseArgs({
  options: {
    participants: { type: 'string', default: '50,100,200' },
    rounds: { type: 'string', default: '3' },
    json: { type: 'string' },
    /** Write each server's CPU profiles (node --cpu-prof) into this folder: coordinator/, coordinator-before/ (--baseline-root) and echo/. Not for timed runs. */
    'profile-dir': { type: 'string' },
    /** Also measure the coordinator of another checkout (e.g. the code before a change), in the same run. */
    'baseline-root': { type: 'string' },
    /** Comma-separated update encodings to measure the coordinator with (docs/compression.md). */
    'update-encoding': { type: 'string', default: 'float32' },
    /** Only time RoundDecoder.decode per encoding (seconds), no servers. */
    'decode-only': { type: 'boolean' },
    /**
     * Each server on CPU 0 and this process (the clients) on CPU 1 (taskset): a server then has a core of its
     * own whatever the clients cost. A server that needs less than its core is still held to the clients' pace.
     */
    pin: { type: 'boolean' },
    /** node/V8 flags for both servers, space-separated, given with "=" (--server-node-flags=--single-threaded-gc). */
    'server-node-flags': { type: 'string', default: '' },
    /** Keep each server's standard output (what --server-node-flags=--trace-gc prints) in this folder, a file per server process. */
    'server-log-dir': { type: 'string' },
    help: { type: 'boolean' },
  },
});
if (flags.help) {
  console.log(
    'Usage: npm run bench -- coordinator [--participants 50,100,200] [--rounds 3] [--update-encoding float32,int8,int4] [--decode-only] [--pin] [--server-node-flags="FLAGS"] [--server-log-dir DIR] [--profile-dir DIR] [--baseline-root DIR] [--json FILE]',
  );
  process.exit(0);
}
const sizes = flags.participants!.split(',').map(Number);
const rounds = Number(flags.rounds);
const encodings = flags['update-encoding']!.split(',').map((name) => {
  const encoding = UpdateEncodingName.find((e) => e === name);
  if (!encoding) throw new Error(`--update-encoding: unknown encoding ${name} (${UpdateEncodingName.join(', ')})`);
  return encoding;
});
const PARAMS = 199_210; // McMahan et al. 2NN on MNIST
const root = path.resolve(import.meta.dirname, '..');
const serverNodeFlags = flags['server-node-flags']!.split(' ').filter((flag) => flag !== '');
/** --pin: the servers' CPU; this process (the clients), every thread of it, runs on the other. */
const SERVER_CPU = 0;
if (flags.pin) {
  const pinned = spawnSync('taskset', ['-a', '-p', '-c', String(SERVER_CPU + 1), String(process.pid)], { encoding: 'utf8' });
  if (pinned.status !== 0) throw new Error(`--pin: taskset failed: ${pinned.stderr || pinned.error}`);
}
/** Linux's clock ticks per second, the unit of /proc/PID/stat's CPU times (100 on most systems: a 10 ms resolution). */
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;

/** node's flags that write a server's CPU profiles (one per thread, node's names) into a folder of --profile-dir named after the server. */
function profileFlags(name: 'coordinator' | 'coordinator-before' | 'echo'): string[] {
  const dir = flags['profile-dir'];
  // Resolved here: each server runs in its own checkout's folder.
  return dir ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(dir, name)] : [];
}

/** utime + stime of a /proc stat file (fields 14 and 15, in clock ticks, counted after the ')' that ends the name), in seconds. */
function statCpuSeconds(file: string): number {
  const stat = readFileSync(file, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

interface ServerProcess {
  url: string;
  child: ChildProcess;
  peakRssBytes(): number;
  /** CPU seconds (user + system) the server has used so far: every thread, and its main (JavaScript) thread alone. */
  cpuSeconds(): { all: number; main: number };
  stop(): Promise<void>;
}

let serversStarted = 0;

async function startServer(script: string, args: string[], nodeFlags: string[] = [], checkout = root): Promise<ServerProcess> {
  const command = [process.execPath, ...serverNodeFlags, ...nodeFlags, '--import', 'tsx', script, ...args];
  const logDir = flags['server-log-dir'];
  if (logDir) mkdirSync(logDir, { recursive: true });
  const { child, url, stop } = await launchServer(
    script,
    flags.pin ? 'taskset' : command[0]!,
    flags.pin ? ['-c', String(SERVER_CPU), ...command] : command.slice(1),
    // One file per server process, in the order they start.
    {
      cwd: checkout,
      logFile: logDir ? path.join(logDir, `${String(++serversStarted).padStart(2, '0')}-${path.basename(script, '.ts')}.log`) : undefined,
    },
  );
  // Forget the start-up peak (parsing the demo data), so VmHWM measures the run itself.
  writeFileSync(`/proc/${child.pid}/clear_refs`, '5');
  return {
    url,
    child,
    peakRssBytes() {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
    },
    cpuSeconds() {
      // The main thread's task id is the process id; the other threads are V8's (garbage collection, compilation) and libuv's.
      return { all: statCpuSeconds(`/proc/${child.pid}/stat`), main: statCpuSeconds(`/proc/${child.pid}/task/${child.pid}/stat`) };
    },
    stop,
  };
}

const update = new Float32Array(PARAMS).map((_, i) => Math.sin(i) * 1e-3);
const frame = encodeFrame(FrameKind.Update, update);

/**
 * One participant's upload path for a run of rounds: each round's frame is
 * what Participant sends (error feedback committed, as after an accepted update).
 */
class UploadEncoder {
  private readonly feedback = new ErrorFeedback();
  private readonly rounding = new SecureRandom();
  private readonly frames = new Map<number, ArrayBuffer>();

  frameFor(round: number, compression: UpdateCompression | undefined): ArrayBuffer {
    const cached = this.frames.get(round);
    if (cached) return cached;
    const pending = this.feedback.encode(update, compression ?? { encoding: 'float32' }, this.rounding);
    pending.commit();
    this.frames.set(round, pending.frame);
    return pending.frame;
  }
}

/**
 * The coordinator's decode of one update (RoundDecoder.decode: every check,
 * the values and their norm) timed in this process: the encodings take turns,
 * `repeats` decodes each after a warm-up; the median and the minimum (the
 * machine is shared: the minimum is the decode without interference).
 * int4's one rotation back per aggregate is not in it (FedAvg sums rotated).
 */
function timeDecodes(repeats = 200): Map<UpdateEncodingName, { median: number; min: number; frameBytes: number }> {
  const cases = encodings.map((encoding) => {
    const compression: UpdateCompression | undefined =
      encoding === 'float32' ? undefined : { encoding, ...(encoding === 'int4' ? { rotationSeed: 12345 } : {}) };
    // As the coordinator receives it: a Node Buffer.
    const sample = Buffer.from(new UploadEncoder().frameFor(1, compression));
    return { encoding, sample, decoder: new RoundDecoder(PARAMS, compression, new FedAvg()), times: [] as number[] };
  });
  const WARM_UP = 20;
  for (let i = 0; i < WARM_UP + repeats; i++) {
    for (const c of cases) {
      const started = performance.now();
      c.decoder.decode(c.sample);
      if (i >= WARM_UP) c.times.push(performance.now() - started);
    }
  }
  return new Map(cases.map((c) => [c.encoding, { median: median(c.times), min: Math.min(...c.times), frameBytes: c.sample.byteLength }]));
}

interface Measure {
  seconds: number[];
  /** Per timed round: the server's CPU seconds (all threads; its main thread), and this process's (the clients'), in the window. */
  serverCpuSeconds: number[];
  serverMainCpuSeconds: number[];
  clientCpuSeconds: number[];
  peakRssBytes: number;
  /** The update frame's size in bytes (the last round's; a compressed frame's size does not vary). */
  frameBytes: number;
}

async function measureCoordinator(n: number, encoding: UpdateEncodingName = 'float32', checkout = root): Promise<Measure> {
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
      // Only named when not the default, so a --baseline-root checkout without the flag still starts.
      ...(encoding === 'float32' ? [] : ['--update-encoding', encoding]),
    ],
    profileFlags(checkout === root ? 'coordinator' : 'coordinator-before'),
    checkout,
  );
  const sockets = await connect(server.url, n);
  // What an upload needs of round:start; the model's weights are dropped on arrival (a participant trains on them and lets them go).
  const pending = new Map<number, { version: number; compression: UpdateCompression | undefined; socket: Socket }[]>();
  const waiters = new Map<number, () => void>();
  for (const socket of sockets) {
    socket.on('round:start', (message: RoundStartMessage) => {
      const list = pending.get(message.round) ?? [];
      list.push({ version: message.model.version, compression: message.config.compression, socket });
      pending.set(message.round, list);
      if (list.length === n) waiters.get(message.round)?.();
    });
  }
  await join(sockets);
  const seconds: number[] = [];
  const serverCpuSeconds: number[] = [];
  const serverMainCpuSeconds: number[] = [];
  const clientCpuSeconds: number[] = [];
  const encoder = new UploadEncoder();
  let frameBytes = 0;
  // Round 1 warms up the JIT and is not timed.
  for (let round = 1; round <= rounds + 1; round++) {
    if ((pending.get(round)?.length ?? 0) < n) await new Promise<void>((resolve) => waiters.set(round, resolve));
    // Every participant gets the same round config; the frame is encoded before the clock starts.
    const roundFrame = encoder.frameFor(round, pending.get(round)![0]!.compression);
    frameBytes = roundFrame.byteLength;
    collectGarbage();
    const cpu = cpuMark(server);
    const started = performance.now();
    const acks = await Promise.all(
      pending.get(round)!.map(({ version, socket }) => socket.emitWithAck('update', updateMessage(round, version, roundFrame))),
    );
    if (round > 1) {
      seconds.push((performance.now() - started) / 1000);
      cpu.record(serverCpuSeconds, serverMainCpuSeconds, clientCpuSeconds);
    }
    const refused = acks.filter((a) => !a.ok);
    if (refused.length) throw new Error(`coordinator refused ${refused.length} updates: ${JSON.stringify(refused[0])}`);
    pending.delete(round);
  }
  const peakRssBytes = server.peakRssBytes();
  for (const s of sockets) s.close();
  await server.stop();
  rmSync(dataDir, { recursive: true, force: true });
  return { seconds, serverCpuSeconds, serverMainCpuSeconds, clientCpuSeconds, peakRssBytes, frameBytes };
}

async function measureEcho(n: number): Promise<Measure> {
  const server = await startServer('bench/servers/echo-server.ts', [String(frame.byteLength + 64 * 1024)], profileFlags('echo'));
  const sockets = await connect(server.url, n);
  const seconds: number[] = [];
  const serverCpuSeconds: number[] = [];
  const serverMainCpuSeconds: number[] = [];
  const clientCpuSeconds: number[] = [];
  for (let round = 1; round <= rounds + 1; round++) {
    collectGarbage();
    const cpu = cpuMark(server);
    const started = performance.now();
    await Promise.all(sockets.map((socket) => socket.emitWithAck('update', updateMessage(round, round - 1, frame))));
    if (round > 1) {
      seconds.push((performance.now() - started) / 1000);
      cpu.record(serverCpuSeconds, serverMainCpuSeconds, clientCpuSeconds);
    }
  }
  const peakRssBytes = server.peakRssBytes();
  for (const s of sockets) s.close();
  await server.stop();
  return { seconds, serverCpuSeconds, serverMainCpuSeconds, clientCpuSeconds, peakRssBytes, frameBytes: frame.byteLength };
}

/**
 * A full collection of this process's heap before each timed window, for both
 * servers alike: the clients' garbage from before it (the round's model
 * downloads, which the echo run does not have) is not collected on the clock,
 * on the cores the server shares. Simulated clients that all live in one
 * process collect far more at once than a participant's own device does.
 */
const collectGarbage: () => void = (() => {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

/**
 * How ws unmasks frames in this checkout's processes (a --baseline-root checkout loads its own node_modules):
 * the optional bufferutil's native build, or a JavaScript loop (ws's own, or bufferutil's fallback where its
 * native build did not load).
 */
function webSocketUnmasking(): string {
  if (process.env.WS_NO_BUFFER_UTIL) return 'JavaScript (WS_NO_BUFFER_UTIL is set)';
  let bufferUtil: { unmask: (...args: unknown[]) => void };
  try {
    bufferUtil = createRequire(import.meta.url)('bufferutil');
  } catch {
    return 'JavaScript (bufferutil is not installed)';
  }
  return /\[native code\]/.test(String(bufferUtil.unmask))
    ? 'native (bufferutil)'
    : "JavaScript (bufferutil's fallback: its native build did not load)";
}

/** CPU used from now until record(): the server's (from /proc) and this process's, the clients'. */
function cpuMark(server: ServerProcess) {
  const serverStart = server.cpuSeconds();
  const clientStart = process.cpuUsage();
  return {
    record(serverSeconds: number[], serverMainSeconds: number[], clientSeconds: number[]) {
      const serverNow = server.cpuSeconds();
      serverSeconds.push(serverNow.all - serverStart.all);
      serverMainSeconds.push(serverNow.main - serverStart.main);
      const client = process.cpuUsage(clientStart);
      clientSeconds.push((client.user + client.system) / 1e6);
    },
  };
}

/** Median CPU milliseconds per update over the timed rounds. */
const cpuMsPerUpdate = (cpuSeconds: number[], n: number) => (median(cpuSeconds) / n) * 1000;

const mb = (bytes: number) => bytes / 1e6;

// Interrupted (a timeout's SIGINT/SIGTERM): exit through process.exit, so the servers are killed too.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

const rows: Record<string, number | string | undefined>[] = [];
const verbose = process.env.BENCH_VERBOSE === '1';
const decodes = timeDecodes();
console.log('| encoding | frame bytes | decode ms / update: median | min |\n|---|---:|---:|---:|');
for (const [encoding, d] of decodes)
  console.log(`| ${encoding} | ${d.frameBytes.toLocaleString('en')} | ${d.median.toFixed(3)} | ${d.min.toFixed(3)} |`);
console.log('');
if (flags['decode-only']) process.exit(0);
console.log(
  `Coordinator upload throughput: ${PARAMS.toLocaleString('en')}-parameter updates, median of ${rounds} rounds; ` +
    `frames: ${encodings.map((e) => `${e} ${(decodes.get(e)!.frameBytes / 1e6).toFixed(3)} MB`).join(', ')}; ` +
    `echo: float32 frames (${(frame.byteLength / 1e6).toFixed(2)} MB); WebSocket unmasking (this checkout's servers and clients): ${webSocketUnmasking()}; ` +
    (flags.pin ? `servers on CPU ${SERVER_CPU}, clients on CPU ${SERVER_CPU + 1}` : 'servers and clients share the cores') +
    (serverNodeFlags.length > 0 ? `; servers run with ${serverNodeFlags.join(' ')}\n` : '\n'),
);
const baselineRoot = flags['baseline-root'] && path.resolve(flags['baseline-root']);
console.log(
  `| participants | encoding | ours: updates/s | ours: MB/s | × float32 updates/s | decode ms / update | echo: updates/s | echo: MB/s | ours / echo | ours: peak RSS | echo: peak RSS | server CPU ms / update, all threads (main thread): ours / echo | clients' CPU ms / update: ours / echo |${baselineRoot ? ' before: updates/s | before / echo | before: peak RSS | before: server CPU ms / update, all threads (main thread) |' : ''}`,
);
console.log(`|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|${baselineRoot ? '---:|---:|---:|---:|' : ''}`);
for (const [index, n] of sizes.entries()) {
  // Alternate the servers per size, and rotate the encodings' order, so slow drift of a shared machine hits all of them.
  const order = encodings.map((_, i) => encodings[(i + index) % encodings.length]!);
  const echo = await measureEcho(n);
  const measured = new Map<UpdateEncodingName, { ours: Measure; before: Measure | undefined }>();
  for (const encoding of order) {
    const before = baselineRoot ? await measureCoordinator(n, encoding, baselineRoot) : undefined;
    const ours = await measureCoordinator(n, encoding);
    measured.set(encoding, { ours, before });
    if (verbose)
      console.error(
        `n=${n} ${encoding} ours seconds ${ours.seconds.map((x) => x.toFixed(3))}` +
          (before ? ` before ${before.seconds.map((x) => x.toFixed(3))}` : ''),
      );
  }
  if (verbose) console.error(`n=${n} order ${order.join(',')} echo seconds ${echo.seconds.map((x) => x.toFixed(3))}`);
  const echoRate = n / median(echo.seconds);
  const float32 = measured.get('float32');
  const float32Rate = float32 && n / median(float32.ours.seconds);
  for (const encoding of encodings) {
    const { ours, before } = measured.get(encoding)!;
    const oursRate = n / median(ours.seconds);
    const beforeRate = before && n / median(before.seconds);
    const row = {
      participants: n,
      encoding,
      order: order.indexOf(encoding) + 1,
      frameBytes: ours.frameBytes,
      oursUpdatesPerSecond: oursRate,
      oursMBps: (oursRate * ours.frameBytes) / 1e6,
      ratioToFloat32: float32Rate === undefined ? undefined : oursRate / float32Rate,
      decodeMsPerUpdate: decodes.get(encoding)!.median,
      echoUpdatesPerSecond: echoRate,
      echoMBps: (echoRate * frame.byteLength) / 1e6,
      ratio: oursRate / echoRate,
      oursPeakRssMB: mb(ours.peakRssBytes),
      echoPeakRssMB: mb(echo.peakRssBytes),
      oursServerCpuMs: cpuMsPerUpdate(ours.serverCpuSeconds, n),
      echoServerCpuMs: cpuMsPerUpdate(echo.serverCpuSeconds, n),
      oursServerMainCpuMs: cpuMsPerUpdate(ours.serverMainCpuSeconds, n),
      echoServerMainCpuMs: cpuMsPerUpdate(echo.serverMainCpuSeconds, n),
      oursClientCpuMs: cpuMsPerUpdate(ours.clientCpuSeconds, n),
      echoClientCpuMs: cpuMsPerUpdate(echo.clientCpuSeconds, n),
      ...(before && beforeRate
        ? {
            beforeUpdatesPerSecond: beforeRate,
            beforeRatio: beforeRate / echoRate,
            beforePeakRssMB: mb(before.peakRssBytes),
            beforeServerCpuMs: cpuMsPerUpdate(before.serverCpuSeconds, n),
            beforeServerMainCpuMs: cpuMsPerUpdate(before.serverMainCpuSeconds, n),
          }
        : {}),
    };
    rows.push(row);
    console.log(
      `| ${n} | ${encoding} | ${row.oursUpdatesPerSecond.toFixed(0)} | ${row.oursMBps.toFixed(0)} | ${row.ratioToFloat32?.toFixed(2) ?? '–'} | ${row.decodeMsPerUpdate.toFixed(2)} | ${row.echoUpdatesPerSecond.toFixed(0)} | ${row.echoMBps.toFixed(0)} | ${row.ratio.toFixed(2)} | ${row.oursPeakRssMB.toFixed(0)} MB | ${row.echoPeakRssMB.toFixed(0)} MB | ${row.oursServerCpuMs.toFixed(2)} (${row.oursServerMainCpuMs.toFixed(2)}) / ${row.echoServerCpuMs.toFixed(2)} (${row.echoServerMainCpuMs.toFixed(2)}) | ${row.oursClientCpuMs.toFixed(2)} / ${row.echoClientCpuMs.toFixed(2)} |` +
        (row.beforeUpdatesPerSecond === undefined
          ? ''
          : ` ${row.beforeUpdatesPerSecond.toFixed(0)} | ${row.beforeRatio!.toFixed(2)} | ${row.beforePeakRssMB!.toFixed(0)} MB | ${row.beforeServerCpuMs!.toFixed(2)} (${row.beforeServerMainCpuMs!.toFixed(2)}) |`),
    );
  }
}
// Repeated sizes (--participants 1000,1000,1000) alternate the servers: the ratio's spread over them is the machine's noise.
for (const encoding of encodings) {
  for (const n of new Set(sizes)) {
    const ratios = rows.filter((r) => r.participants === n && r.encoding === encoding).map((r) => r.ratio as number);
    if (ratios.length > 1)
      console.log(
        `\n${n} participants, ${encoding}: ours / echo over ${ratios.length} alternations: median ${median(ratios).toFixed(2)} (min ${Math.min(...ratios).toFixed(2)}, max ${Math.max(...ratios).toFixed(2)})`,
      );
  }
}
if (flags.json) writeFileSync(flags.json, JSON.stringify({ params: PARAMS, frameBytes: frame.byteLength, rounds, rows }, null, 2));
process.exit(0);
