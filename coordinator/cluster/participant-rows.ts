import type { Redis } from 'ioredis';
import type { ClusterNodeStatus, FederationStatus, ParticipantStatus } from '../../core/protocol/status.ts';
import type { Participants } from '../rounds/participants.ts';
import { dashboardView, listedParticipants } from '../rounds/status-view.ts';
import type { ClusterKeys } from './keys.ts';
import { DIRECTORY_LIVE_MS } from './participant-directory.ts';

/** One node's participants as it publishes them: its rows as its dashboard status lists them, and its totals. */
export interface NodeParticipantRows {
  readonly participants: readonly ParticipantStatus[];
  readonly known: number;
  readonly connected: number;
  readonly departedContributors: number;
}

/** A node's rows stay in Redis this long after its last sync: a dead node's key goes by itself. */
export const PARTICIPANT_ROWS_TTL_MS = 30_000;

/** This node's participants as it publishes them: at most STATUS_PARTICIPANTS_LISTED rows, connected first, each naming `node`. */
export function ownParticipantRows(participants: Participants, node: string): NodeParticipantRows {
  const rows = participants.rows();
  return {
    participants: listedParticipants(rows).map((p) => ({ ...p, node })),
    known: rows.length,
    connected: rows.filter((p) => p.connected).length,
    departedContributors: participants.forgottenContributors,
  };
}

/**
 * Every node's participants in every node's status (`--redis`). Each node
 * writes its status rows, bounded like the dashboard's, to one Redis key of
 * its own (only when they changed; the TTL refreshed otherwise) and reads
 * the other live nodes' keys in the same pipeline, once a second. The status
 * merges the last read from memory: a status request never waits on Redis
 * or on another node, and a node whose heartbeat is older than
 * DIRECTORY_LIVE_MS (Redis's clock, as the participant directory) is left
 * out, so a dead node's participants disappear with its heartbeat.
 */
export class ClusterParticipantRows {
  private publishedText: string | undefined;
  private remote: ReadonlyMap<string, NodeParticipantRows> = new Map();
  private remoteText = '';

  constructor(
    private readonly redis: Redis,
    private readonly keys: ClusterKeys,
    private readonly nodeId: string,
  ) {}

  /** Publishes this node's rows (when changed) and reads the live other nodes'. Resolves true when what the others publish changed. Throws when Redis is unreachable. */
  async sync(own: NodeParticipantRows, nodes: readonly ClusterNodeStatus[]): Promise<boolean> {
    const key = this.keys.participantRows(this.nodeId);
    const text = JSON.stringify(own);
    const live = liveOthers(nodes, this.nodeId);
    const pipeline = this.redis.pipeline();
    if (text === this.publishedText) pipeline.pexpire(key, PARTICIPANT_ROWS_TTL_MS);
    else pipeline.set(key, text, 'PX', PARTICIPANT_ROWS_TTL_MS);
    if (live.length > 0) pipeline.mget(...live.map((node) => this.keys.participantRows(node)));
    // Unknown whether the rows are in Redis: the next sync writes them again.
    this.publishedText = undefined;
    const results = (await pipeline.exec()) ?? [];
    for (const [error] of results) if (error) throw error;
    // PEXPIRE answers 0 when the key expired meanwhile (a long pause): nothing was refreshed, so the next sync writes it again.
    if (results[0]?.[1] !== 0) this.publishedText = text;
    const texts = live.length > 0 ? (results[1]![1] as (string | null)[]) : [];
    const remote = new Map<string, NodeParticipantRows>();
    texts.forEach((rows, i) => {
      if (rows !== null) remote.set(live[i]!, JSON.parse(rows) as NodeParticipantRows);
    });
    const remoteText = JSON.stringify([...remote]);
    this.remote = remote;
    if (remoteText === this.remoteText) return false;
    this.remoteText = remoteText;
    return true;
  }

  /**
   * `status` (this node's dashboard status, its own rows only) with every
   * live node's rows: own rows name this node, totals add up over the
   * nodes, and the list keeps the dashboard's bound (connected first).
   */
  merge(status: FederationStatus, nodes: readonly ClusterNodeStatus[]): FederationStatus {
    const live = liveOthers(nodes, this.nodeId);
    const others = live.flatMap((node) => {
      const rows = this.remote.get(node);
      return rows === undefined ? [] : [rows];
    });
    const own = status.participantTotals;
    const sum = (pick: (rows: NodeParticipantRows) => number) => others.reduce((total, rows) => total + pick(rows), 0);
    return dashboardView({
      ...status,
      participants: status.participants
        .map((p): ParticipantStatus => ({ ...p, node: this.nodeId }))
        .concat(others.flatMap((rows) => rows.participants)),
      participantTotals: {
        known: (own?.known ?? status.participants.length) + sum((r) => r.known),
        connected: (own?.connected ?? status.participants.filter((p) => p.connected).length) + sum((r) => r.connected),
        listed: 0, // dashboardView counts the rows it keeps
        departedContributors: (own?.departedContributors ?? 0) + sum((r) => r.departedContributors),
      },
    });
  }

  /** A clean shutdown: this node's rows leave at once. */
  async leave(): Promise<void> {
    await this.redis.del(this.keys.participantRows(this.nodeId));
  }
}

/** The other nodes whose heartbeat is fresh enough for their participants to count (the directory's rule). */
function liveOthers(nodes: readonly ClusterNodeStatus[], self: string): string[] {
  return nodes.filter((n) => n.id !== self && n.lastSeenMs <= DIRECTORY_LIVE_MS).map((n) => n.id);
}
