import { randomUUID } from 'node:crypto';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import type { ClusterStatus } from '../../core/protocol/status.ts';
import { FencedStore } from './fenced-store.ts';
import { clusterKeys, type ClusterKeys } from './keys.ts';
import { LeaderLease, type LeaseRole } from './lease.ts';
import { DEFAULT_LEASE_TTL_MS } from './lease-ttl.ts';
import { NodeRegistry, type NodeHeartbeat } from './node-registry.ts';

export const DEFAULT_HEARTBEAT_MS = 1_000;

export interface ClusterNodeOptions {
  /** redis://host:port (ioredis URL syntax). */
  readonly redisUrl: string;
  /** The federation's name (the task's): prefixes every key. */
  readonly federation: string;
  readonly nodeId?: string;
  readonly leaseTtlMs?: number;
  readonly heartbeatMs?: number;
  readonly log: (line: string) => void;
  /** This node became leader (with its term) or stopped leading. */
  readonly onRoleChange?: (role: LeaseRole) => void;
  /** Redis answers again after it was unreachable. */
  readonly onReachable?: () => void;
  /** Something in the cluster status changed (a node came or went, Redis reachability). */
  readonly statusChanged?: () => void;
}

/**
 * One coordinator process as a node of a cluster on Redis: the leader lease
 * with its fencing token, the fenced store for federation state, the node
 * registry, and the Redis clients of socket.io's adapter. Three kinds of
 * client: commands fail fast while Redis is unreachable (the lease and the
 * heartbeat must notice), while the adapter's publish and subscribe clients
 * queue and resubscribe, so a broadcast is delayed by an outage, not lost.
 */
