import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, parseConfig, USAGE, type CoordinatorConfig } from '../../coordinator/config.ts';

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

test('secure aggregation is refused on a cluster, saying why', () => {
  assert.throws(
    () => parseConfig([...REDIS, '--secure-aggregation', '--min-updates', '3', '--clients-per-round', '5', '--min-clients', '5']),
    /--secure-aggregation cannot run on a cluster \(--redis\) yet/,
  );
});

test('encrypted checkpoints are refused on a cluster: Redis would hold the model and history in plain', () => {
  assert.throws(
    () => parseConfig([...REDIS, '--checkpoint-key-file', '/tmp/key']),
    /--checkpoint-key-file cannot run on a cluster \(--redis\)/,
  );
});

test('async mode is refused on a cluster: its buffer and slots live in one process', () => {
  assert.throws(() => parseConfig([...REDIS, '--mode', 'async']), /--mode async cannot run on a cluster \(--redis\) yet/);
});
