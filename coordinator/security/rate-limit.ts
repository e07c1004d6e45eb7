/**
 * A token bucket: `rate` tokens a second flow in, up to `capacity`; each
 * message takes one. Time comes from the caller, so tests drive it.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly rate: number,
    readonly capacity: number,
    now: number,
  ) {
    if (!(rate > 0) || !(capacity >= 1))
      throw new RangeError(`a token bucket needs rate > 0 and capacity >= 1, got ${rate} and ${capacity}`);
    this.tokens = capacity;
    this.last = now;
  }

  /** Takes one token if there is one. */
  take(now: number): boolean {
    const elapsed = Math.max(0, now - this.last) / 1000;
    this.last = now;
    this.tokens = Math.min(this.capacity, this.tokens + elapsed * this.rate);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export interface RateLimitOptions {
  /** Sustained messages per second. */
  readonly rate: number;
  /** Messages that may arrive at once after a quiet spell (default 2 x rate). */
  readonly burst?: number;
  /** A connection sending faster than this multiple of `rate`... (default 10) */
  readonly disconnectFactor?: number;
  /** ...for about this long, beyond its burst, is disconnected (default 2000 ms). */
  readonly disconnectAfterMs?: number;
}

export type RateVerdict = 'ok' | 'limited' | 'disconnect';

/**
 * The message budget of one connection. Two buckets: the first is the
 * budget itself (over it, a message is refused); the second holds
 * `disconnectFactor x rate x disconnectAfterMs` messages and refills at
 * `disconnectFactor x rate`, so it runs dry only when the connection keeps
 * sending far above its budget, and then the connection is cut.
 */
export class ConnectionRateLimiter {
  private readonly budget: TokenBucket;
  private readonly abuse: TokenBucket;
  /** Messages refused so far. */
  limited = 0;

  constructor(options: RateLimitOptions, now: number) {
    const factor = options.disconnectFactor ?? 10;
    const window = (options.disconnectAfterMs ?? 2000) / 1000;
    this.budget = new TokenBucket(options.rate, options.burst ?? Math.max(1, 2 * options.rate), now);
    this.abuse = new TokenBucket(factor * options.rate, Math.max(1, factor * options.rate * window), now);
  }

  check(now: number): RateVerdict {
    const withinAbuse = this.abuse.take(now);
    if (this.budget.take(now)) return 'ok';
    this.limited++;
    return withinAbuse ? 'limited' : 'disconnect';
  }
}
