import { type Server, Socket } from 'node:net';

/** What a connection has moved so far. */
type ByteCounts = Pick<Socket, 'bytesRead' | 'bytesWritten'>;

/** One counter per server: /metrics and the cluster's node registry read the same one. */
const countersByServer = new WeakMap<Server, TrafficCounter>();

/**
 * Bytes this node received and sent on its HTTP port (pages, status,
 * socket.io polling and WebSocket frames alike): the closed connections'
 * totals plus what the open ones have moved so far. One `'connection'`
 * listener per server, however many readers: get it with `TrafficCounter.of`.
 */
export class TrafficCounter {
  private readonly open = new Set<ByteCounts>();
  private closedIn = 0;
  private closedOut = 0;

  /** The server's counter, created (and its listener added) on the first call. */
  static of(server: Server): TrafficCounter {
    let counter = countersByServer.get(server);
    if (counter === undefined) {
      counter = new TrafficCounter(server);
      countersByServer.set(server, counter);
    }
    return counter;
  }

  private constructor(server: Server) {
    server.on('connection', (socket: Socket) => {
      const counts = socket instanceof Socket ? socket : forwardedCounts(socket);
      this.open.add(counts);
      socket.once('close', () => {
        this.open.delete(counts);
        this.closedIn += counts.bytesRead;
        this.closedOut += counts.bytesWritten;
      });
    });
  }

  get bytesIn(): number {
    let total = this.closedIn;
    for (const socket of this.open) total += socket.bytesRead;
    return total;
  }

  get bytesOut(): number {
    let total = this.closedOut;
    for (const socket of this.open) total += socket.bytesWritten;
    return total;
  }
}

/**
 * `--workers`: a request with a body reaches a worker as @socket.io/sticky's
 * stream, fed by the primary over IPC, which has no net.Socket byte counts:
 * its request bytes are counted as they arrive. Its response (a long-polling
 * POST's "ok") goes back over IPC uncounted.
 */
function forwardedCounts(stream: Socket): ByteCounts {
  const counts = { bytesRead: 0, bytesWritten: 0 };
  stream.on('data', (chunk: Buffer) => {
    counts.bytesRead += chunk.length;
  });
  return counts;
}
