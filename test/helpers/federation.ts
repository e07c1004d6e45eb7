import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { startCoordinator, type Coordinator } from '../../coordinator/server.ts';
import { loadMnistDemo } from '../../coordinator/task/demo-data.ts';
import { startNodeParticipants, stopNodeParticipants, type NodeParticipant, type NodeParticipantOptions } from './node-participants.ts';

/** A real coordinator on a free loopback port, in a fresh data dir, with real Node participants. */
export interface TestFederation {
  readonly coordinator: Coordinator;
  readonly participants: readonly NodeParticipant[];
  /** Stops the participants and the coordinator and removes the data dir; safe to call twice. */
  close(): Promise<void>;
}

export async function startTestFederation(
  flags: readonly string[],
  count: number,
  options: NodeParticipantOptions = {},
): Promise<TestFederation> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'fl-test-'));
  const config = parseConfig(['--port', '0', '--host', '127.0.0.1', '--quiet', '--data-dir', dataDir, ...flags], {}) as CoordinatorConfig;
  const coordinator = await startCoordinator(config);
  const participants = await startNodeParticipants(coordinator.url, await loadMnistDemo(), coordinator.task, count, options);
  let closed = false;
  return {
    coordinator,
    participants,
    async close() {
      if (closed) return;
      closed = true;
      stopNodeParticipants(participants);
      await coordinator.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
