import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { RdpAccountant } from '../../core/privacy/accountant.ts';
import { pldEpsilon } from '../../core/privacy/pld.ts';
import type { FederationStatus } from '../../core/protocol/status.ts';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { startCoordinator } from '../../coordinator/server.ts';
import { loadMnistDemo } from '../../coordinator/task/demo-data.ts';
import { startNodeParticipants, stopNodeParticipants } from '../helpers/node-participants.ts';

const ADMIN_TOKEN = 'accountant-resume-test-admin-token';
const Q = 0.5;
const Z = 1;

/**
 * A client-level DP run under --accountant pld is stopped and resumed from its
 * checkpoint: the spent rounds come back from the saved history, and ε is
 * recomputed by the accountant the resumed run is started with.
 */
describe('accountant choice across a checkpoint and restart', () => {
  it('resumes the PLD ε of the saved rounds, and recomputes it under RDP when restarted with --accountant rdp', {
    timeout: 240_000,
  }, async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'fl-accountant-resume-'));
    const data = await loadMnistDemo();
    const run = async (extra: string[]): Promise<FederationStatus> => {
      const flags = [
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--quiet',
        '--data-dir',
        dataDir,
        '--min-clients',
        '2',
        '--round-timeout',
        '60',
        '--client-dp',
        'central',
        '--client-noise-multiplier',
        String(Z),
        '--client-sample-rate',
        String(Q),
        '--expected-clients',
        '1',
        '--admin-token',
        ADMIN_TOKEN,
        ...extra,
      ];
      const coordinator = await startCoordinator(parseConfig(flags, {}) as CoordinatorConfig);
      const participants = await startNodeParticipants(coordinator.url, data, coordinator.task, 2, { totalShards: 16 });
      try {
        return await coordinator.done;
      } finally {
        stopNodeParticipants(participants);
        await coordinator.close();
      }
    };
    try {
      const first = await run(['--rounds', '2', '--fresh-privacy-budget', '--accountant', 'pld']);
      assert.equal(first.history.length, 2);
      assert.equal(first.privacy?.accountant, 'pld');
      assert.equal(first.privacy?.epsilon, pldEpsilon([{ sampleRate: Q, noiseMultiplier: Z, steps: 2 }], 1e-5).epsilon);

      // Resumed: no --fresh-privacy-budget needed, the spend is on disk; one more round is charged on top.
      const second = await run(['--rounds', '3', '--accountant', 'pld']);
      assert.equal(second.history.length, 3);
      assert.equal(second.privacy?.rounds, 3);
      assert.equal(second.privacy?.accountant, 'pld');
      assert.equal(second.privacy?.epsilon, pldEpsilon([{ sampleRate: Q, noiseMultiplier: Z, steps: 3 }], 1e-5).epsilon);

      // The same spend under RDP: exactly the RDP accountant's ε of all four rounds.
      const third = await run(['--rounds', '4', '--accountant', 'rdp']);
      assert.equal(third.privacy?.rounds, 4);
      assert.equal(third.privacy?.accountant, 'rdp');
      assert.equal(third.privacy?.epsilon, new RdpAccountant().step({ sampleRate: Q, noiseMultiplier: Z, steps: 4 }).getEpsilon(1e-5));
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
