import type { Redis } from 'ioredis';

/**
 * Writes to federation state, fenced by the leader's term (Kleppmann's
 * fencing token): one Lua script checks that the term key still holds the
 * writer's token and then applies every operation, atomically. A leader
 * deposed while it stalled (a GC pause, a frozen VM) carries an old token,
 * and its write is refused whole.
 */
const FENCED_WRITE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED term ' .. ARGV[1] .. ' is no longer the current term')
end
local a = 2
for i = 2, #KEYS do
  local command = ARGV[a]
  local count = tonumber(ARGV[a + 1])
  local args = {}
  for j = 1, count do args[j] = ARGV[a + 1 + j] end
  redis.call(command, KEYS[i], unpack(args))
  a = a + 2 + count
end
return #KEYS - 1`;

/** Values are binary-safe: Buffers travel as they are (model weights, partial sums). */
export type StoredValue = string | Buffer;

/** One write inside a fenced transaction. */
export type FencedOp =
  | { readonly kind: 'set'; readonly key: string; readonly value: StoredValue }
  | { readonly kind: 'hset'; readonly key: string; readonly field: string; readonly value: StoredValue }
  | { readonly kind: 'rpush'; readonly key: string; readonly value: StoredValue }
  | { readonly kind: 'del'; readonly key: string };

/** A write refused because the writer's term is over: it no longer leads. */
export class FencedWriteRefused extends Error {
  constructor(readonly term: number) {
    super(`write refused: term ${term} is no longer the current term (another node leads)`);
    this.name = 'FencedWriteRefused';
  }
}

/** The Redis command and its arguments after the key. */
function commandOf(op: FencedOp): [string, ...StoredValue[]] {
  switch (op.kind) {
    case 'set':
      return ['SET', op.value];
    case 'hset':
      return ['HSET', op.field, op.value];
    case 'rpush':
      return ['RPUSH', op.value];
    case 'del':
      return ['DEL'];
    default:
      throw new Error(`unknown fenced op ${op satisfies never as string}`);
  }
}

export class FencedStore {
  constructor(
    private readonly redis: Redis,
    private readonly termKey: string,
  ) {}

  /** Applies `ops` atomically if `term` is still the current term; throws FencedWriteRefused otherwise. */
  async write(term: number, ops: readonly FencedOp[]): Promise<void> {
    const keys = [this.termKey, ...ops.map((op) => op.key)];
    const args: StoredValue[] = [String(term)];
    for (const op of ops) {
      const [command, ...rest] = commandOf(op);
      args.push(command, String(rest.length), ...rest);
    }
    try {
      await this.redis.eval(FENCED_WRITE, keys.length, ...keys, ...args);
    } catch (error) {
      if (error instanceof Error && error.message.startsWith('FENCED')) throw new FencedWriteRefused(term);
      throw error;
    }
  }
}
