import type { Redis } from 'ioredis';
import { decodePartial, encodePartial, type PartialAggregate, type PartialMethods } from '../../core/aggregation/partial.ts';
import type { ClusterKeys } from './keys.ts';

/** A partial stays in Redis this long: the leader reads it within the round's close; a stale one must not linger. */
export const PARTIAL_TTL_MS = 10 * 60_000;

/** What the leader found for one member node of a round. */
export type MemberPartial =
  | { readonly kind: 'ok'; readonly node: string; readonly partial: PartialAggregate; readonly bytes: number }
  | { readonly kind: 'missing'; readonly node: string }
  | { readonly kind: 'malformed'; readonly node: string; readonly reason: string };

/**
 * The partial aggregates of a round through Redis (docs/cluster.md): each
 * member node writes `encodePartial` bytes under (term, round, node) once,
 * and the leader reads every member's, refuses a malformed one whole
 * (decodePartial runs checkPartial), and adds the good ones to its own
 * round aggregator. Keys carry the leader's term, so a partial written for
 * a deposed leader's round never mixes with the new leader's rounds.
 */
export class PartialExchange {
  constructor(
    private readonly redis: Redis,
    private readonly keys: ClusterKeys,
  ) {}

  /**
   * A member's partial of `round` under `term`, written once (SET NX): a
   * second write for the same key is refused and returns false, so what the
   * leader reads is the first and only partial of that node.
   */
  async write(term: number, round: number, node: string, partial: PartialAggregate): Promise<boolean> {
    const bytes = encodePartial(partial);
    const reply = await this.redis.set(
      this.keys.partial(term, round, node),
      Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
      'PX',
      PARTIAL_TTL_MS,
      'NX',
    );
    return reply === 'OK';
  }

  /** Each member's partial of the round as Redis holds it: decoded and checked against the model's length, or why not. */
  async read(term: number, round: number, nodes: readonly string[], length: number): Promise<MemberPartial[]> {
    if (nodes.length === 0) return [];
    const replies = await this.redis.mgetBuffer(...nodes.map((node) => this.keys.partial(term, round, node)));
    return nodes.map((node, i): MemberPartial => {
      const bytes = replies[i];
      if (bytes === null || bytes === undefined) return { kind: 'missing', node };
      try {
        return { kind: 'ok', node, partial: decodePartial(new Uint8Array(bytes), length), bytes: bytes.byteLength };
      } catch (error) {
        return { kind: 'malformed', node, reason: (error as Error).message };
      }
    });
  }

  /** The round's partials are combined: their keys go (the TTL would remove them anyway). */
  async discard(term: number, round: number, nodes: readonly string[]): Promise<void> {
    if (nodes.length > 0) await this.redis.del(...nodes.map((node) => this.keys.partial(term, round, node)));
  }
}

/**
 * Adds the members' good partials to the leader's round aggregator and
 * returns the nodes whose partial did not come (missing or malformed): their
 * selected participants count as dropped. A malformed partial is logged
 * with its node and reason and never reaches the sum.
 */
export function combinePartials(
  aggregator: PartialMethods,
  partials: readonly MemberPartial[],
  round: number,
  log: (line: string) => void,
): string[] {
  const addPartial = aggregator.addPartial;
  if (!addPartial) throw new Error("this strategy's round aggregator has no partials: it cannot run on a cluster");
  const lost: string[] = [];
  for (const member of partials) {
    switch (member.kind) {
      case 'ok':
        addPartial.call(aggregator, member.partial);
        break;
      case 'missing':
        log(`cluster: round ${round}: node ${member.node} wrote no partial; its selected participants count as dropped`);
        lost.push(member.node);
        break;
      case 'malformed':
        log(
          `cluster: round ${round}: node ${member.node}'s partial is refused (${member.reason}); its selected participants count as dropped`,
        );
        lost.push(member.node);
        break;
      default:
        throw new Error(`unknown member partial ${member satisfies never as string}`);
    }
  }
  return lost;
}
