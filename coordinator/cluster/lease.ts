import type { Redis } from 'ioredis';
import type { ClusterKeys } from './keys.ts';

/**
 * Takes the lease when nobody holds it and starts a new term: the term
 * number (the fencing token) is INCRed in the same script, so two nodes can
 * never hold the same term.
 */
const ACQUIRE = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0`;

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

export interface LeaseOptions {
  readonly redis: Redis;
  readonly keys: ClusterKeys;
  readonly nodeId: string;
  /** How long a lease lives without renewal; another node may lead this long after the leader stops renewing. */
  readonly ttlMs: number;
  /** Called on every change of role (a new term, or this node is no longer leader). */
  readonly onChange?: (role: LeaseRole) => void;
  readonly now?: () => number;
}

/**
 * Leader election by a lease in Redis (SET NX PX, renewed every third of its
 * time to live). Each term gets a fencing token from INCR; the fenced store
 * (fenced-store.ts) refuses a write whose token is no longer the current
 * term, so a leader that stalled past its lease cannot write even if it
 * still believes it leads. Locally, a leader steps down once `ttlMs` has
 * passed since the start of its last successful renewal: by then the lease
 * in Redis may have lapsed.
 */
export class LeaderLease {
  private current: LeaseRole = { kind: 'follower' };
  private leaderId: string | undefined;
  /** Local time when the last successful acquire or renewal was sent. */
  private validFrom = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Steps down when the lease may have lapsed, even while a renewal hangs on an unreachable Redis. */
  private expiry: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private stopped = false;
  private readonly now: () => number;

  constructor(private readonly options: LeaseOptions) {
    this.now = options.now ?? Date.now;
  }

  get role(): LeaseRole {
    return this.current;
  }

  get isLeader(): boolean {
    return this.current.kind === 'leader';
  }

  /** The fencing token of this node's term; undefined while it does not lead. */
  get term(): number | undefined {
    return this.current.kind === 'leader' ? this.current.term : undefined;
  }

  /** The leader as last read from Redis (this node when it leads). */
  get leader(): string | undefined {
    return this.current.kind === 'leader' ? this.options.nodeId : this.leaderId;
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  /** One acquire-or-renew step (the timer runs it; tests may call it). */
  tick(): Promise<void> {
    this.ticking ??= this.step().finally(() => {
      this.ticking = undefined;
    });
    return this.ticking;
  }

  private async step(): Promise<void> {
    const { redis, keys, nodeId, ttlMs } = this.options;
    const sentAt = this.now();
    try {
      if (this.current.kind === 'leader') {
        const renewed = await redis.eval(RENEW, 2, keys.lease, keys.term, nodeId, ttlMs, this.current.term);
        if (renewed === 1) this.renewedAt(sentAt);
        else this.become({ kind: 'follower' });
      } else {
        const term = Number(await redis.eval(ACQUIRE, 2, keys.lease, keys.term, nodeId, ttlMs));
        if (term > 0) {
          this.renewedAt(sentAt);
          this.become({ kind: 'leader', term });
        }
      }
      if (this.current.kind === 'follower') this.leaderId = (await redis.get(keys.lease)) ?? undefined;
    } catch {
      // Redis unreachable: a leader keeps its role until its lease may have lapsed (below).
    }
    this.expireIfLapsed();
  }

  private renewedAt(sentAt: number): void {
    this.validFrom = sentAt;
    if (this.expiry) clearTimeout(this.expiry);
    this.expiry = setTimeout(() => this.expireIfLapsed(), Math.max(0, sentAt + this.options.ttlMs - this.now()));
  }

  /** A leader that could not renew for a whole lease steps down: another node may hold the lease by now. */
  private expireIfLapsed(): void {
    if (this.current.kind === 'leader' && this.now() - this.validFrom >= this.options.ttlMs) this.become({ kind: 'follower' });
  }

  private become(role: LeaseRole): void {
    const before = this.current;
    if (before.kind === role.kind && (before.kind !== 'leader' || role.kind !== 'leader' || before.term === role.term)) return;
    this.current = role;
    if (role.kind === 'follower') this.leaderId = undefined;
    this.options.onChange?.(role);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.tick().then(() => this.schedule(this.options.ttlMs / 3));
    }, delayMs);
  }

  /** Stops renewing; with `release`, gives the lease up at once (a clean shutdown). */
  async stop(release: boolean): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.expiry) clearTimeout(this.expiry);
    await this.ticking;
    if (release && this.current.kind === 'leader') {
      await this.options.redis.eval(RELEASE, 1, this.options.keys.lease, this.options.nodeId).catch(() => undefined);
    }
    this.become({ kind: 'follower' });
  }
}
