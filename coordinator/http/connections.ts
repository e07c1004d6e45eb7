import type { Server as HttpServer } from 'node:http';
import type { Socket } from 'node:net';

/**
 * Every TCP connection of the server, WebSocket upgrades included (which
 * `closeAllConnections` does not see), so that shutdown can cut them at once:
 * a peer that keeps its connection open, or never answers a WebSocket close,
 * must not hold the process (the ws library waits 30 s for the close reply).
 */
export class OpenConnections {
  private readonly open = new Set<Socket>();

  constructor(server: HttpServer) {
    server.on('connection', (socket: Socket) => {
      this.open.add(socket);
      socket.once('close', () => this.open.delete(socket));
    });
  }

  get size(): number {
    return this.open.size;
  }

  destroyAll(): void {
    for (const socket of this.open) socket.destroy();
    this.open.clear();
  }
}
