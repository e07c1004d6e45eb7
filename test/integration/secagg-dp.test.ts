import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { startCoordinator, type Coordinator } from '../../coordinator/server.ts';
import { loadMnistDemo } from '../../coordinator/task/demo-data.ts';
import { RdpAccountant } from '../../core/privacy/accountant.ts';
import { startNodeParticipants, stopNodeParticipants, type NodeParticipant } from '../helpers/node-participants.ts';

/**
 * Secure aggregation with distributed client-level DP: each participant adds
 * its share of the noise before quantising, the coordinator decodes only the
 * noised sum, and ε is charged per round.
 */
describe('secure aggregation with distributed DP noise', () => {
  let coordinator: Coordinator | undefined;
  let participants: NodeParticipant[] = [];
  let dataDir = '';

  after(async () => {
    stopNodeParticipants(participants);
    await coordinator?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('runs masked rounds whose participants add N(0, z²S²/m) before quantising', { timeout: 180_000 }, async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'fl-secagg-dp-'));
    const config = parseConfig(
      [
        '--port', '0', '--host', '127.0.0.1', '--quiet', '--data-dir', dataDir, '--rounds', '2', '--min-clients', '5', '--round-timeout', '60',
        '--secure-aggregation', '--client-dp', 'distributed', '--client-noise-multiplier', '1', '--client-sample-rate', '1',
        '--client-clip', '1', '--expected-clients', '5', '--admin-token', 'secagg-dp-test-admin-token',
      ],
      {},
    ) as CoordinatorConfig;
    coordinator = await startCoordinator(config);
    participants = await startNodeParticipants(coordinator.url, await loadMnistDemo(), coordinator.task, 5, { totalShards: 16 });
    const final = await coordinator.done;
    assert.equal(final.history.length, 2);
    for (const record of final.history) {
      assert.equal(record.outcome, 'aggregated', record.reason);
      assert.equal(record.secagg?.masked, 5);
    }
    // Every upload was masked, clipped and noised on the participant.
    const uploads = participants.flatMap((p) => p.events.filter((e) => e.type === 'uploaded'));
    assert.equal(uploads.length, 10);
    assert.ok(uploads.every((e) => e.type === 'uploaded' && e.masked === true && e.noised));
    // Distributed noise is accounted without sampling amplification: q = 1, z/√m per round.
    const expected = new RdpAccountant().step({ sampleRate: 1, noiseMultiplier: 1 / Math.sqrt(5), steps: 2 }).getEpsilon(1e-5);
    assert.ok(Math.abs(final.privacy!.epsilon - expected) < 1e-9);
  });
});
