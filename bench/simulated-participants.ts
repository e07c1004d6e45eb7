import { io, type Socket } from 'socket.io-client';
import { PROTOCOL_VERSION } from '../core/protocol/messages.ts';

/**
 * Simulated participants for the throughput benchmarks (bench/coordinator.ts,
 * bench/cluster-clients.ts): plain socket.io clients that speak the
 * participant protocol (join, update with a ready-made frame) and train
 * nothing.
 */

/**
 * Opens n connections in batches: the coordinator's admission pool holds at
 * most a few dozen not-yet-authenticated transports per address and pushes
 * out the oldest beyond that (coordinator/security/admission.ts), and every
 * simulated participant comes from 127.0.0.1.
 */
export async function connect(url: string, n: number): Promise<Socket[]> {
  const sockets: Socket[] = [];
  const BATCH = 16;
  for (let start = 0; start < n; start += BATCH) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(BATCH, n - start) }, () => {
        const socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true });
        return new Promise<Socket>((resolve, reject) => {
          socket.once('connect', () => resolve(socket));
          socket.once('connect_error', reject);
          socket.once('disconnect', (reason) => reject(new Error(`disconnected while connecting: ${reason}`)));
        });
      }),
    );
    sockets.push(...batch);
  }
  return sockets;
}

/** Joins every socket as a participant with 100 examples, one after another; throws on a refusal. */
export async function join(sockets: readonly Socket[]): Promise<void> {
  for (const socket of sockets) {
    const joined = await socket.emitWithAck('join', { protocolVersion: PROTOCOL_VERSION, client: { backend: 'bench', numExamples: 100 } });
    if (!joined.ok) throw new Error(JSON.stringify(joined));
  }
}

/** The update a simulated participant sends for `round` from model `baseVersion`: the ready-made `frame`, fixed metrics. */
export function updateMessage(round: number, baseVersion: number, frame: ArrayBuffer) {
  return { round, baseVersion, numExamples: 100, metrics: { loss: 1, accuracy: 0.5 }, trainMs: 1, update: frame };
}
