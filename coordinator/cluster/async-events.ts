import type { Server } from 'socket.io';
import type { FitConfig } from '../../core/protocol/messages.ts';
import type { Generation } from './async-seats.ts';

/** The events of async mode on a cluster between nodes (through the Redis adapter): versions and notices, never model bytes. */
export interface AsyncServerEvents {
  /** The leader opened a model version (and its buffer generation): every node hands this model to its participants from now on. */
  'cluster:async-version': (announcement: AsyncVersionAnnouncement) => void;
  /** A node took the generation's K-th seat: the leader makes the version. */
  'cluster:async-full': (notice: Generation) => void;
}

/** The part of a socket.io server these events use. */
export type AsyncEventServer = Pick<Server<Record<string, never>, Record<string, never>, AsyncServerEvents>, 'on' | 'serverSideEmit'>;

/** A model version open for updates, as every node hears it: the model by its version, never its bytes. */
export interface AsyncVersionAnnouncement extends Generation {
  /** The model participants get now: the generation's base; staleness counts from it. */
  readonly modelVersion: number;
  readonly config: FitConfig;
  /** The example counts every participant that may train claims (claim-cap.ts): each node caps as the leader would. */
  readonly claimedExamples: readonly number[];
}

/** The server's socket.io server as these events see it. */
export function asyncEvents(io: Server): AsyncEventServer {
  return io as unknown as AsyncEventServer;
}

/** Another node's announcement, checked for shape (a version skew must not corrupt a version). */
export function parseVersionAnnouncement(value: unknown): AsyncVersionAnnouncement | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const a = value as Record<string, unknown>;
  if (
    !Number.isInteger(a.term) ||
    !Number.isInteger(a.round) ||
    !Number.isInteger(a.modelVersion) ||
    typeof a.config !== 'object' ||
    a.config === null ||
    !Array.isArray(a.claimedExamples) ||
    !a.claimedExamples.every((n) => typeof n === 'number')
  )
    return undefined;
  return value as AsyncVersionAnnouncement;
}

/** A generation named by another node, checked for shape. */
export function parseGeneration(value: unknown): Generation | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const g = value as Record<string, unknown>;
  return Number.isInteger(g.term) && Number.isInteger(g.round) ? (value as Generation) : undefined;
}
