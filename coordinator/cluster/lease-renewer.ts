import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** Slots of the memory the main thread and the renewer share (BigInt64, Date.now() milliseconds). */
const MAIN_ALIVE_AT = 0;
const VALID_FROM = 1;

/** What the renewer tells the main thread. */
export type RenewerReport =
  /** Redis refused the renewal: another node holds the lease, or the term moved on. */
  | { readonly kind: 'lost'; readonly term: number }
  /** The main thread's event loop has not turned for `stalledMs`: the renewer lets the lease lapse. */
  | { readonly kind: 'unresponsive'; readonly term: number; readonly stalledMs: number };

export interface LeaseRenewerOptions {
  readonly redisUrl: string;
  /** The RENEW script of lease.ts: KEYS lease, term; ARGV node, ttl, term. */
  readonly script: string;
  readonly leaseKey: string;
  readonly termKey: string;
  readonly nodeId: string;
  readonly ttlMs: number;
  /** How long after a renewal was sent the main thread counts the lease as held (lease.ts): failed renewals are retried quickly until then. */
  readonly validForMs: number;
  /** The longest the main thread's event loop may go without turning before the renewer stops renewing. */
  readonly livenessMs: number;
  readonly report: (report: RenewerReport) => void;
  /** The renewer itself failed (it then renews no more, so the lease lapses). */
  readonly failed: (error: Error) => void;
}

/**
 * The renewal of a leader's lease, in a worker thread with its own Redis
 * connection: a leader whose event loop is busy for seconds (decoding a
 * thousand uploads on a loaded machine) still renews every third of the
 * lease, and no renewal waits behind the partials and models on the
 * command connection. The main thread stamps shared memory several times a
 * second; the renewer renews only while that stamp is younger than
 * `livenessMs`, so a wedged main thread loses the lease like a dead
 * process, and a frozen process (SIGSTOP) freezes the renewer with it. The
 * renewer writes when its last successful renewal was sent; the main
 * thread decides from that alone whether it still leads (lease.ts).
 *
 * The worker runs as source text (`eval`), so it runs the same whether the
 * coordinator runs from its .ts files or from a bundle.
 */
export class LeaseRenewer {
  private readonly shared = new BigInt64Array(new SharedArrayBuffer(2 * BigInt64Array.BYTES_PER_ELEMENT));
  private readonly worker: Worker;
  private readonly alive: NodeJS.Timeout;
  /** Resolves once the worker's Redis connection is ready, so a renewal sent at once is not refused (no offline queue). */
  readonly ready: Promise<void>;

  constructor(options: LeaseRenewerOptions) {
    const { report, failed, ...settings } = options;
    this.stampAlive();
    // Several stamps per liveness bound, so the stamp's age is the loop's own delay.
    this.alive = setInterval(() => this.stampAlive(), Math.min(250, options.livenessMs / 4));
    this.alive.unref();
    this.worker = new Worker(RENEWER_SOURCE, {
      eval: true,
      workerData: { ...settings, ioredis: createRequire(import.meta.url).resolve('ioredis'), shared: this.shared.buffer },
    });
    this.worker.unref();
    let markReady = () => {};
    this.ready = new Promise((resolve) => {
      markReady = resolve;
    });
    this.worker.on('message', (message: RenewerReport | { readonly kind: 'ready' }) =>
      message.kind === 'ready' ? markReady() : report(message),
    );
    this.worker.on('error', failed);
  }

  /** Local time (ms) when the last successful acquire or renewal of this term was sent; 0 when none. */
  get validFrom(): number {
    return Number(Atomics.load(this.shared, VALID_FROM));
  }

  /** This node won `term` with the acquire sent at `sentAt`: renew it a third of the lease after that send, however slow the answer was. */
  lead(term: number, sentAt: number): void {
    Atomics.store(this.shared, VALID_FROM, BigInt(sentAt));
    this.worker.postMessage({ kind: 'lead', term, sentAt });
  }

  /** This node no longer leads: stop renewing. */
  follow(): void {
    Atomics.store(this.shared, VALID_FROM, 0n);
    this.worker.postMessage({ kind: 'follow' });
  }

  async close(): Promise<void> {
    clearInterval(this.alive);
    Atomics.store(this.shared, VALID_FROM, 0n);
    await this.worker.terminate();
  }

  private stampAlive(): void {
    Atomics.store(this.shared, MAIN_ALIVE_AT, BigInt(Date.now()));
  }
}

/** The worker (CommonJS source; the settings arrive as workerData, the lead/follow messages from LeaseRenewer). */
const RENEWER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { Redis } = require(workerData.ioredis);
const { redisUrl, script, leaseKey, termKey, nodeId, ttlMs, validForMs, livenessMs } = workerData;
const shared = new BigInt64Array(workerData.shared);
const period = ttlMs / 3;
const redis = new Redis(redisUrl, {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  commandTimeout: Math.max(1, Math.floor(period)),
  retryStrategy: (attempt) => Math.min(attempt * 200, 1000),
});
redis.on('error', () => {});
redis.once('ready', () => parentPort.postMessage({ kind: 'ready' }));
// After a failed renewal, try again this soon while the lease may still be alive: waiting a whole period could let it lapse.
const retryMs = Math.min(75, period / 2);
let term = 0;
let timer;
let reportedStall = false;
parentPort.on('message', (message) => {
  clearTimeout(timer);
  term = message.kind === 'lead' ? message.term : 0;
  reportedStall = false;
  // The lease runs from when the acquire was sent, so the first renewal does too (a slow acquire leaves less of the period).
  if (term !== 0) timer = setTimeout(renew, Math.max(0, message.sentAt + period - Date.now()));
});
async function renew() {
  const renewing = term;
  const sentAt = Date.now();
  const stalledMs = sentAt - Number(Atomics.load(shared, ${MAIN_ALIVE_AT}));
  if (stalledMs > livenessMs) {
    if (!reportedStall) parentPort.postMessage({ kind: 'unresponsive', term: renewing, stalledMs });
    reportedStall = true;
  } else {
    reportedStall = false;
    try {
      const renewed = await redis.eval(script, 2, leaseKey, termKey, nodeId, ttlMs, renewing);
      if (term !== renewing) return;
      if (renewed !== 1) {
        term = 0;
        parentPort.postMessage({ kind: 'lost', term: renewing });
        return;
      }
      Atomics.store(shared, ${VALID_FROM}, BigInt(sentAt));
    } catch {
      // Redis slow or unreachable: retry soon while the main thread still counts the lease as alive; past that it steps down.
      const validUntil = Number(Atomics.load(shared, ${VALID_FROM})) + validForMs;
      if (term === renewing && Date.now() + retryMs < validUntil) {
        timer = setTimeout(renew, retryMs);
        return;
      }
    }
  }
  // Timed from the send, not the answer: a slow answer must not push the next renewal past the lease.
  if (term === renewing) timer = setTimeout(renew, Math.max(0, sentAt + period - Date.now()));
}
`;
