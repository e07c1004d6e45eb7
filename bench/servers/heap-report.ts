import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** What a server reports of its memory after a full collection (bench/participant-memory.ts). */
export interface HeapReport {
  readonly heapUsed: number;
  readonly external: number;
  readonly arrayBuffers: number;
  readonly rss: number;
}

/**
 * Loaded with --import into a server that bench/participant-memory.ts starts
 * (from this checkout, so a --baseline-root checkout's servers answer too):
 * answers the parent's "heap" messages over the IPC channel with two full
 * collections, then process.memoryUsage(). Nothing without an IPC channel.
 */
if (process.send) {
  setFlagsFromString('--expose-gc');
  const collect = runInNewContext('gc') as () => void;
  process.on('message', (message) => {
    if (message !== 'heap') return;
    collect();
    collect();
    const { heapUsed, external, arrayBuffers, rss } = process.memoryUsage();
    process.send!({ heapUsed, external, arrayBuffers, rss } satisfies HeapReport);
  });
}
