import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, parseConfig, USAGE, type CoordinatorConfig } from '../../coordinator/config.ts';
import { distributedClientDp } from '../helpers/client-dp-flags.ts';

/** `--redis`: what a cluster accepts at start, and what it refuses with the reason. */

const REDIS = ['--redis', 'redis://127.0.0.1:6379'];

test('--redis takes a Redis URL; without it the config has no cluster', () => {
  assert.equal((parseConfig(REDIS) as CoordinatorConfig).redis, 'redis://127.0.0.1:6379');
  assert.equal((parseConfig(['--redis', 'rediss://cache.example:6380']) as CoordinatorConfig).redis, 'rediss://cache.example:6380');
  assert.equal((parseConfig([]) as CoordinatorConfig).redis, undefined);
  assert.throws(() => parseConfig(['--redis', 'localhost:6379']), /--redis must be a Redis URL such as redis:\/\/127\.0\.0\.1:6379/);
  assert.match(USAGE, /--redis URL/);
});

test('rules that need every individual update are refused on a cluster, saying why', () => {
  for (const strategy of ['median', 'trimmed-mean', 'krum']) {
    assert.throws(
      () => parseConfig([...REDIS, '--strategy', strategy, '--min-updates', '5', '--clients-per-round', '10']),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message.startsWith(`--strategy ${strategy} cannot run on a cluster (--redis)`) &&
        error.message.includes('needs every individual update'),
      strategy,
    );
  }
  // The same rules run on one coordinator.
  assert.equal(
    (parseConfig(['--strategy', 'median', '--min-updates', '5', '--clients-per-round', '10']) as CoordinatorConfig).redis,
    undefined,
  );
  // Linear rules combine from partial sums: accepted.
  for (const strategy of ['fedavg', 'fedprox', 'fedadam', 'fedyogi'])
    assert.equal((parseConfig([...REDIS, '--strategy', strategy]) as CoordinatorConfig).strategy?.name, strategy);
});

const SECURE = ['--secure-aggregation', '--min-updates', '3', '--clients-per-round', '6', '--min-clients', '6'];

test('distributed DP is refused with secure aggregation on a cluster: a cohort carries only its share of the noise', () => {
  const distributed = [...distributedClientDp(6), '--admin-token', 'cluster-config-admin'];
  assert.throws(
    () => parseConfig([...REDIS, ...SECURE, ...distributed]),
    (error: unknown) =>
      error instanceof ConfigError &&
      error.message.startsWith('--client-dp distributed cannot run with --secure-aggregation on a cluster (--redis)') &&
      error.message.includes('a cohort carries only its share of that noise'),
  );
  // The same flags run on one coordinator, where the whole round is one secure sum.
  assert.ok((parseConfig([...SECURE, ...distributed]) as CoordinatorConfig).settings.secureAggregation);
});

test('secure aggregation runs on a cluster, one cohort per node of at least k = 3 unless --secagg-min-cohort says more', () => {
  assert.equal((parseConfig([...REDIS, ...SECURE]) as CoordinatorConfig).settings.secureAggregation?.minCohort, 3);
  assert.equal(
    (parseConfig([...REDIS, ...SECURE, '--secagg-min-cohort', '5']) as CoordinatorConfig).settings.secureAggregation?.minCohort,
    5,
  );
});

test('--secagg-min-cohort: at least 3, only with --redis, and never above the participants selected per round', () => {
  assert.throws(() => parseConfig([...SECURE, '--secagg-min-cohort', '3']), /--secagg-min-cohort needs --redis/);
  assert.throws(() => parseConfig([...REDIS, ...SECURE, '--secagg-min-cohort', '2']), /--secagg-min-cohort must be an integer >= 3/);
  assert.throws(
    () => parseConfig([...REDIS, ...SECURE, '--secagg-min-cohort', '7']),
    /--secagg-min-cohort 7 is above the 6 participants selected per round/,
  );
  // One coordinator: no cohorts, so no k in the settings.
  assert.equal((parseConfig(SECURE) as CoordinatorConfig).settings.secureAggregation?.minCohort, undefined);
  assert.match(USAGE, /--secagg-min-cohort K/);
});

test('encrypted checkpoints are refused on a cluster: Redis would hold the model and history in plain', () => {
  assert.throws(
    () => parseConfig([...REDIS, '--checkpoint-key-file', '/tmp/key']),
    /--checkpoint-key-file cannot run on a cluster \(--redis\)/,
  );
});

test('async mode runs on a cluster (one buffer federation-wide); with secure aggregation it stays refused', () => {
  const config = parseConfig([...REDIS, '--mode', 'async', '--buffer-size', '3']) as CoordinatorConfig;
  assert.equal(config.redis, 'redis://127.0.0.1:6379');
  assert.equal(config.settings.mode, 'async');
  assert.throws(
    () => parseConfig([...REDIS, '--mode', 'async', '--secure-aggregation', '--min-clients', '5', '--clients-per-round', '5']),
    /--mode async cannot be combined with --secure-aggregation/,
  );
});

test('--leader-lease-ms: the lease of a cluster node, 5 s by default, a whole number of ms from 300 to 600000, only with --redis', () => {
  assert.equal((parseConfig(REDIS) as CoordinatorConfig).leaderLeaseMs, 5_000);
  assert.equal((parseConfig([...REDIS, '--leader-lease-ms', '20000']) as CoordinatorConfig).leaderLeaseMs, 20_000);
  assert.equal((parseConfig([]) as CoordinatorConfig).leaderLeaseMs, undefined);
  for (const bad of ['299', '600001', '1500.5', 'soon'])
    assert.throws(
      () => parseConfig([...REDIS, '--leader-lease-ms', bad]),
      /--leader-lease-ms must be a whole number of milliseconds from 300 to 600000/,
      bad,
    );
  assert.throws(() => parseConfig(['--leader-lease-ms', '20000']), /--leader-lease-ms needs --redis: one coordinator elects no leader/);
  assert.match(USAGE, /--leader-lease-ms MS/);
});
