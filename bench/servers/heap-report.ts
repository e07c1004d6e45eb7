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
 * Answers the parent's "heap" messages, where the server was started with an
 * IPC channel: two full collections, then process.memoryUsage(). Nothing
 * otherwise (the throughput benchmarks start servers without one).
 */
export function answerHeapRequests(): void {
  if (!process.send) return;
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
