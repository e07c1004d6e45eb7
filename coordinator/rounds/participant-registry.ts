/**
 * Which participant records may be forgotten. A participant that left is
 * kept for a grace period (it may rejoin with its id and rejoin secret after
 * a reload or a network blip), then its record leaves the live list: one
 * that never contributed leaves no trace, a contributor stays in the round
 * history (each round's timeline names it) and in a count. At most
 * `maxDeparted` departed records are kept at all: beyond that the oldest go
 * before their grace is up, so join/leave churn cannot grow memory or
 * /api/status, however fast it comes.
 */
export class DepartedParticipants {
  /** Departed ids in the order they left, with the time (a Map keeps insertion order). */
  private readonly departed = new Map<string, number>();

  constructor(
    readonly graceMs: number,
    readonly maxDeparted: number,
  ) {}

  left(id: string, at: number): void {
    this.departed.delete(id);
    this.departed.set(id, at);
  }

  returned(id: string): void {
    this.departed.delete(id);
  }

  get size(): number {
    return this.departed.size;
  }

  /**
   * Takes out and returns the ids to forget now: those gone longer than the
   * grace period, and the oldest beyond `maxDeparted`. `keep` says which may
   * not go yet (selected in the open round): they stay, to be looked at again.
   */
  expire(now: number, keep: (id: string) => boolean): string[] {
    const out: string[] = [];
    const held: [string, number][] = [];
    for (const [id, at] of this.departed) {
      const over = this.departed.size - out.length - held.length > this.maxDeparted;
      if (!over && now - at < this.graceMs) break;
      if (keep(id)) held.push([id, at]);
      else out.push(id);
    }
    for (const id of out) this.departed.delete(id);
    for (const [id] of held) this.departed.delete(id);
    for (const [id, at] of held) this.departed.set(id, at);
    return out;
  }
}
