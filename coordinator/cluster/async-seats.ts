import type { Redis } from 'ioredis';
import { FencedStore } from './fenced-store.ts';
import { clusterKeys } from './keys.ts';

/**
 * The federation-wide FedBuff buffer's seats (docs/async.md "Cluster mode"):
 * the leader opens one buffer generation per model version, fenced by its
 * term; a node that accepted an update claims a seat in it through one Lua
 * script, atomically for the whole federation, so a generation never holds
 * more than K updates, nor (under client-level DP) two from one participant,
 * whichever nodes they reached, and an update's staleness is measured
 * against the federation's version, not the node's.
 */
const CLAIM_SEAT = `
local function ticket()
  if ARGV[10] ~= '' then return ARGV[10] end
  local seq = redis.call('INCR', KEYS[5])
  local t = ARGV[4] .. '\t' .. ARGV[3] .. '\t' .. seq
  redis.call('ZADD', KEYS[4], seq, t)
  return t
end
local function done(outcome, count, base)
  if ARGV[10] ~= '' then redis.call('ZREM', KEYS[4], ARGV[10]) end
  return {outcome, count, base, ''}
end
-- A waiting update's ticket the leader purged (its node looked dead for a while) comes back at its old place.
if ARGV[10] ~= '' then redis.call('ZADD', KEYS[4], 'NX', tonumber(string.match(ARGV[10], '\t(%d+)$')), ARGV[10]) end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return done('fenced', 0, 0) end
local open = redis.call('GET', KEYS[2])
if not open then return {'closed', -1, 0, ticket()} end
local term, round, base = string.match(open, '^(%d+):(%d+):(%d+)$')
if term ~= ARGV[1] then return {'closed', -1, 0, ticket()} end
if round ~= ARGV[2] then return {'closed', tonumber(round), tonumber(base), ticket()} end
base = tonumber(base)
local staleness = base - tonumber(ARGV[5])
if staleness < 0 then return done('ahead', 0, base) end
if staleness > tonumber(ARGV[6]) then return done('stale', staleness, base) end
local taken = redis.call('HLEN', KEYS[3])
local size = tonumber(ARGV[7])
local once = ARGV[8] == 'once'
if once and redis.call('HEXISTS', KEYS[3], ARGV[3]) == 1 then return {'duplicate', taken, base, ticket()} end
if taken >= size then return {'full', taken, base, ticket()} end
-- Updates waiting since an earlier generation take seats first, in the order they came, whichever node holds them.
local free = size - taken
local ahead = 0
for _, t in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
  if t == ARGV[10] or ahead >= free then break end
  local participant = string.match(t, '^[^\t]*\t(.*)\t%d+$')
  if not (once and redis.call('HEXISTS', KEYS[3], participant) == 1) then ahead = ahead + 1 end
end
if ahead >= free then return {'full', taken, base, ticket()} end
local field = ARGV[3]
if not once then field = ARGV[3] .. '#' .. (taken + 1) end
redis.call('HSET', KEYS[3], field, ARGV[4] .. '\t' .. staleness .. '\t' .. ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[9])
return done('seat', taken + 1, base)`;

/** Waiting updates' tickets of nodes not in ARGV (the live ones) go: a dead node's never block the seats. */
const PURGE_TICKETS = `
local live = {}
for i = 1, #ARGV do live[ARGV[i]] = true end
local removed = 0
for _, t in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if not live[string.match(t, '^([^\t]*)\t')] then
    redis.call('ZREM', KEYS[1], t)
    removed = removed + 1
  end
end
return removed`;

/** A generation's seats stay in Redis this long: the leader reads them at the version's close; a dead leader's must not linger. */
export const SEATS_TTL_MS = 10 * 60_000;

/** The count of models sent stays this long after the last hand-out: longer than any version stays open. */
const SENT_TTL_MS = 24 * 3_600_000;

/** The buffer generation a member claims in: the leader's term and the version's round number (never reused, as round numbers are not). */
export interface Generation {
  readonly term: number;
  readonly round: number;
}

