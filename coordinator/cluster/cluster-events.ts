import type { Server } from 'socket.io';
import type { FitConfig } from '../../core/protocol/messages.ts';

/** The events between nodes (socket.io's server-side events, through the Redis adapter): versions and requests, never model bytes. */
export interface ClusterServerEvents {
  /** The leader opened a round: each member sends round:start to its own selected participants. */
  'cluster:round': (announcement: RoundAnnouncement, ack: (reply: RoundReply) => void) => void;
  /** The leader closes a round: each member stores its partial in Redis, once. */
  'cluster:partial': (request: PartialRequest, ack: (reply: PartialReply) => void) => void;
}

/** The part of a socket.io server the cluster's events use. */
export type ClusterEventServer = Pick<Server<Record<string, never>, Record<string, never>, ClusterServerEvents>, 'on' | 'serverSideEmit'>;

/** The leader's round open, as every member hears it: the model by version (never its bytes) and who is selected on each node. */
export interface RoundAnnouncement {
  readonly term: number;
  readonly round: number;
  readonly modelVersion: number;
  readonly config: FitConfig;
  /** Wall-clock deadline (ms since the Unix epoch), as in round:start. */
  readonly deadline: number;
  /** Node id → the ids of its participants selected for the round. */
  readonly selected: Readonly<Record<string, readonly string[]>>;
}

/** A member's answer: to how many of its selected participants round:start went, or why none. */
export type RoundReply = { readonly node: string; readonly sent: number } | { readonly node: string; readonly refused: string };

/** The leader's request at a round's close: every member writes its partial of this round to Redis, once. */
export interface PartialRequest {
  readonly term: number;
  readonly round: number;
}

/** A member's answer: its partial is in Redis (`stored`), or why not. */
export type PartialReply =
  | { readonly node: string; readonly stored: true }
  | { readonly node: string; readonly stored: false; readonly reason: string };
