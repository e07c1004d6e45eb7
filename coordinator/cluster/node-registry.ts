import type { Redis } from 'ioredis';
import type { ClusterNodeStatus } from '../../core/protocol/status.ts';
import type { ClusterKeys } from './keys.ts';

/** Stores one node's heartbeat, stamped with Redis's own clock, so nodes on machines with skewed clocks agree on ages. */
const HEARTBEAT = `
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ms)
return ms`;

/** Every node's heartbeat and age by Redis's clock; drops nodes silent longer than ARGV[1] ms. */
const READ = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
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

  /** A clean shutdown: this node leaves the listing at once. */
  async leave(): Promise<void> {
    await this.redis.hdel(this.keys.nodes, this.nodeId);
    await this.redis.hdel(this.keys.nodesSeen, this.nodeId);
  }
}
