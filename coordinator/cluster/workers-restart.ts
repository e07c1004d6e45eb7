/**
 * When the primary restarts a worker that exited (`--workers`): at once
 * after a worker that ran long enough to be taken for healthy, then with
 * a doubling delay while each replacement dies young (Redis unreachable at
 * start, a crash in a loop), so a worker that cannot stay up costs the
 * machine a restart every `maxMs` at most, as a supervisor's backoff does.
 */
export class RestartBackoff {
  /** Young deaths in a row, since the last worker that lived `healthyMs`. */
  private youngDeaths = 0;

  constructor(
    private readonly firstMs = 500,
    private readonly maxMs = 30_000,
    private readonly healthyMs = 30_000,
  ) {}

  /** The delay before the next fork of a worker slot whose worker lived `uptimeMs`. */
  delayAfter(uptimeMs: number): number {
    if (uptimeMs >= this.healthyMs) {
      this.youngDeaths = 0;
      return this.firstMs;
    }
    const delay = Math.min(this.maxMs, this.firstMs * 2 ** this.youngDeaths);
    this.youngDeaths++;
    return delay;
  }
}
