import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import type { ClusterNodeStatus } from '../../core/protocol/status.ts';
import { Participant, type ParticipantEvent } from '../../core/participant/participant.ts';
import type { RoundTrainer } from '../../core/participant/trainers.ts';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { startCoordinator, type Coordinator, type CoordinatorHooks } from '../../coordinator/server.ts';
import { TestRedis } from './redis.ts';

/**
 * A cluster test's world (test/integration/cluster-*.test.ts): a fresh
 * redis-server and data folder, in-process coordinators on it, and real
 * participants of the shared client; all removed after the test.
 */
export async function clusterFixture(t: TestContext, label: string) {
  const redis = await TestRedis.start();
  const dataDir = await mkdtemp(path.join(tmpdir(), `fl-${label}-`));
  const coordinators: Coordinator[] = [];
  const participants: Participant[] = [];
  t.after(async () => {
    for (const p of participants) p.stop();
    for (const c of coordinators) await c.close();
    await redis.cleanup();
    // A leader closed mid-round may still be writing its checkpoint: retry what is written meanwhile.
    await rm(dataDir, { recursive: true, force: true, maxRetries: 5 });
  });
  /** A coordinator in this process on the fixture's Redis. */
  const start = async (name: string, federation: readonly string[], hooks?: CoordinatorHooks): Promise<Coordinator> => {
    const args = ['--port', '0', '--host', '127.0.0.1', '--quiet', '--data-dir', path.join(dataDir, name), '--redis', redis.url];
    const coordinator = await startCoordinator(parseConfig([...args, ...federation], {}) as CoordinatorConfig, hooks);
    coordinators.push(coordinator);
    return coordinator;
  };
  /** A participant of the shared client on `url`, training with the test's trainer. */
  const attach = (url: string, trainer: RoundTrainer, onEvent?: (event: ParticipantEvent) => void): Participant => {
    const participant = new Participant({
      url,
      client: { backend: 'test', platform: `node ${process.version}` },
      trainer,
      reconnectionDelayMs: 200,
      onEvent,
    });
    participant.start();
    participants.push(participant);
    return participant;
  };
  return { redis, dataDir, coordinators, start, attach };
}

/** A node as the registry lists it, last seen `lastSeenMs` ago (the directory and the participant rows read only live ones). */
export const nodeSeen = (id: string, lastSeenMs: number): ClusterNodeStatus => ({
  id,
  address: '',
  participants: 0,
  lastSeenMs,
  bytesIn: 0,
  bytesOut: 0,
});
