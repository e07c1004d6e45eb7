import type { Redis } from 'ioredis';
import type { ClusterNodeStatus } from '../../core/protocol/status.ts';
import type { ClusterKeys } from './keys.ts';
import { REDIS_NOW } from './redis-now.ts';

/** Stores one node's heartbeat, stamped with Redis's own clock, so nodes on machines with skewed clocks agree on ages. */
const HEARTBEAT = `${REDIS_NOW}
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], now)
return now`;

/** Every node's heartbeat and age by Redis's clock; drops nodes silent longer than ARGV[1] ms. */
const READ = `${REDIS_NOW}
local seen = redis.call('HGETALL', KEYS[2])
local out = {}
for i = 1, #seen, 2 do
  local age = now - tonumber(seen[i + 1])
  if age > tonumber(ARGV[1]) then
    redis.call('HDEL', KEYS[1], seen[i])
    redis.call('HDEL', KEYS[2], seen[i])
  else
    local beat = redis.call('HGET', KEYS[1], seen[i])
    if beat then
      out[#out + 1] = seen[i]
      out[#out + 1] = beat
      out[#out + 1] = tostring(age)
    end
  end
end
return out`;

/** The nodes whose last heartbeat is at most ARGV[1] ms old by Redis's clock, read now (KEYS[1]: the heartbeat times). */
const LIVE = `${REDIS_NOW}
local seen = redis.call('HGETALL', KEYS[1])
local live = {}
for i = 1, #seen, 2 do
  if now - tonumber(seen[i + 1]) <= tonumber(ARGV[1]) then live[#live + 1] = seen[i] end
end
return live`;

/** What a node says about itself in each heartbeat. */
export interface NodeHeartbeat {
  readonly address: string;
  readonly participants: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
}

/** How long a silent node stays listed (with its growing lastSeenMs) before it is dropped. */
export const NODE_FORGET_MS = 30_000;

/**
 * The node registry: each node writes a heartbeat into a Redis hash every
 * `intervalMs` and reads everyone's back, so `/api/status` on any node can
 * list the whole cluster. A node that stops beating shows a growing
 * `lastSeenMs` and is dropped after NODE_FORGET_MS.
 */
export class NodeRegistry {
  private listed: readonly ClusterNodeStatus[] = [];

  constructor(
    private readonly redis: Redis,
    private readonly keys: ClusterKeys,
    private readonly nodeId: string,
  ) {}

  /** The nodes as last read (beat() refreshes it). */
  get nodes(): readonly ClusterNodeStatus[] {
    return this.listed;
  }

  /** Writes this node's heartbeat and reads everyone's. Throws when Redis is unreachable. */
  async beat(self: NodeHeartbeat): Promise<readonly ClusterNodeStatus[]> {
    const { keys, nodeId } = this;
    await this.redis.eval(HEARTBEAT, 2, keys.nodes, keys.nodesSeen, nodeId, JSON.stringify(self));
    const flat = (await this.redis.eval(READ, 2, keys.nodes, keys.nodesSeen, NODE_FORGET_MS)) as string[];
    const nodes: ClusterNodeStatus[] = [];
    for (let i = 0; i + 2 < flat.length; i += 3) {
      const beat = JSON.parse(flat[i + 1]!) as NodeHeartbeat;
      nodes.push({
        id: flat[i]!,
        address: beat.address,
        participants: beat.participants,
        lastSeenMs: Number(flat[i + 2]),
        bytesIn: beat.bytesIn,
        bytesOut: beat.bytesOut,
      });
    }
    nodes.sort((a, b) => a.id.localeCompare(b.id));
    this.listed = nodes;
    return nodes;
  }

  /**
   * The nodes whose heartbeat is at most `withinMs` old, read from Redis now: the listing of `beat()` is as old as
   * this node's last heartbeat and misses a node that started since.
   */
  async liveWithin(withinMs: number): Promise<string[]> {
    return (await this.redis.eval(LIVE, 1, this.keys.nodesSeen, withinMs)) as string[];
  }

  /** A clean shutdown: this node leaves the listing at once. */
  async leave(): Promise<void> {
    await this.redis.hdel(this.keys.nodes, this.nodeId);
    await this.redis.hdel(this.keys.nodesSeen, this.nodeId);
  }
}
