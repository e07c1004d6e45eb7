import type { Redis } from 'ioredis';
import { REDIS_NOW } from './redis-now.ts';

/** Queue scores of participants never served sit this far below every served one (sequence numbers stay far below it; a larger offset would lose digits in Lua's number formatting). */
const NEVER_SERVED = 1e12;

/**
 * A node's participant that may train takes its place in the one
 * federation-wide queue, ordered by when it last had a slot, as one process
 * orders its idle participants (async-pool.ts): those never served first,
 * in the order they came. "When" is a federation-wide sequence number, not
 * a clock, so no two are ever equal. A place it has already is kept; one
 * holding a slot takes none.
 */
function queueOne(keys: {
  readonly queue: string;
  readonly slots: string;
  readonly queueNode: string;
  readonly served: string;
  readonly sequence: string;
}) {
  return `
local function queue(id, node)
  if redis.call('ZSCORE', ${keys.slots}, id) then return end
  local served = redis.call('HGET', ${keys.served}, id)
  if not served then served = redis.call('INCR', ${keys.sequence}) - ${NEVER_SERVED} end
  redis.call('ZADD', ${keys.queue}, 'NX', served, id)
  redis.call('HSET', ${keys.queueNode}, id, node)
end`;
}

/**
 * Hands free slots (at most C held at once, federation-wide) to the queue's
 * head. Slots past their time go free first. Only the first `free` waiting
 * participants may get one, and of those only this node's (a node can start
 * only its own participants' training); another node's stay at the head
 * until their node asks, so nobody is overtaken: no participant waits
 * behind one that waited less, whichever node either is on.
 */
const GRANT = `${REDIS_NOW}
${queueOne({ queue: 'KEYS[3]', slots: 'KEYS[1]', queueNode: 'KEYS[4]', served: 'KEYS[5]', sequence: 'KEYS[6]' })}
if redis.call('EXISTS', KEYS[7]) == 1 then return false end
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
-- The node's participants that may train (ARGV[4] on) take their places first, again each time: a place the leader
-- purged while this node looked dead comes back at once.
for i = 4, #ARGV do queue(ARGV[i], ARGV[1]) end
local free = tonumber(ARGV[2]) - redis.call('ZCARD', KEYS[1])
if free <= 0 then return {} end
local head = redis.call('ZRANGE', KEYS[3], 0, free - 1)
local granted = {}
for _, id in ipairs(head) do
  if redis.call('HGET', KEYS[4], id) == ARGV[1] then
    redis.call('ZREM', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), id)
    redis.call('HSET', KEYS[2], id, ARGV[1])
    redis.call('HSET', KEYS[5], id, redis.call('INCR', KEYS[6]))
    granted[#granted + 1] = id
  end
end
return granted`;

/** Slots and queue places of nodes not in ARGV (the live ones) go: a dead node's participants neither hold slots nor block the queue. */
const PURGE = `
local live = {}
for i = 1, #ARGV do live[ARGV[i]] = true end
local removed = 0
for pass = 0, 1 do
  local set, owner = KEYS[1 + pass * 2], KEYS[2 + pass * 2]
  local nodes = redis.call('HGETALL', owner)
  for i = 1, #nodes, 2 do
    if not live[nodes[i + 1]] then
      redis.call('ZREM', set, nodes[i])
      redis.call('HDEL', owner, nodes[i])
      removed = removed + 1
    end
  end
end
return removed`;

/**
 * The federation-wide training slots of async mode on a cluster (docs/async.md
 * "Cluster mode"): at most C participants train at once, whichever nodes
 * they are on, and a free slot goes to the participant, on any node, that
 * has waited longest since its last slot. Redis holds a sorted set of held
 * slots (score: when the slot times out, on Redis's clock) and one queue
 * (score: when its participant last had a slot); each operation is one
 * script, so two nodes never hand out the same slot.
 *
 * Participant ids are the federation's (one id is one participant on one
 * node at a time).
 */
export class TrainingSlots {
  private readonly slots: string;
  private readonly slotNode: string;
  private readonly queue: string;
  private readonly queueNode: string;
  private readonly served: string;
  private readonly sequence: string;
  /** Set when the federation finished: no slot is handed out after it. */
  private readonly finishedKey: string;

  constructor(
    private readonly redis: Redis,
    federation: string,
    private readonly node: string,
  ) {
    const prefix = `fl:${federation}:async:`;
    this.slots = `${prefix}slots`;
    this.slotNode = `${prefix}slot-node`;
    this.queue = `${prefix}queue`;
    this.queueNode = `${prefix}queue-node`;
    this.served = `${prefix}served`;
    this.sequence = `${prefix}sequence`;
    this.finishedKey = `${prefix}finished`;
  }

  /**
   * The slots this node may hand out now, with `concurrency` (C) slots in the
   * federation, each held for `slotMs` at most: the ids of this node's
   * participants that got one; undefined once the federation finished. The
   * node's participants that may train (`waiting`) take their places in the
   * queue first, in the same script, each time: a place the leader purged
   * (their node looked dead) is restored at once. A node asks whenever its
   * participants wait (and on a timer: another node's slot may have gone
   * free meanwhile).
   */
  async grant(concurrency: number, slotMs: number, waiting: readonly string[] = []): Promise<string[] | undefined> {
    const granted = (await this.redis.eval(
      GRANT,
      7,
      this.slots,
      this.slotNode,
      this.queue,
      this.queueNode,
      this.served,
      this.sequence,
      this.finishedKey,
      this.node,
      String(concurrency),
      String(slotMs),
      ...waiting,
    )) as string[] | null;
    return granted ?? undefined;
  }

  /** The leader's federation finished: no node hands out a slot after this. */
  async finish(): Promise<void> {
    await this.redis.set(this.finishedKey, '1');
  }

  /** The leader opens a version: the federation runs (again, when a finished one was resumed with more versions). */
  async run(): Promise<void> {
    await this.redis.del(this.finishedKey);
  }

  /** The participant's update arrived, it declined, or its slot timed out here: the slot is free. */
  async release(id: string): Promise<void> {
    await this.redis.multi().zrem(this.slots, id).hdel(this.slotNode, id).exec();
  }

  /** The participant left this node: no slot, no place in the queue, and its history goes (as one process forgets a departed participant). */
  async leave(id: string): Promise<void> {
    await this.redis
      .multi()
      .zrem(this.slots, id)
      .hdel(this.slotNode, id)
      .zrem(this.queue, id)
      .hdel(this.queueNode, id)
      .hdel(this.served, id)
      .exec();
  }

  /** Run by the leader with the live nodes (the registry's heartbeats): the others' slots and queue places go. Returns how many. */
  async purge(liveNodes: readonly string[]): Promise<number> {
    return (await this.redis.eval(PURGE, 4, this.slots, this.slotNode, this.queue, this.queueNode, ...liveNodes)) as number;
  }
}
