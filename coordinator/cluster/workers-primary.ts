import cluster, { type Worker } from 'node:cluster';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import { setupMaster } from '@socket.io/sticky';
import { listen } from '../http/listen.ts';
import { RestartBackoff } from './workers-restart.ts';
import { WORKER_READY, WORKER_SLOT_ENV, WORKERS_PORT_ENV, type WorkerReady } from './workers-node.ts';

/** A connection waits at most this long for a starting worker before it is routed anyway. */
const HOLD_LIMIT_MS = 15_000;
/** A worker that has not exited this long after SIGTERM is killed. */
const SHUTDOWN_LIMIT_MS = 15_000;

interface Slot {
  readonly index: number;
  worker: Worker | undefined;
  forkedAt: number;
  /** Its node serves: the primary routes connections to it. */
  ready: boolean;
  restartTimer: NodeJS.Timeout | undefined;
}

/**
 * `--workers N` (docs/cluster.md): this process holds the port and runs no
 * coordinator; it forks N workers (node:cluster), each a full node of the
 * Redis cluster, restarts the one that exits (with a backoff), and routes
 * each TCP connection to a worker with @socket.io/sticky: a request that
 * names an engine.io session (`sid=`) goes to the worker holding it, any
 * other (a new session, a page, /api/status, /metrics) to the worker with
 * the fewest sessions. While a worker starts, new connections wait
 * (paused) until it serves, so none is handed to a process that cannot
 * take it yet.
 */
export class WorkersPrimary {
  private readonly slots: Slot[];
  /** Callers of ready() waiting for every worker to serve. */
  private readonly allReady: (() => void)[] = [];
  private readonly backoff = new RestartBackoff();
  private readonly held = new Set<Socket>();
  private holdTimer: NodeJS.Timeout | undefined;
  private stopping = false;

  private constructor(
    private readonly server: ReturnType<typeof createNetServer>,
    /** Never listens: @socket.io/sticky routes the connections emitted on it. */
    private readonly router: ReturnType<typeof createHttpServer>,
    readonly port: number,
    count: number,
    private readonly log: (line: string) => void,
  ) {
    this.slots = Array.from({ length: count }, (_, index) => ({
      index: index + 1,
      worker: undefined,
      forkedAt: 0,
      ready: false,
      restartTimer: undefined,
    }));
  }

  /** Listens on `port` (0: a free one), then forks `count` workers with this process's script, flags and runtime flags. */
  static async start(options: {
    readonly count: number;
    readonly port: number;
    readonly host: string;
    readonly log: (line: string) => void;
  }): Promise<WorkersPrimary> {
    // Not pauseOnConnect: a socket read from no byte on has its bytes consumed by the router's HTTP parser, not @socket.io/sticky's 'data' handler.
    // A held connection's first bytes wait in its stream until it is routed.
    const server = createNetServer();
    const router = createHttpServer();
    setupMaster(router, { loadBalancingMethod: 'least-connection' });
    // Buffers (a forwarded request body) must cross IPC as bytes, not JSON (@socket.io/sticky's README).
    cluster.setupPrimary({ serialization: 'advanced' });
    const port = await listen(server, options.port, options.host);
    const primary = new WorkersPrimary(server, router, port, options.count, options.log);
    server.on('connection', (socket: Socket) => primary.admit(socket));
    for (const slot of primary.slots) primary.fork(slot);
    return primary;
  }

  /** Resolves once every worker serves (told by each worker's ready message in fork()). */
  ready(): Promise<void> {
    if (this.slots.every((slot) => slot.ready)) return Promise.resolve();
    return new Promise((resolve) => this.allReady.push(resolve));
  }

  private get starting(): boolean {
    return this.slots.some((slot) => slot.worker !== undefined && !slot.ready);
  }

  private admit(socket: Socket): void {
    if (!this.starting) {
      this.router.emit('connection', socket);
      return;
    }
    this.held.add(socket);
    this.holdTimer ??= setTimeout(() => this.release(), HOLD_LIMIT_MS);
  }

  /** The held connections to the router. */
  private release(): void {
    clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
    const held = [...this.held];
    this.held.clear();
    for (const socket of held) {
      if (this.stopping) socket.destroy();
      else this.router.emit('connection', socket);
    }
  }

  private fork(slot: Slot): void {
    slot.restartTimer = undefined;
    slot.ready = false;
    slot.forkedAt = Date.now();
    const worker = cluster.fork({ [WORKERS_PORT_ENV]: String(this.port), [WORKER_SLOT_ENV]: String(slot.index) });
    slot.worker = worker;
    const pid = worker.process.pid;
    worker.on('message', (message: unknown) => {
      if (!isReady(message) || slot.worker !== worker) return;
      slot.ready = true;
      this.log(`workers: worker ${slot.index} (pid ${pid}) serves as node ${message.nodeId ?? '?'}`);
      if (this.slots.every((each) => each.ready)) for (const resolve of this.allReady.splice(0)) resolve();
      if (!this.starting) this.release();
    });
    // A message to a worker that is dying fails (EPIPE): its exit below is what counts, and an unheard 'error' would end the primary.
    worker.on('error', (error) => this.log(`workers: worker ${slot.index} (pid ${pid}): ${error.message}`));
    worker.once('exit', (code, signal) => {
      if (slot.worker !== worker) return;
      slot.worker = undefined;
      slot.ready = false;
      if (this.stopping) return;
      // A worker that exits, whatever the reason (a crash, a kill, 75: stale after losing the lease), is replaced by a fresh node.
      const delay = this.backoff.delayAfter(Date.now() - slot.forkedAt);
      this.log(`workers: worker ${slot.index} (pid ${pid}) exited (${signal ?? `code ${code}`}); a fresh node replaces it in ${delay} ms`);
      slot.restartTimer = setTimeout(() => this.fork(slot), delay);
      if (!this.starting) this.release();
    });
  }

  /** Stops accepting, sends `signal` to every worker (each closes its node as one coordinator does) and waits for them to exit. */
  async close(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const slot of this.slots) clearTimeout(slot.restartTimer);
    this.release();
    this.server.close();
    const running = this.slots.flatMap((slot) => (slot.worker ? [slot.worker] : []));
    const exited = running.map((worker) => new Promise<void>((resolve) => worker.process.once('exit', () => resolve())));
    for (const worker of running) worker.process.kill(signal);
    const killer = setTimeout(() => {
      for (const worker of running) worker.process.kill('SIGKILL');
    }, SHUTDOWN_LIMIT_MS);
    await Promise.all(exited);
    clearTimeout(killer);
  }
}

function isReady(message: unknown): message is WorkerReady {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === WORKER_READY;
}
