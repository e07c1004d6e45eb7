import type { Server } from 'socket.io';
import type { PartialReply, PartialRequest } from './partial-requests.ts';
import type { RoundAnnouncement, RoundReply } from './round-announce.ts';

/** The events between nodes (socket.io's server-side events, through the Redis adapter): versions and requests, never model bytes. */
export interface ClusterServerEvents {
  /** The leader opened a round: each member sends round:start to its own selected participants. */
  'cluster:round': (announcement: RoundAnnouncement, ack: (reply: RoundReply) => void) => void;
  /** The leader closes a round: each member stores its partial in Redis, once. */
  'cluster:partial': (request: PartialRequest, ack: (reply: PartialReply) => void) => void;
}

/** The part of a socket.io server the cluster's events use. */
export type ClusterEventServer = Pick<Server<Record<string, never>, Record<string, never>, ClusterServerEvents>, 'on' | 'serverSideEmit'>;