/** What a claim got. */
export type SeatClaim =
  /** Seat `seat` of K; `seat === K` fills the generation: its node tells the leader. `staleness` is against the federation's version. */
  | { readonly kind: 'seat'; readonly seat: number; readonly full: boolean; readonly staleness: number; readonly baseVersion: number }
  /**
   * K seats are taken, or the free ones belong to updates waiting since an
   * earlier generation: the update waits, with its `ticket` (its place in
   * the federation-wide order of waiting updates), and claims again.
   */
  | { readonly kind: 'full'; readonly ticket: string }
  /** Under client-level DP this participant already has a seat in this generation: its update waits for the next, with its ticket. */
  | { readonly kind: 'duplicate'; readonly ticket: string }
  /** More than S versions old against the generation's version: refused with UPDATE_TOO_STALE. */
  | { readonly kind: 'stale'; readonly staleness: number; readonly generationVersion: number }
  /** This generation is closed (the leader is making its version); `current` is the one open now, if any. */
  | { readonly kind: 'closed'; readonly current: (Generation & { readonly baseVersion: number }) | undefined; readonly ticket: string }
  /** The update names a base version the generation has not reached: not a model this federation handed out. */
  | { readonly kind: 'ahead'; readonly generationVersion: number }
  /** The term is over (another node leads): the generation went with it, and the update counts as lost. */
  | { readonly kind: 'fenced' };

/** A seat taken: by whom, on which node, with the staleness its update went in with. */
export interface Seat {
  readonly node: string;
  readonly participantId: string;
  readonly staleness: number;
}

/** One claim's input. */
export interface SeatRequest {
  readonly generation: Generation;
  readonly participantId: string;
  readonly node: string;
  /** The model version the update was trained from. */
  readonly baseVersion: number;
  /** K: seats per generation. */
  readonly bufferSize: number;
  /** S: the largest staleness taken. */
  readonly maxStaleness: number;
  /** Client-level DP: at most one seat per participant in a generation (its sensitivity is one clipped update). */
  readonly oncePerParticipant: boolean;
  /** The update's ticket from an earlier claim that made it wait: it keeps its place in the order. */
  readonly ticket?: string;
}

/** Redis's reply to CLAIM_SEAT: the outcome, a count or staleness, the generation's base version, and the waiting update's ticket. */
type ClaimReply = [string, number, number, string];

export class BufferSeats {
  private readonly termKey: string;
  private readonly generationKey: string;
  private readonly seatsPrefix: string;
  /** Sorted set of the tickets of updates waiting for a seat (score: the order they came in, federation-wide). */
  private readonly waitingKey: string;
  private readonly ticketKey: string;
  /** Model bytes sent to participants since the leader last closed a version, per term: `${sentPrefix}${term}`. */
  private readonly sentPrefix: string;
  private readonly fenced: FencedStore;

  constructor(
    private readonly redis: Redis,
    federation: string,
  ) {
    const keys = clusterKeys(federation);
    this.termKey = keys.term;
    this.generationKey = `fl:${federation}:async:generation`;
    this.seatsPrefix = `fl:${federation}:async:seats:`;
    this.waitingKey = `fl:${federation}:async:waiting`;
    this.ticketKey = `fl:${federation}:async:ticket`;
    this.sentPrefix = `fl:${federation}:async:sent:`;
    this.fenced = new FencedStore(redis, keys.term);
  }

  private seatsKey({ term, round }: Generation): string {
    return `${this.seatsPrefix}${term}:${round}`;
  }

  /** The leader opens the buffer of version `round`, applied to model `baseVersion`; fenced by its term (FencedWriteRefused). */
  async open(generation: Generation, baseVersion: number): Promise<void> {
    const value = `${generation.term}:${generation.round}:${baseVersion}`;
    await this.fenced.write(generation.term, [{ kind: 'set', key: this.generationKey, value }]);
  }

