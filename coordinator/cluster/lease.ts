import { Redis } from 'ioredis';
import type { ClusterKeys } from './keys.ts';
import { LeaseRenewer, type RenewerReport } from './lease-renewer.ts';
import { MAX_LEASE_TTL_MS, MIN_LEASE_TTL_MS, isLeaseTtl } from './lease-ttl.ts';

/**
 * Takes the lease when nobody holds it and starts a new term: the term
 * number (the fencing token) is INCRed in the same script, so two nodes can
 * never hold the same term. A node that stepped down on its own clock (Redis
 * unreachable, a stalled loop) takes its term back instead: while the lease
 * still names it (only its own acquire or renewal set that, so the term is
 * its own, even one whose answer it never got), or when the lease lapsed and
 * the term is still the one it last led in (ARGV[3]; '' for none). No other
 * node can have written under that token. Returns the term, or 0.
 */
const ACQUIRE = `
local holder = redis.call('GET', KEYS[1])
-- Retaking one's own term is safe only because node ids are unique per process (randomUUID in cluster-node.ts):
-- a restarted process or a second one with the same id would inherit a term whose state it never held. Keep them unique.
if holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return tonumber(redis.call('GET', KEYS[2]))
end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) == ARGV[3] then return tonumber(ARGV[3]) end
return redis.call('INCR', KEYS[2])`;

/**
 * Renews the holder's lease while its term is still the current one. A lease
 * that lapsed with nobody taking it meanwhile is taken back in the same term:
 * no other node can have written under a newer token.
 */
const RENEW = `
local holder = redis.call('GET', KEYS[1])
if (holder == ARGV[1] or holder == false) and redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0`;

/** Gives the lease up (a clean shutdown), so another node need not wait for it to lapse. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export type LeaseRole = { readonly kind: 'leader'; readonly term: number } | { readonly kind: 'follower' };

/** A leader steps down this fraction of the lease before it could have lapsed in Redis: room for clock rate drift and scheduling. */
const STEP_DOWN_MARGIN = 0.1;
/** How long to wait at start for the renewer's own connection before campaigning anyway (Redis may be down; ticks retry). */
const RENEWER_READY_BOUND_MS = 2_000;
/** Default bound on the main thread's stall, in leases: past it the renewer lets the lease lapse. */
const LIVENESS_LEASES = 3;

export interface LeaseOptions {
  /** redis://host:port: the lease runs on connections of its own, never behind the partials and models of the command client. */
  readonly redisUrl: string;
  readonly keys: ClusterKeys;
  readonly nodeId: string;
  /** How long a lease lives without renewal; another node may lead this long after the leader stops renewing. */
  readonly ttlMs: number;
  /** How long this thread's event loop may stall before the renewer lets the lease lapse (default LIVENESS_LEASES × ttlMs). */
  readonly livenessMs?: number;
  /** Called on every change of role (a new term, or this node is no longer leader). */
  readonly onChange?: (role: LeaseRole) => void;
  /** Why the lease is in trouble, for the operator (an unresponsive main thread, a failed renewer). */
  readonly log?: (line: string) => void;
}

/**
 * Leader election by a lease in Redis (SET NX PX, renewed every third of its
 * time to live). Each term gets a fencing token from INCR; the fenced store
 * (fenced-store.ts) refuses a write whose token is no longer the current
 * term, so a leader that stalled past its lease cannot write even if it
 * still believes it leads.
 *
 * Acquiring runs on this thread; renewing runs in a worker thread
 * (lease-renewer.ts) so that a busy event loop does not starve it, and stops
 * when this thread's loop has not turned for `livenessMs`. Whether this node
 * leads is decided here from when the last successful renewal was *sent*:
 * `term` is undefined from (1 − STEP_DOWN_MARGIN) × ttlMs after it, even
 * before the step-down timer gets to run, so a leader never believes it
 * leads once its lease could have lapsed in Redis.
 */
