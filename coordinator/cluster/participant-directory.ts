import type { Redis } from 'ioredis';
import type { ClusterNodeStatus } from '../../core/protocol/status.ts';
import type { ClusterKeys } from './keys.ts';

/** What the leader's selection needs of a participant on another node. */
export interface DirectoryEntry {
  readonly id: string;
  /** The examples it claims (FedAvg's weight; the claim cap's input). */
  readonly numExamples: number;
  /** Whose delivery record it builds (its credential, or its id): reliability-weighted selection. */
  readonly deliveryKey: string;
}

/** A participant of another node, as the leader may select it. */
export interface RemoteCandidate extends DirectoryEntry {
  readonly node: string;
}

/** A node silent longer than this (three missed heartbeats) is taken for dead: its participants are not selected. */
export const DIRECTORY_LIVE_MS = 3_000;

/**
 * The cluster's participant directory: each node keeps a Redis hash of its
 * joined, selectable participants, rewritten whole when one joins or leaves
 * or its state changes; the leader reads the hashes of the nodes the
 * registry saw recently. A hash rather than the adapter's `fetchSockets()`:
 * that asks every node on each selection and waits out a dead node's
 * timeout, while a hash is one read per live node and a dead node is
 * recognised by its heartbeat's age (Redis's clock), not by a timeout.
 */
export class ParticipantDirectory {
  constructor(
    private readonly redis: Redis,
    private readonly keys: ClusterKeys,
    private readonly nodeId: string,
  ) {}

  /** This node's selectable participants now: the hash is replaced whole, atomically. */
  async publish(entries: readonly DirectoryEntry[]): Promise<void> {
    const key = this.keys.directory(this.nodeId);
    const multi = this.redis.multi().del(key);
    if (entries.length > 0) multi.hset(key, Object.fromEntries(entries.map((e) => [e.id, JSON.stringify(e)])));
    await multi.exec();
  }

  /** The selectable participants of every other node the registry saw within DIRECTORY_LIVE_MS. */
  async remoteCandidates(nodes: readonly ClusterNodeStatus[]): Promise<RemoteCandidate[]> {
    const live = nodes.filter((n) => n.id !== this.nodeId && n.lastSeenMs <= DIRECTORY_LIVE_MS).map((n) => n.id);
    const hashes = await Promise.all(live.map((node) => this.redis.hgetall(this.keys.directory(node))));
    return live.flatMap((node, i) => Object.values(hashes[i]!).map((text) => ({ ...(JSON.parse(text) as DirectoryEntry), node })));
  }

  /** A clean shutdown: this node's participants leave the directory at once. */
  async leave(): Promise<void> {
    await this.redis.del(this.keys.directory(this.nodeId));
  }
}