export class ClusterNode {
  readonly nodeId: string;
  readonly keys: ClusterKeys;
  readonly lease: LeaderLease;
  readonly store: FencedStore;
  private readonly registry: NodeRegistry;
  private readonly pub: Redis;
  private readonly sub: Redis;
  private reachable = true;
  private unreachableSince: number | undefined;
  private lastError = '';
  private roundTripMs: number | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    private readonly options: ClusterNodeOptions,
    /** The command client: fails fast while Redis is unreachable. */
    readonly redis: Redis,
  ) {
    this.nodeId = options.nodeId ?? randomUUID().slice(0, 8);
    this.keys = clusterKeys(options.federation);
    this.lease = new LeaderLease({
      redisUrl: options.redisUrl,
      keys: this.keys,
      nodeId: this.nodeId,
      ttlMs: options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS,
      onChange: (role) => {
        options.log(
          role.kind === 'leader'
            ? `cluster: node ${this.nodeId} leads (term ${role.term})`
            : `cluster: node ${this.nodeId} no longer leads`,
        );
        options.onRoleChange?.(role);
        options.statusChanged?.();
      },
      log: options.log,
    });
    this.store = new FencedStore(redis, this.keys.term);
    this.registry = new NodeRegistry(redis, this.keys, this.nodeId);
    const queued = { maxRetriesPerRequest: null, lazyConnect: false };
    this.pub = new Redis(options.redisUrl, queued);
    // No ready check (INFO) on the subscriber: since ioredis 5.8.2 the adapter's SUBSCRIBE, queued while reconnecting,
    // can go out before it, and INFO on a subscribed connection throws outside any handler (ioredis #2037), ending the
    // process when Redis comes back. autoResubscribe restores the subscriptions without it.
    this.sub = new Redis(options.redisUrl, { ...queued, enableReadyCheck: false });
    // ioredis reconnects by itself; without a listener an 'error' event would end the process.
    for (const client of [this.pub, this.sub]) client.on('error', () => {});
    redis.on('error', (error: Error) => {
      this.lastError = error.message;
    });
  }

  /**
   * Connects to Redis and checks it once: refuses to start when it cannot be
   * reached, and warns when it does not log every write (appendonly no):
   * then a Redis restart loses acknowledged rounds.
   */
  static async connect(options: ClusterNodeOptions): Promise<ClusterNode> {
    const redis = new Redis(options.redisUrl, {
      // Fail fast while Redis is unreachable: the lease and the heartbeat must see it.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: 2_000,
      lazyConnect: true,
      retryStrategy: (attempt) => Math.min(attempt * 200, 1_000),
    });
    redis.on('error', () => {});
    try {
      await redis.connect();
    } catch (error) {
      redis.disconnect();
      throw new Error(`cannot reach Redis at ${options.redisUrl}: ${(error as Error).message}`);
    }
    for (const line of await durabilityWarnings(redis)) options.log(`warning: ${line}`);
    return new ClusterNode(options, redis);
  }

  /** socket.io's Redis adapter over this node's publish and subscribe clients: `io.adapter(node.adapter())`. */
  adapter(): ReturnType<typeof createAdapter> {
    return createAdapter(this.pub, this.sub, { key: `fl:${this.options.federation}:socket.io` });
  }

  /** Starts the lease and the heartbeat; `self` says what this node reports in each heartbeat. */
  start(self: () => NodeHeartbeat): void {
    this.lease.start();
    const beat = async () => {
      const started = performance.now();
      try {
        await this.registry.beat(self());
        this.roundTripMs = (performance.now() - started) / 2;
        this.setReachable(true);
        // Every node's age moved: dashboards get the fresh list (status pushes are rate-limited).
        this.options.statusChanged?.();
      } catch (error) {
        this.lastError = (error as Error).message;
        this.setReachable(false);
      }
      if (!this.closed) this.heartbeat = setTimeout(() => void beat(), this.options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS);
    };
    void beat();
  }

  private setReachable(reachable: boolean): void {
    if (reachable === this.reachable) return;
    this.reachable = reachable;
    this.unreachableSince = reachable ? undefined : Date.now();
    this.options.log(reachable ? 'cluster: Redis is reachable again' : `cluster: Redis is unreachable (${this.lastError})`);
    this.options.statusChanged?.();
    if (reachable) this.options.onReachable?.();
  }

  get isLeader(): boolean {
    return this.lease.isLeader;
  }

  /** Whether this node reached Redis at its last heartbeat. */
  get redisReachable(): boolean {
    return this.reachable;
  }

  /** Half the time of the last heartbeat's two Redis calls, in ms (for metrics); undefined before the first. */
  get redisRoundTripMs(): number | undefined {
    return this.roundTripMs;
  }

  /** Why the federation is paused for the cluster's sake, in plain words; undefined when it is not. */
  get pausedReason(): string | undefined {
    if (this.reachable) return undefined;
    const since = this.unreachableSince === undefined ? '' : ` for ${Math.round((Date.now() - this.unreachableSince) / 1000)} s`;
    return `the federation is paused: Redis is unreachable${since} (${this.lastError || 'no answer'}); rounds resume when it is back`;
  }

  /** The `cluster` field of the status. */
  status(): ClusterStatus {
    const paused = this.pausedReason;
    return {
      self: this.nodeId,
      leader: this.reachable ? this.lease.leader : this.lease.isLeader ? this.nodeId : undefined,
      term: this.lease.term,
      redis: this.reachable ? 'connected' : 'unreachable',
      ...(paused === undefined ? {} : { paused }),
      nodes: this.registry.nodes,
    };
  }

  /** The nodes whose heartbeat is at most `withinMs` old by Redis's clock, read now (node-registry.ts). */
  liveNodes(withinMs: number): Promise<string[]> {
    return this.registry.liveWithin(withinMs);
  }

  /** Leaves the cluster: gives the lease up and leaves the registry, so the others need not wait for a lapse. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.heartbeat) clearTimeout(this.heartbeat);
    await this.lease.stop(true);
    await this.registry.leave().catch(() => undefined);
    this.redis.disconnect();
    this.pub.disconnect();
    this.sub.disconnect();
  }
}

/** What to tell the operator about Redis's durability settings (docs/cluster.md, "Durability"). */
async function durabilityWarnings(redis: Redis): Promise<string[]> {
  let reply: unknown;
  try {
    reply = await redis.config('GET', 'appendonly');
  } catch (error) {
    return [
      `could not check that Redis logs every write (CONFIG GET appendonly: ${(error as Error).message}); run it with appendonly yes, or a Redis restart loses completed rounds`,
    ];
  }
  const value = Array.isArray(reply) ? String(reply[1]) : '';
  return value === 'yes'
    ? []
    : [
        `Redis runs with appendonly ${value || 'unknown'}: a Redis restart would lose completed rounds, the model and the privacy spent. Run it with appendonly yes (and appendfsync always for "acknowledged means durable"); docs/cluster.md`,
      ];
}