export class LeaderLease {
  private current: LeaseRole = { kind: 'follower' };
  private leaderId: string | undefined;
  /** The term this node last led in: after stepping down on its own clock it takes that term back if nobody took a newer one (ACQUIRE). */
  private lastTerm: number | undefined;
  /** Whether this thread's connection has been ready once, and when it was last ready again after losing Redis. */
  private connectedOnce = false;
  private reconnectedAt = 0;
  /** This thread's connection: acquire, the leader's name, release. */
  private readonly redis: Redis;
  private renewer: LeaseRenewer | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Steps down when the lease may have lapsed, even while renewals hang on an unreachable Redis. */
  private expiry: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private stopped = false;
  private readonly validForMs: number;
  private readonly livenessMs: number;

  constructor(private readonly options: LeaseOptions) {
    if (!isLeaseTtl(options.ttlMs))
      throw new Error(
        `the leader lease must be a whole number of milliseconds from ${MIN_LEASE_TTL_MS} to ${MAX_LEASE_TTL_MS}, got ${options.ttlMs}`,
      );
    this.validForMs = options.ttlMs * (1 - STEP_DOWN_MARGIN);
    this.livenessMs = options.livenessMs ?? LIVENESS_LEASES * options.ttlMs;
    this.redis = new Redis(options.redisUrl, {
      // Fail fast: an acquire that waits on an unreachable Redis is worth nothing.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: Math.floor(options.ttlMs / 3),
      lazyConnect: true,
      retryStrategy: (attempt) => Math.min(attempt * 200, 1_000),
    });
    this.redis.on('error', () => {});
    this.redis.on('ready', () => this.redisBack());
  }

  /**
   * Redis answers again after an outage: a node that led campaigns at once to
   * take its own term back, and a node that never led waits a third of a lease
   * (step) first. Otherwise whichever node's timer fired first would take a
   * lease that lapsed only because Redis was away, and the old leader, whose
   * engine ran, would have to exit as stale (attach.ts).
   */
  private redisBack(): void {
    if (!this.connectedOnce) {
      this.connectedOnce = true;
      return;
    }
    this.reconnectedAt = Date.now();
    if (this.lastTerm !== undefined && this.current.kind === 'follower') void this.tick();
  }

  get role(): LeaseRole {
    return this.current.kind === 'leader' && this.lapsed() ? { kind: 'follower' } : this.current;
  }

  get isLeader(): boolean {
    return this.role.kind === 'leader';
  }

  /** The fencing token of this node's term; undefined while it does not lead, or once its lease may have lapsed. */
  get term(): number | undefined {
    const role = this.role;
    return role.kind === 'leader' ? role.term : undefined;
  }

  /**
   * The leader as last read from Redis (this node when it leads). A lease in
   * Redis that still names this node while it does not lead (it stepped down
   * on its own clock first) makes no leader known: this node must not say it
   * leads before it has taken its term back.
   */
  get leader(): string | undefined {
    if (this.isLeader) return this.options.nodeId;
    return this.leaderId === this.options.nodeId ? undefined : this.leaderId;
  }

  start(): void {
    const { redisUrl, keys, nodeId, ttlMs, log } = this.options;
    this.stopped = false;
    this.renewer = new LeaseRenewer({
      redisUrl,
      script: RENEW,
      leaseKey: keys.lease,
      termKey: keys.term,
      nodeId,
      ttlMs,
      validForMs: this.validForMs,
      livenessMs: this.livenessMs,
      report: (report) => this.renewerReport(report),
      failed: (error) => log?.(`cluster: the lease renewer failed (${error.message}); this node's lease will lapse`),
    });
    // Campaign only once the renewer can renew too: a renewal sent before its connection is ready is refused at once,
    // and the new leader's first period would go by unrenewed. Bounded, so an unreachable Redis does not hold the start.
    const renewerReady = Promise.race([
      this.renewer.ready,
      new Promise<void>((resolve) => setTimeout(resolve, Math.max(RENEWER_READY_BOUND_MS, ttlMs)).unref()),
    ]);
    const connected = this.redis.connect().catch(() => undefined); // unreachable: each tick tries again, and ioredis reconnects
    void Promise.all([connected, renewerReady]).then(() => this.schedule(0));
  }

