import type { Server } from 'socket.io';
import type { FitConfig } from '../../core/protocol/messages.ts';
import type { RoundParticipantOutcome } from '../../core/protocol/status.ts';

/** The events between nodes (socket.io's server-side events, through the Redis adapter): versions and requests, never model bytes. */
export interface ClusterServerEvents {
  /** The leader opened a round: each member sends round:start to its own selected participants. */
  'cluster:round': (announcement: RoundAnnouncement, ack: (reply: RoundReply) => void) => void;
  /** The leader closes a round: each member stores its partial in Redis, once. */
  'cluster:partial': (request: PartialRequest, ack: (reply: PartialReply) => void) => void;
  /** A member tells the leader how one of its selected participants' part ended (an update accepted, refused, ...): never the update. */
  'cluster:settled': (settled: SettledReport) => void;
  /** A member stored its partial of a round before the leader asked (every participant it had selected settled): the leader need not ask it. */
  'cluster:stored': (notice: StoredNotice) => void;
}

/** The part of a socket.io server the cluster's events use. */
export type ClusterEventServer = Pick<Server<Record<string, never>, Record<string, never>, ClusterServerEvents>, 'on' | 'serverSideEmit'>;

/** The leader's round open, as every member hears it: the model by version (never its bytes) and who is selected on each node. */
export interface RoundAnnouncement {
  readonly term: number;
  readonly round: number;
  readonly modelVersion: number;
  readonly config: FitConfig;
  /**
   * How long the round still collects, in ms, as the leader measured it when
   * it sent this. A member counts it on its own clock from when it hears the
   * announcement (round-announce.ts heardRound), so no node's deadline depends
   * on its clock agreeing with the leader's.
   */
  readonly remainingMs: number;
  /** Node id → the ids of its participants selected for the round. */
  readonly selected: Readonly<Record<string, readonly string[]>>;
  /** The example counts every selected participant claimed (claim-cap.ts caps by their median): each node caps as the leader would. */
  readonly claimedExamples?: readonly number[];
}

/** A member's answer: to how many of its selected participants round:start went, or why none. */
export type RoundReply = { readonly node: string; readonly sent: number } | { readonly node: string; readonly refused: string };

/** The leader's request at a round's close: every member writes its partial of this round to Redis, once. */
export interface PartialRequest {
  readonly term: number;
  readonly round: number;
}

/**
 * A member's answer: its partial is in Redis (`stored`) with whose updates
 * are in it and the round's upload bytes it took in (as one coordinator's
 * round record counts them: the round's record counts every node's), or why not.
 */
export type PartialReply =
  | { readonly node: string; readonly stored: true; readonly contributors: readonly string[]; readonly bytesIn: number }
  | { readonly node: string; readonly stored: false; readonly reason: string };

/** A member's reply that its partial is stored. */
export type StoredReply = Extract<PartialReply, { readonly stored: true }>;

/** A member's partial of a round is in Redis, stored before the leader's close request: the reply that request would get, and its round. */
export interface StoredNotice extends StoredReply {
  readonly term: number;
  readonly round: number;
}

/** How one selected participant's part in a round ended on its node (a member's report to the leader). */
export interface SettledReport {
  readonly node: string;
  readonly term: number;
  readonly round: number;
  readonly participantId: string;
  readonly outcome: RoundParticipantOutcome;
  readonly reason?: string;
  /** The update's norm, where norms are shown. */
  readonly norm?: number;
  /** The error code of a refused update. */
  readonly code?: string;
}

const OUTCOMES: readonly RoundParticipantOutcome[] = ['received', 'dropped', 'rejected', 'declined'];

/** Another node's report, checked for shape before the leader uses it (nodes trust each other; a bug or a version skew must not corrupt a round). */
export function parseSettledReport(value: unknown): SettledReport | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const r = value as Record<string, unknown>;
  const optional = (key: string, type: 'string' | 'number') => r[key] === undefined || typeof r[key] === type;
  if (
    typeof r.node !== 'string' ||
    !Number.isInteger(r.term) ||
    !Number.isInteger(r.round) ||
    typeof r.participantId !== 'string' ||
    !OUTCOMES.includes(r.outcome as RoundParticipantOutcome) ||
    !optional('reason', 'string') ||
    !optional('norm', 'number') ||
    !optional('code', 'string')
  )
    return undefined;
  // Only the declared fields: anything else a member sends (a nodeFault flag, say) is the leader's to decide, never the member's.
  return {
    node: r.node,
    term: r.term as number,
    round: r.round as number,
    participantId: r.participantId,
    outcome: r.outcome as RoundParticipantOutcome,
    ...(r.reason === undefined ? {} : { reason: r.reason as string }),
    ...(r.norm === undefined ? {} : { norm: r.norm as number }),
    ...(r.code === undefined ? {} : { code: r.code as string }),
  };
}

/**
 * Whose updates a member's partial holds and their bytes, as its reply or
 * notice gives them, checked for shape; undefined when malformed. A member of
 * an earlier build sends no bytes: 0, so a rolling upgrade keeps its partial.
 */
function contributions(r: Record<string, unknown>): { contributors: readonly string[]; bytesIn: number } | undefined {
  const { contributors, bytesIn = 0 } = r;
  if (!Array.isArray(contributors) || !contributors.every((id) => typeof id === 'string')) return undefined;
  if (typeof bytesIn !== 'number' || !Number.isSafeInteger(bytesIn) || bytesIn < 0) return undefined;
  return { contributors, bytesIn };
}

/** A member's stored notice, checked for shape: undefined when it is not one. */
export function parseStoredNotice(value: unknown): StoredNotice | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const r = value as Record<string, unknown>;
  if (typeof r.node !== 'string' || !Number.isInteger(r.term) || !Number.isInteger(r.round)) return undefined;
  const named = contributions(r);
  return named && { node: r.node, stored: true, term: r.term as number, round: r.round as number, ...named };
}

/** A member's partial reply, checked for shape: undefined when it is not one. */
export function parsePartialReply(value: unknown): PartialReply | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const r = value as Record<string, unknown>;
  if (typeof r.node !== 'string') return undefined;
  if (r.stored === true) {
    const named = contributions(r);
    return named && { node: r.node, stored: true, ...named };
  }
  return r.stored === false && typeof r.reason === 'string' ? (value as PartialReply) : undefined;
}
