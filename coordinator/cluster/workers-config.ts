import { availableParallelism } from 'node:os';
import type { MakeError } from '../options/option.ts';

/**
 * `--workers N | auto`: how many cluster nodes this machine forks behind
 * one port (docs/cluster.md, "--workers"); undefined when the flag is
 * absent. Each worker is a full node of the Redis cluster, so the flag
 * needs `--redis`. The primary routes each connection by reading its first
 * HTTP request (@socket.io/sticky), which it cannot read inside TLS.
 */
export function parseWorkers(
  text: string | undefined,
  other: { readonly redis: string | undefined; readonly tls: boolean; readonly demoParticipants: number },
  fail: MakeError,
  cpus: number = availableParallelism(),
): number | undefined {
  if (text === undefined) return undefined;
  const count = text === 'auto' ? cpus : /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(count) || count < 1 || count > cpus)
    throw fail(`--workers must be a whole number from 1 to ${cpus} (this machine's CPUs) or auto, got "${text}"`);
  if (other.redis === undefined)
    throw fail(
      '--workers needs --redis: each worker is a node of a cluster that shares the federation through Redis ' +
        '(one leader runs the rounds, every node sums its own participants); give --redis redis://HOST:6379 (docs/cluster.md)',
    );
  if (other.tls)
    throw fail(
      "--workers cannot run with --tls-cert: the primary process routes each connection to its socket.io session's worker by reading " +
        'the first HTTP request (@socket.io/sticky), which it cannot read inside TLS; terminate TLS in front of the port (nginx, ' +
        'docs/deploy-cluster.md) and run the workers on plain HTTP, or run one node per process with --tls-cert',
    );
  if (other.demoParticipants > 0)
    throw fail(
      '--demo-participants cannot run with --workers: every worker would launch its own; start the demo participants against ' +
        'a coordinator without --workers, or open the page in browsers',
    );
  return count;
}