  /**
   * The leader closes the buffer (its K-th seat is taken, or a stop): claims
   * after this get `closed`, so no seat is taken once the leader gathers the
   * partials. Fenced by its term.
   */
  async close(generation: Generation): Promise<void> {
    await this.fenced.write(generation.term, [{ kind: 'del', key: this.generationKey }]);
  }

  /** A seat for one accepted update, claimed atomically for the whole federation. */
  async claim(request: SeatRequest): Promise<SeatClaim> {
    const { generation } = request;
    const [outcome, count, base, ticket] = (await this.redis.eval(
      CLAIM_SEAT,
      5,
      this.termKey,
      this.generationKey,
      this.seatsKey(generation),
      this.waitingKey,
      this.ticketKey,
      String(generation.term),
      String(generation.round),
      request.participantId,
      request.node,
      String(request.baseVersion),
      String(request.maxStaleness),
      String(request.bufferSize),
      request.oncePerParticipant ? 'once' : 'many',
      String(SEATS_TTL_MS),
      request.ticket ?? '',
    )) as ClaimReply;
    switch (outcome) {
      case 'seat':
        return { kind: 'seat', seat: count, full: count >= request.bufferSize, staleness: base - request.baseVersion, baseVersion: base };
      case 'full':
        return { kind: 'full', ticket };
      case 'duplicate':
        return { kind: 'duplicate', ticket };
      case 'stale':
        return { kind: 'stale', staleness: count, generationVersion: base };
      case 'ahead':
        return { kind: 'ahead', generationVersion: base };
      case 'fenced':
        return { kind: 'fenced' };
      case 'closed':
        return { kind: 'closed', current: count >= 0 ? { term: generation.term, round: count, baseVersion: base } : undefined, ticket };
      default:
        throw new Error(`unknown seat claim outcome ${outcome}`);
    }
  }

  /**
   * Who holds the generation's seats, and on which node: the leader checks
   * each node's partial against it (its count, the contributors it names).
   */
  async seated(generation: Generation): Promise<Seat[]> {
    const seats = await this.redis.hvals(this.seatsKey(generation));
    return seats.map((value) => {
      const [node = '', staleness = '0'] = value.split('\t', 2);
      return { node, staleness: Number(staleness), participantId: value.slice(node.length + staleness.length + 2) };
    });
  }

  /** How many seats of the generation are taken. */
  async taken(generation: Generation): Promise<number> {
    return await this.redis.hlen(this.seatsKey(generation));
  }

  /**
   * A node sent a model of the leader's `term` to a participant (a training
   * slot): counted, on any node, for that term's version that closes next.
   * A node's count goes on the same connection as its seat claims, so an
   * update's hand-out is counted before its seat is taken, and so before the
   * leader takes the count of the version the update goes into. The key
   * outlives any version (a day from the last hand-out): a deposed term's
   * count is left to expire, never added to another term's versions.
   */
  async countSent(term: number, bytes: number): Promise<void> {
    const key = `${this.sentPrefix}${term}`;
    await this.redis.multi().incrby(key, bytes).pexpire(key, SENT_TTL_MS).exec();
  }

  /** The leader closes a version: the model bytes sent in its term since the last close, federation-wide (the version's `bytesOut`), counted afresh from here. */
  async takeSent(term: number): Promise<number> {
    const key = `${this.sentPrefix}${term}`;
    // GET and DEL in one transaction (GETDEL needs Redis 6.2).
    const replies = await this.redis.multi().get(key).del(key).exec();
    const [error, value] = replies?.[0] ?? [new Error('the transaction was discarded'), null];
    if (error) throw error;
    return Number(value ?? 0);
  }

  /** Run by the leader with the live nodes: the tickets of updates a dead node held go (they are lost with it). Returns how many. */
  async purge(liveNodes: readonly string[]): Promise<number> {
    return (await this.redis.eval(PURGE_TICKETS, 1, this.waitingKey, ...liveNodes)) as number;
  }

  /** The generation's version is committed: its seats go (the TTL would remove them anyway). */
  async discard(generation: Generation): Promise<void> {
    await this.redis.del(this.seatsKey(generation));
  }
}
