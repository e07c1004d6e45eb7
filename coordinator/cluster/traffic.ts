import type { Server } from 'node:net';
import type { Socket } from 'node:net';

/**
 * Bytes this node received and sent on its HTTP port (pages, status,
 * socket.io polling and WebSocket frames alike): the closed connections'
 * totals plus what the open ones have moved so far.
 */
export class TrafficCounter {
  private readonly open = new Set<Socket>();
  private closedIn = 0;
  private closedOut = 0;

  constructor(server: Server) {
    server.on('connection', (socket: Socket) => {
      this.open.add(socket);
      socket.once('close', () => {
        this.open.delete(socket);
        this.closedIn += socket.bytesRead;
        this.closedOut += socket.bytesWritten;
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
