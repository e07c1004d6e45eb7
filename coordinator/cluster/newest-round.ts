/**
 * The newest (term, round) a member has heard of, from the leader's round
 * announcements and partial requests. A member opens only a round newer than
 * it: an announcement that arrives (or finishes fetching its model) after the
 * leader already asked for that round's partial, or after a newer round
 * opened, must open nothing.
 */
export class NewestRound {
  private newest: { readonly term: number; readonly round: number } | undefined;

  /** (term, round) is newer than any heard of so far. */
  isNewer(term: number, round: number): boolean {
    const newest = this.newest;
    return newest === undefined || term > newest.term || (term === newest.term && round > newest.round);
  }

  /** The leader announced or closed (term, round): it and everything older are past. */
  heard(term: number, round: number): void {
    if (this.isNewer(term, round)) this.newest = { term, round };
  }
}
