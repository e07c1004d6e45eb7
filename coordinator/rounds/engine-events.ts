import type { Clock, TimerHandle } from './clock.ts';
import type { OpenRound } from './collection.ts';

/**
 * Work the engine does on a fresh stack, after the messages of the current
 * step went out: open the next round if it may (after a join, after a round
 * was published), or close a round whose collection is complete.
 */
export type EngineEvent = { readonly kind: 'maybe-start' } | { readonly kind: 'close'; readonly round: OpenRound };

/**
 * The engine's queue of deferred events, run in order on one clock timer at
 * 0 ms, and the async work in flight (evaluations, saves), so that
 * `idle()` can tell when nothing more happens without the clock moving.
 */
export class EngineEvents {
  private readonly queue: EngineEvent[] = [];
  private timer: TimerHandle | undefined;
  private draining = false;
  private readonly work = new Set<Promise<unknown>>();

  constructor(
    private readonly clock: Clock,
    private readonly run: (event: EngineEvent) => void,
  ) {}

  push(event: EngineEvent): void {
    this.queue.push(event);
    if (this.timer === undefined && !this.draining) this.timer = this.clock.setTimer(0, () => this.drain());
  }

  /** Runs every queued event now, those they queue included. */
  drain(): void {
    if (this.timer !== undefined) this.clock.clear(this.timer);
    this.timer = undefined;
    if (this.draining) return;
    this.draining = true;
    try {
      for (let event = this.queue.shift(); event; event = this.queue.shift()) this.run(event);
    } finally {
      this.draining = false;
    }
  }

  /** Registers async work that idle() waits for; returns it unchanged. */
  track<T>(work: Promise<T>): Promise<T> {
    this.work.add(work);
    const done = () => this.work.delete(work);
    work.then(done, done);
    return work;
  }

  get pending(): boolean {
    return this.queue.length > 0 || this.work.size > 0;
  }

  /** Waits for the work in flight now (not for work it starts). */
  async inFlight(): Promise<void> {
    await Promise.allSettled([...this.work]);
  }
}
