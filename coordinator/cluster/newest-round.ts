/** A round of a leader's term. */
export interface TermRound {
  readonly term: number;
  readonly round: number;
}

/** `a` comes before `b`: an older term, or an older round of the same term. */
export function isBefore(a: TermRound, b: TermRound): boolean {
  return a.term < b.term || (a.term === b.term && a.round < b.round);
}

/**
 * The newest (term, round) a member has heard of, from the leader's round
 * announcements and partial requests. A member opens only a round newer than
 * it: an announcement that arrives (or finishes fetching its model) after the
 * leader already asked for that round's partial, or after a newer round
 * opened, must open nothing.
 */
export class NewestRound {
  private newest: TermRound | undefined;

  /** (term, round) is newer than any heard of so far. */
  isNewer(term: number, round: number): boolean {
    return this.newest === undefined || isBefore(this.newest, { term, round });
  }

  /** The leader announced or closed (term, round): it and everything older are past. */
  heard(term: number, round: number): void {
    if (this.isNewer(term, round)) this.newest = { term, round };
  }
}
