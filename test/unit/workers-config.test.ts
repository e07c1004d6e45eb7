import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { test } from 'node:test';
import { parseWorkers } from '../../coordinator/cluster/workers-config.ts';
import { RestartBackoff } from '../../coordinator/cluster/workers-restart.ts';
import { ConfigError, parseConfig, USAGE, type CoordinatorConfig } from '../../coordinator/config.ts';
import { configError } from '../../coordinator/options/option.ts';

/** `--workers N | auto`: N cluster nodes behind one port (docs/cluster.md), and the primary's restart backoff. */

const REDIS = ['--redis', 'redis://127.0.0.1:6379'];
const cluster = { redis: 'redis://127.0.0.1:6379', tls: false, demoParticipants: 0 };

test('--workers takes 1 to the CPU count or auto, with --redis; absent, no workers', () => {
  assert.equal((parseConfig([...REDIS, '--workers', '1']) as CoordinatorConfig).workers, 1);
  assert.equal((parseConfig([...REDIS, '--workers', 'auto']) as CoordinatorConfig).workers, availableParallelism());
  assert.equal((parseConfig(REDIS) as CoordinatorConfig).workers, undefined);
  assert.equal(parseWorkers('8', cluster, configError, 8), 8);
  assert.equal(parseWorkers('auto', cluster, configError, 16), 16);
  for (const bad of ['0', '9', '-1', '1.5', '2x', '', 'all'])
    assert.throws(
      () => parseWorkers(bad, cluster, configError, 8),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message === `--workers must be a whole number from 1 to 8 (this machine's CPUs) or auto, got "${bad}"`,
      bad,
    );
  assert.match(USAGE, /--workers N/);
});

test('--workers is refused without --redis, with TLS and with demo participants, saying why', () => {
  assert.throws(
    () => parseConfig(['--workers', '1']),
    (error: unknown) =>
      error instanceof ConfigError && error.message.startsWith('--workers needs --redis: each worker is a node of a cluster'),
  );
  assert.throws(
    () => parseWorkers('1', { ...cluster, tls: true }, configError, 4),
    (error: unknown) =>
      error instanceof ConfigError &&
      error.message.startsWith('--workers cannot run with --tls-cert') &&
      error.message.includes('cannot read inside TLS'),
  );
  assert.throws(
    () => parseConfig([...REDIS, '--workers', '1', '--demo-participants', '2']),
    (error: unknown) => error instanceof ConfigError && error.message.startsWith('--demo-participants cannot run with --workers'),
  );
});

test('a worker that dies young is restarted after a doubling delay, up to the cap; one that lived long, at once again', () => {
  const backoff = new RestartBackoff(500, 4_000, 30_000);
  assert.deepEqual(
    [1_000, 200, 5_000, 100, 100, 100].map((uptime) => backoff.delayAfter(uptime)),
    [500, 1_000, 2_000, 4_000, 4_000, 4_000],
  );
  assert.equal(backoff.delayAfter(30_000), 500);
  assert.equal(backoff.delayAfter(10), 500);
  assert.equal(backoff.delayAfter(10), 1_000);
});
