import { DEFAULT_LEASE_TTL_MS, MAX_LEASE_TTL_MS, MIN_LEASE_TTL_MS, isLeaseTtl } from '../cluster/lease-ttl.ts';
import { isNonNegativeInt } from '../flags.ts';
import { booleanOption, numberOption, textOption, type OptionGroup } from './option.ts';

/** The task, where the coordinator listens and stores, and its own demo participants. */

export const TASK = textOption({
  name: 'task',
  placeholder: 'FILE',
  help: 'a task configuration file (see docs/tasks.md), e.g. tasks/penguins/task.json;\nflags given here override its settings',
});
/** The default port; $PORT, when set, comes before it. */
export const PORT = numberOption({
  name: 'port',
  placeholder: 'N',
  default: 8080,
  check: (n) => isNonNegativeInt(n) && n <= 65535,
  expected: 'a port number (0-65535)',
  help: 'HTTP port (default {default}, or $PORT; 0 picks a free one)',
});
export const HOST = textOption({ name: 'host', placeholder: 'H', default: '0.0.0.0', help: 'interface to listen on (default {default})' });
export const DATA_DIR = textOption({
  name: 'data-dir',
  placeholder: 'DIR',
  default: './runs',
  help: 'where runs are saved (default {default})',
});
export const DEMO_PARTICIPANTS = numberOption({
  name: 'demo-participants',
  placeholder: 'N',
  default: 0,
  check: isNonNegativeInt,
  expected: 'a non-negative integer',
  help: 'also open N headless Chromium participants (default {default})',
});
export const REDIS = textOption({
  name: 'redis',
  placeholder: 'URL',
  help: 'join a cluster of coordinators that share one federation through Redis,\ne.g. redis://127.0.0.1:6379 (docs/cluster.md); absent: one process, no Redis',
});
/** Checked by cluster/workers-config.ts, which knows --redis and TLS. */
export const WORKERS = textOption({
  name: 'workers',
  placeholder: 'N',
  help: 'with --redis: fork N cluster nodes on this machine that share the port\n(1 to the CPU count, or auto for all of them; docs/cluster.md)',
});
export const LEADER_LEASE_MS = numberOption({
  name: 'leader-lease-ms',
  placeholder: 'MS',
  default: DEFAULT_LEASE_TTL_MS,
  check: isLeaseTtl,
  expected: `a whole number of milliseconds from ${MIN_LEASE_TTL_MS} to ${MAX_LEASE_TTL_MS}`,
  help: "with --redis: the leader's lease; another node leads at most this long after the leader\nstops renewing (default {default}; docs/cluster.md)",
});
/** The built web app (vite build output); for tests and packaging, not in the help text. */
export const STATIC_DIR = textOption({ name: 'static-dir', default: 'dist' });
export const QUIET = booleanOption({ name: 'quiet', help: 'log less' });
export const HELP = booleanOption({ name: 'help', help: 'show this text' });

export const TASK_GROUP: OptionGroup = { heading: 'Task', options: [TASK] };
export const SERVER_GROUP: OptionGroup = {
  heading: 'Server',
  options: [PORT, HOST, DATA_DIR, DEMO_PARTICIPANTS, REDIS, WORKERS, LEADER_LEASE_MS, STATIC_DIR],
};
/** Listed last, right after the secure-aggregation flags. */
export const OUTPUT_GROUP: OptionGroup = { options: [QUIET, HELP] };