  /** One acquire step while this node does not lead (the timer runs it; tests may call it). */
  tick(): Promise<void> {
    this.ticking ??= this.step().finally(() => {
      this.ticking = undefined;
    });
    return this.ticking;
  }

  private async step(): Promise<void> {
    this.expireIfLapsed();
    if (this.current.kind === 'leader' || this.stopped) return;
    const { keys, nodeId, ttlMs } = this.options;
    const sentAt = Date.now();
    const deferring = this.lastTerm === undefined && sentAt - this.reconnectedAt < ttlMs / 3;
    try {
      if (deferring) {
        this.leaderId = (await this.redis.get(keys.lease)) ?? undefined;
        return;
      }
      const term = Number(await this.redis.eval(ACQUIRE, 2, keys.lease, keys.term, nodeId, ttlMs, this.lastTerm?.toString() ?? ''));
      // Stopped while the acquire was in flight: never announce a lease won after stop(); stop() gives it back.
      if (this.stopped) return;
      if (term > 0) {
        this.renewer?.lead(term, sentAt);
        this.become({ kind: 'leader', term });
        this.armExpiry();
        return;
      }
      this.leaderId = (await this.redis.get(keys.lease)) ?? undefined;
    } catch {
      // Redis unreachable: try again at the next tick.
    }
  }

  private renewerReport(report: RenewerReport): void {
    if (this.current.kind !== 'leader' || this.current.term !== report.term) return;
    if (report.kind === 'lost') this.become({ kind: 'follower' });
    else
      this.options.log?.(
        `cluster: this node's event loop has not turned for ${report.stalledMs} ms (more than ${this.livenessMs} ms): its lease is left to lapse`,
      );
  }

  private lapsed(): boolean {
    return Date.now() - (this.renewer?.validFrom ?? 0) >= this.validForMs;
  }

  /** Checks again when the lease, as last renewed, would run out. */
  private armExpiry(): void {
    if (this.expiry) clearTimeout(this.expiry);
    const validFrom = this.renewer?.validFrom ?? 0;
    this.expiry = setTimeout(
      () => {
        // Stepped down while Redis most likely still names this node: retake the lease at once rather than a tick later.
        if (this.expireIfLapsed()) void this.tick();
      },
      Math.max(0, validFrom + this.validForMs - Date.now()),
    );
  }

  /**
   * A leader whose last renewal is older than its lease (less the margin) steps down: another node may hold the lease by now.
   * Returns whether it stepped down while the lease most likely still lives in Redis (less than a whole ttl since the last renewal was sent).
   */
  private expireIfLapsed(): boolean {
    if (this.current.kind !== 'leader') return false;
    if (!this.lapsed()) {
      this.armExpiry();
      return false;
    }
    const stillHeld = Date.now() - (this.renewer?.validFrom ?? 0) < this.options.ttlMs;
    this.become({ kind: 'follower' });
    return stillHeld;
  }

  private become(role: LeaseRole): void {
    const before = this.current;
    if (before.kind === role.kind && (before.kind !== 'leader' || role.kind !== 'leader' || before.term === role.term)) return;
    this.current = role;
    if (role.kind === 'leader') this.lastTerm = role.term;
    else {
      this.leaderId = undefined;
      this.renewer?.follow();
      if (this.expiry) clearTimeout(this.expiry);
    }
    this.options.onChange?.(role);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.tick().then(() => this.schedule(this.options.ttlMs / 3));
    }, delayMs);
  }

  /** Stops campaigning and renewing (for good); with `release`, gives the lease up at once (a clean shutdown). */
  async stop(release: boolean): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.expiry) clearTimeout(this.expiry);
    await this.ticking;
    const renewer = this.renewer;
    this.renewer = undefined;
    await renewer?.close();
    // Whatever this node believes: RELEASE frees the lease only if Redis still names it (an acquire answered after stop, a
    // lease this node stopped renewing but that has not lapsed yet).
    if (release) await this.redis.eval(RELEASE, 1, this.options.keys.lease, this.options.nodeId).catch(() => undefined);
    this.become({ kind: 'follower' });
    this.redis.disconnect();
  }
}
