import type { Strategy } from '../../core/aggregation/strategy.ts';
import { sample, type UniformSource } from '../../core/random/prng.ts';

/**
 * What each participant did when selected, and selection that uses it.
 *
 * A participant is known by its delivery key: its per-participant credential
 * when it has one (so a fresh connection does not wipe its record), else its
 * participant id. After each round, a selected participant that delivered
 * (its update is in the round) counts a delivery; one that dropped out or was
 * rejected counts a miss; a decline is neither (saying no is honest and
 * holds no round open).
 *
 * Weight = (deliveries + 1) / (selections + 2): the mean of a Beta(1, 1)
 * prior updated with the record. A newcomer weighs 1/2, a participant that
 * always delivered tends to 1, one selected k times that never delivered
 * weighs 1/(k + 2). Rounds draw participants with probability proportional
 * to weight, without replacement, so the over-selected extra slots go to
 * those most likely to deliver too.
 */

interface Tally {
  selected: number;
  delivered: number;
}

/** A participant whose record shows at least this many selections and no delivery is not waited for (quorum.ts). */
export const NON_DELIVERER_SELECTIONS = 2;

export class DeliveryRecord {
  private readonly tallies = new Map<string, Tally>();

  /** One selected participant's part in a closed round: true delivered, false missed, undefined declined. */
  record(key: string, delivered: boolean | undefined): void {
    if (delivered === undefined) return;
    const tally = this.tallies.get(key) ?? { selected: 0, delivered: 0 };
    tally.selected++;
    if (delivered) tally.delivered++;
    this.tallies.set(key, tally);
  }

  weight(key: string): number {
    const t = this.tallies.get(key);
    return ((t?.delivered ?? 0) + 1) / ((t?.selected ?? 0) + 2);
  }

  /** Selected at least NON_DELIVERER_SELECTIONS times and never delivered. */
  neverDelivered(key: string): boolean {
    const t = this.tallies.get(key);
    return t !== undefined && t.delivered === 0 && t.selected >= NON_DELIVERER_SELECTIONS;
  }

  forget(key: string): void {
    this.tallies.delete(key);
  }

  get size(): number {
    return this.tallies.size;
  }
}

/**
 * Draws `count` of `items` without replacement, each with probability
 * proportional to its weight (Efraimidis–Spirakis: the largest u^(1/w)).
 * When every weight is equal it is the uniform `sample`, drawn exactly as
 * before, so a federation with no record yet selects as it always did.
 */
export function weightedSample<T>(items: readonly T[], count: number, weight: (item: T) => number, random: UniformSource): T[] {
  const weights = items.map(weight);
  if (weights.every((w) => w === weights[0])) return sample(items, count, random);
  const keyed = items.map((item, i) => ({ item, key: Math.log(Math.max(random.next(), Number.MIN_VALUE)) / weights[i]! }));
  keyed.sort((a, b) => b.key - a.key);
  return keyed.slice(0, Math.min(count, items.length)).map((k) => k.item);
}

/**
 * True when the strategy selects participants its own way (DP-FedAvg's
 * Poisson sampling; wrappers forward the trait): then neither the weighting
 * nor the quorum applies.
 */
export function hasOwnSelection(strategy: Strategy): boolean {
  return strategy.traits.selection === 'own';
}
