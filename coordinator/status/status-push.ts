/** Dashboards get at most this many status pushes per second. */
const STATUS_PUSHES_PER_SECOND = 10;

/**
 * Pushes the status to dashboards when it changed, at most
 * STATUS_PUSHES_PER_SECOND times a second: changes in between are folded
 * into the next push, which always carries the latest status.
 */
export class StatusPush {
  private timer: NodeJS.Timeout | undefined;
  private lastPush = 0;
  private stopped = false;

  constructor(private readonly push: () => void) {}

  /** Something in the status changed. */
  changed(): void {
    if (this.timer || this.stopped) return;
    const wait = Math.max(0, this.lastPush + 1000 / STATUS_PUSHES_PER_SECOND - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.lastPush = Date.now();
      this.push();
    }, wait);
  }

  /** No more pushes (the coordinator closes). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
