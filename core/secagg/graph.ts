import { ascii, uint32be, sha256 } from './bytes.ts';
import { SecAggError } from './errors.ts';
import { expandSeed } from './prg.ts';

/**
 * The SecAgg+ neighbour graph (Bell et al., CCS 2020): participant u masks
 * only with, and shares its secrets only among, its k neighbours, so the
 * per-participant cost is O(k) instead of O(n). Construction: the Harary graph
 * H(k, n) (position p joined to p ± 1..k/2, plus p + n/2 when k is odd) on
 * positions 0..n−1, with participants placed on positions by a permutation
 * drawn from the public round seed. Everybody derives the same graph from
 * (round seed, n, k); k ≥ n − 1 gives all pairs (original SecAgg).
 *
 * The seed must not be under the control of a party that could steer a
 * victim's neighbourhood towards colluders: the server draws it fresh per
 * round (enough against an honest-but-curious server; an actively malicious
 * one would need a jointly generated seed).
 */

export interface NeighbourGraph {
  /** n: participants 1..n. */
  readonly size: number;
  /** k: neighbours per participant (n − 1 for all pairs). */
  readonly degree: number;
  readonly complete: boolean;
  /** The neighbours of `index`, ascending, never including `index` itself. */
  neighbours(index: number): readonly number[];
  areNeighbours(a: number, b: number): boolean;
}

export const ROUND_SEED_BYTES = 32;

/** k = 2⌈log2 n⌉ (even, so a k-regular graph exists for every n), or all pairs when that is ≥ n − 1. */
export function suggestedDegree(n: number): number {
  if (!Number.isInteger(n) || n < 2) throw new SecAggError('invalid-config', `need at least 2 participants, got ${n}`);
  return Math.min(n - 1, 2 * Math.ceil(Math.log2(n)));
}

/** Checks (n, k) and returns the effective degree (n − 1 for 'all' or k ≥ n − 1). */
export function effectiveDegree(n: number, k: number | 'all'): number {
  if (!Number.isInteger(n) || n < 2) throw new SecAggError('invalid-config', `need at least 2 participants, got ${n}`);
  if (k === 'all' || k >= n - 1) return n - 1;
  if (!Number.isInteger(k) || k < 1)
    throw new SecAggError('invalid-config', `neighbour count must be a positive integer or 'all', got ${k}`);
  if ((n * k) % 2 !== 0) throw new SecAggError('invalid-config', `no ${k}-regular graph on ${n} participants (n·k is odd): use an even k`);
  return k;
}

class Graph implements NeighbourGraph {
  readonly complete: boolean;
  constructor(
    readonly size: number,
    readonly degree: number,
    private readonly lists: readonly (readonly number[])[],
  ) {
    this.complete = degree === size - 1;
  }

  neighbours(index: number): readonly number[] {
    const list = this.lists[index];
    if (list === undefined || index < 1) throw new SecAggError('unknown-participant', `no participant ${index} in a round of ${this.size}`);
    return list;
  }

  areNeighbours(a: number, b: number): boolean {
    if (a === b) return false;
    return this.neighbours(a).includes(b);
  }
}

/** Uniform integers in [0, m) by rejection from a PRG word stream (deterministic for a seed). */
class WordStream {
  private words: Uint32Array = new Uint32Array(0);
  private next = 0;
  constructor(private readonly seed: Uint8Array) {}

  async below(m: number): Promise<number> {
    const limit = Math.floor(4294967296 / m) * m;
    for (;;) {
      if (this.next >= this.words.length) this.words = await expandSeed(this.seed, Math.max(256, 2 * this.words.length));
      const w = this.words[this.next++]!;
      if (w < limit) return w % m;
    }
  }
}

/** The round's neighbour graph, the same for everyone who knows (roundSeed, n, k). */
export async function buildNeighbourGraph(n: number, k: number | 'all', roundSeed: Uint8Array): Promise<NeighbourGraph> {
  const degree = effectiveDegree(n, k);
  if (!(roundSeed instanceof Uint8Array) || roundSeed.length !== ROUND_SEED_BYTES)
    throw new SecAggError('wrong-size', `the round seed must be ${ROUND_SEED_BYTES} bytes`);
  const lists: number[][] = [[]];
  if (degree === n - 1) {
    for (let u = 1; u <= n; u++) lists.push(Array.from({ length: n - 1 }, (_, i) => (i + 1 < u ? i + 1 : i + 2)));
    return new Graph(n, degree, lists);
  }
  // place[p] = participant at position p: Fisher–Yates driven by a PRG of the hashed seed.
  const seed = await sha256(ascii('fedbrowser/secagg/v1/graph'), roundSeed, uint32be(n, degree));
  const stream = new WordStream(seed);
  const place = Array.from({ length: n }, (_, i) => i + 1);
  for (let i = n - 1; i > 0; i--) {
    const j = await stream.below(i + 1);
    [place[i], place[j]] = [place[j]!, place[i]!];
  }
  for (let u = 1; u <= n; u++) lists.push([]);
  const link = (p: number, q: number): void => {
    lists[place[p]!]!.push(place[q]!);
  };
  for (let p = 0; p < n; p++) {
    for (let j = 1; j <= Math.floor(degree / 2); j++) {
      link(p, (p + j) % n);
      link(p, (p - j + n) % n);
    }
    if (degree % 2 === 1) link(p, (p + n / 2) % n);
  }
  for (const list of lists) list.sort((a, b) => a - b);
  return new Graph(n, degree, lists);
}

/**
 * Whether the members induce a connected subgraph. SecAgg+ needs it of the
 * survivors U3: for any part S of U3 with no edge to the rest of U3, the
 * server could add up S's masked inputs, remove their self masks and the
 * dropped participants' masks, and read Σ_S x (a lone survivor whose
 * neighbours all dropped would be revealed outright).
 */
export function connectedAmong(graph: NeighbourGraph, members: ReadonlySet<number>): boolean {
  const [first] = members;
  if (first === undefined) return true;
  const seen = new Set([first]);
  const queue = [first];
  while (queue.length > 0) {
    for (const v of graph.neighbours(queue.pop()!)) {
      if (members.has(v) && !seen.has(v)) {
        seen.add(v);
        queue.push(v);
      }
    }
  }
  return seen.size === members.size;
}
