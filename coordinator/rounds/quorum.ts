/**
 * When a plain (not secure) round may close before every selected
 * participant has answered. A round always closes when every selected
 * participant has settled (delivered, dropped, been rejected or declined) or
 * at its deadline; besides that, it closes as soon as its quorum is met:
 *
 * 1. over-selection: more were selected than clientsPerRound, and
 *    clientsPerRound updates are in: the extra ones were asked only to cover
 *    drop-outs, and none are left to cover;
 * 2. known non-deliverers: at least max(1, minUpdates) updates are in, and
 *    every participant still outstanding was selected at least twice before
 *    and never delivered (selection.ts): waiting for them has so far always
 *    meant waiting out the deadline.
 *
 * Whoever is still outstanding then is dropped from the round ("the round
 * reached its quorum"); a late update gets WRONG_ROUND.
 */
export interface QuorumInput {
  readonly selected: number;
  readonly received: number;
  readonly clientsPerRound: number;
  readonly minUpdates: number;
  /** How many selected participants have not settled. */
  readonly outstanding: number;
  /**
   * How many of those have a record of never delivering (selection.ts).
   * Asked only when the rest of rule 2 holds: the round checks its quorum
   * on every update, and this may read every selected participant.
   */
  readonly outstandingNeverDelivered: () => number;
}

/** Why the round may close now, or undefined. */
export function quorumMet(input: QuorumInput): string | undefined {
  if (input.outstanding === 0) return undefined; // every one settled: the ordinary close
  if (input.selected > input.clientsPerRound && input.received >= input.clientsPerRound) {
    return `the round reached its quorum: ${input.received} updates of the ${input.clientsPerRound} wanted arrived (over-selection)`;
  }
  if (input.received >= Math.max(1, input.minUpdates) && input.outstandingNeverDelivered() === input.outstanding) {
    return 'the round reached its quorum: the participants still outstanding have never delivered an update when selected';
  }
  return undefined;
}
