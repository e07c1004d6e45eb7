/**
 * The Redis keys of one federation. Every key starts with `fl:<federation>:`
 * (the task's name), so several federations may share one Redis.
 */
export interface ClusterKeys {
  /** The leader's lease: its node id, with a time to live (SET NX PX). */
  readonly lease: string;
  /** The fencing token: INCRed once per term; a write to federation state carries it. */
  readonly term: string;
  /** Hash: node id → its last heartbeat (JSON: address, participants, bytes). */
  readonly nodes: string;
  /** Hash: node id → Redis server time (ms) of its last heartbeat. */
  readonly nodesSeen: string;
  /** JSON: the last completed round, its model version, the task, and the last round number ever started. */
  readonly head: string;
  /** List: every completed round's record (JSON), in order. */
  readonly history: string;
  /** JSON: the strategy's saved state (optimizer moments, accountant, clip norm) as of the last completed round. */
  readonly strategy: string;
  /** The global model of `version` as float32 little-endian bytes, stored once per version. */
  model(version: number): string;
  /** Hash: participant id → what selection needs of it (JSON), one per node: its joined, selectable participants. */
  directory(node: string): string;
  /** JSON: one node's participant status rows (bounded like the dashboard's) and totals, so every node's status lists them (participant-rows.ts). */
  participantRows(node: string): string;
  /** One member node's partial aggregate of a round (core/aggregation/partial.ts frame), written once per (term, round, node). */
  partial(term: number, round: number, node: string): string;
}

export function clusterKeys(federation: string): ClusterKeys {
  const prefix = `fl:${federation}:`;
  return {
    lease: `${prefix}leader`,
    term: `${prefix}term`,
    nodes: `${prefix}nodes`,
    nodesSeen: `${prefix}nodes:seen`,
    head: `${prefix}head`,
    history: `${prefix}history`,
    strategy: `${prefix}strategy`,
    model: (version) => `${prefix}model:${version}`,
    directory: (node) => `${prefix}directory:${node}`,
    participantRows: (node) => `${prefix}participant-rows:${node}`,
    partial: (term, round, node) => `${prefix}term:${term}:round:${round}:partial:${node}`,
  };
}
