import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { startCoordinator, type Coordinator } from '../../coordinator/server.ts';
import { parseCsv } from '../../core/data/csv.ts';
import type { TabularInput } from '../../core/data/schema.ts';
import { prepareTable, suggestRoles } from '../../core/data/tabular.ts';
import { startNodeParticipants, stopNodeParticipants, type NodeParticipant } from '../helpers/node-participants.ts';

const config = (dataDir: string, rounds: number) =>
  parseConfig(
    [
      '--task',
      'tasks/penguins/task.json',
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--quiet',
      '--data-dir',
      dataDir,
      '--rounds',
      String(rounds),
      '--epochs',
      '1',
    ],
    {},
  ) as CoordinatorConfig;

/**
 * best/ is written after the round's checkpoint, in the same save. A crash
 * between the two leaves the best round as the newest checkpoint: the
 * restart must write best/ again from it.
 */
describe('the best model after a crash between the checkpoint and best/', () => {
  let dataDir = '';
  let coordinator: Coordinator | undefined;
  let participants: NodeParticipant[] = [];

  after(async () => {
    stopNodeParticipants(participants);
    await coordinator?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('is rewritten from the newest checkpoint on restart', { timeout: 120_000 }, async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'fl-best-repair-'));
    coordinator = await startCoordinator(config(dataDir, 1));
    const c = coordinator;
    const schema = c.task.input as TabularInput;
    const sites = await Promise.all(
      [1, 2, 3].map(async (k) => {
        const table = parseCsv(await readFile(`tasks/penguins/participants/site-${k}.csv`, 'utf8'));
        return prepareTable(table, suggestRoles(table, schema), schema, c.task.classes).dataset;
      }),
    );
    participants = await startNodeParticipants(c.url, sites, c.task, 3);
    const final = await c.done;
    stopNodeParticipants(participants);
    participants = [];
    await c.close();
    assert.equal(final.best?.round, 1);
    const bestDir = path.join(dataDir, 'penguins-sex', 'best');
    const written = JSON.parse(await readFile(path.join(bestDir, 'best.json'), 'utf8')) as { round: number; modelHash: string };
    assert.deepEqual([written.round, written.modelHash], [1, final.best!.modelHash]);

    // The crash: round 1's checkpoint is on disk, best/ is not.
    await rm(bestDir, { recursive: true });
    const logs: string[] = [];
    coordinator = await startCoordinator(config(dataDir, 2), { log: (line) => logs.push(line) });
    const repaired = JSON.parse(await readFile(path.join(bestDir, 'best.json'), 'utf8')) as { round: number; modelHash: string };
    assert.deepEqual([repaired.round, repaired.modelHash], [1, final.best!.modelHash]);
    assert.ok(
      logs.some((l) => /best model: rewrote .*best from the checkpoint of round 1/.test(l)),
      logs.join('\n'),
    );
    assert.equal(coordinator.engine.status().best?.modelHash, final.best!.modelHash);
  });
});
