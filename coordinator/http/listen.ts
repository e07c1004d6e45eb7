import type { AddressInfo, Server } from 'node:net';

/** Listens on `port` (0: a free one) at `host`; resolves with the port bound, rejects with the listen error (EADDRINUSE, …). */
export async function listen(server: Server, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}
