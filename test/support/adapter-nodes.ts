import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';
import type { ClusterServerEvents } from '../../coordinator/cluster/cluster-events.ts';

/** A socket.io server as a cluster node sees it: only server-side events between nodes. */
export type ClusterIo = Server<Record<string, never>, Record<string, never>, ClusterServerEvents>;

/**
 * In-process cluster nodes for a test: socket.io servers joined through the
 * Redis adapter on a test Redis, each with its own Redis clients, never
 * attached to an HTTP server, so `disconnect()` (the clients) ends them.
 * The adapter's requestsTimeout is short, so a node that never answers costs
 * the test 800 ms.
 */
export class AdapterNodes {
  private readonly clients: Redis[] = [];

  constructor(
    private readonly redisUrl: string,
    private readonly key: string,
  ) {}

  /** A Redis client of its own, disconnected with the rest. */
  client(): Redis {
    const client = new Redis(this.redisUrl);
    this.clients.push(client);
    return client;
  }

  /** A node on the adapter channel `key`. */
  node(key = this.key): ClusterIo {
    const io: ClusterIo = new Server({ serveClient: false });
    io.adapter(createAdapter(this.client(), this.client(), { key, requestsTimeout: 800 }));
    return io;
  }

  /** Resolves once `count` nodes listen on the adapter's request channel, which carries every server-side event (subscribing is asynchronous). */
  async subscribed(count: number, key = this.key): Promise<void> {
    const client = this.client();
    for (;;) {
      const [, listening] = (await client.pubsub('NUMSUB', `${key}-request#/#`)) as [string, number];
      if (Number(listening) >= count) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  disconnect(): void {
    for (const client of this.clients) client.disconnect();
  }
}
