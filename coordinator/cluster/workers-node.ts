import cluster from 'node:cluster';
import path from 'node:path';
import { setupWorker } from '@socket.io/sticky';
import type { Server } from 'socket.io';

/** What the primary tells each worker it forks (`--workers`): the shared port and the worker's slot. */
export const WORKERS_PORT_ENV = 'FL_WORKERS_PORT';
export const WORKER_SLOT_ENV = 'FL_WORKER_SLOT';
/** A worker's message to the primary once its node serves: connections may be routed to it. */
export const WORKER_READY = 'fl:worker-ready';

export interface WorkerReady {
  readonly type: typeof WORKER_READY;
  readonly nodeId: string | undefined;
}

/** The port the primary shares with this process when it is one of `--workers`' nodes; undefined in any other process. */
export function sharedWorkerPort(): number | undefined {
  if (!cluster.isWorker) return undefined;
  const port = Number(process.env[WORKERS_PORT_ENV]);
  return Number.isInteger(port) && port > 0 ? port : undefined;
}

/** A worker's own folder under --data-dir: when it leads it writes its checkpoints there, so two nodes never write the same files. */
export function workerDataDir(dataDir: string): string {
  return path.join(dataDir, `worker-${process.env[WORKER_SLOT_ENV] ?? process.pid}`);
}

/**
 * This worker's socket.io server takes its connections from the primary
 * instead of a port of its own: @socket.io/sticky hands over each TCP
 * connection (or, for a request with a body, its bytes over IPC) and the
 * primary learns which worker holds each engine.io session, so a
 * long-polling session's requests all reach this worker.
 */
export function serveFromPrimary(io: Server, port: number): number {
  setupWorker(io);
  return port;
}

/** Tells the primary that this node serves; it routes new connections to workers only once none is starting. */
export function announceWorkerReady(nodeId: string | undefined): void {
  const ready: WorkerReady = { type: WORKER_READY, nodeId };
  process.send?.(ready);
}
