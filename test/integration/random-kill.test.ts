import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { parseCsv } from '../../core/data/csv.ts';
import type { Dataset } from '../../core/data/dataset.ts';
import type { TabularInput } from '../../core/data/schema.ts';
import { prepareTable, suggestRoles } from '../../core/data/tabular.ts';
import type { TaskSummary } from '../../core/protocol/messages.ts';
import type { FederationStatus } from '../../core/protocol/status.ts';
import { SeededRandom } from '../../core/random/prng.ts';
import { startNodeParticipants, stopNodeParticipants, type NodeParticipant } from '../helpers/node-participants.ts';
import { freePort } from '../helpers/free-port.ts';
import { type CoordinatorProcess, launchCoordinator } from '../helpers/coordinator-process.ts';

const root = path.resolve(import.meta.dirname, '../..');
/** Kills in one run; half at random instants, half the moment a poll first shows a new round. */
const KILLS = Number(process.env.FL_RANDOM_KILLS ?? 22);
/** The whole run stops killing after this long, however many kills it reached (asserted below). */
const BUDGET_MS = 180_000;

/** The coordinator on the penguins task, on its own; resolves once it listens. */
function launch(port: number, dataDir: string): Promise<CoordinatorProcess> {
  return launchCoordinator([
    '--task',
    'tasks/penguins/task.json',
    '--port',
    String(port),
    '--host',
    '127.0.0.1',
    '--data-dir',
    dataDir,
    '--rounds',
    '100000',
    '--epochs',
    '1',
    '--round-timeout',
    '10',
    '--seed',
    '5',
  ]);
}

async function siteDataset(file: string, schema: TabularInput, classes: readonly string[]): Promise<Dataset> {
  const table = parseCsv(await readFile(path.join(root, file), 'utf8'));
  return prepareTable(table, suggestRoles(table, schema), schema, classes).dataset;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Issue 15, tested the way it failed: a poller reads /api/status as fast as
 * it can while the coordinator is SIGKILLed again and again, at random
 * instants and the very moment a poll shows a round it had not shown
 * before. After every restart, every round any poll ever saw must be in the
 * history, with the same model hash: nothing shown is lost.
 */
describe('SIGKILL at random instants while /api/status is polled', () => {
  let dataDir = '';
  let coordinator: CoordinatorProcess | undefined;
  let participants: NodeParticipant[] = [];
  let polling = false;

  after(async () => {
    polling = false;
    stopNodeParticipants(participants);
    coordinator?.child.kill('SIGKILL');
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it(`loses no round a poll has seen across ${KILLS} kills`, { timeout: BUDGET_MS + 60_000 }, async () => {
    const started = Date.now();
    dataDir = await mkdtemp(path.join(tmpdir(), 'fl-random-kill-'));
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    coordinator = await launch(port, dataDir);
    const task = (await (await fetch(`${url}/api/task`)).json()) as TaskSummary;
    const schema = task.input as TabularInput;
    const sites = await Promise.all([1, 2, 3].map((k) => siteDataset(`tasks/penguins/participants/site-${k}.csv`, schema, task.classes)));
    participants = await startNodeParticipants(url, sites, task, 3);

    /** Every round any poll has shown, with its model hash. */
    const seen = new Map<number, string>();
    let newRoundSeen: (() => void) | undefined;
    let polls = 0;
    const record = (status: FederationStatus) => {
      for (const r of status.history) {
        assert.ok(r.modelHash, `round ${r.round} has a model hash`);
        const before = seen.get(r.round);
        if (before === undefined) {
          seen.set(r.round, r.modelHash);
          newRoundSeen?.();
        } else {
          assert.equal(r.modelHash, before, `round ${r.round} changed its model after it was shown`);
        }
      }
    };
    polling = true;
    const poller = (async () => {
      while (polling) {
        try {
          const response = await fetch(`${url}/api/status`);
          record((await response.json()) as FederationStatus);
          polls++;
        } catch {
          await sleep(5); // the coordinator is down: try again shortly
        }
      }
    })();

    const random = new SeededRandom(Number(process.env.FL_RANDOM_KILL_SEED ?? 15));
    let kills = 0;
    let targeted = 0;
    for (; kills < KILLS && Date.now() - started < BUDGET_MS; kills++) {
      if (kills % 2 === 1) {
        // The instant a poll shows a new round: the moment the old engine had not saved it yet.
        const shown = new Promise<boolean>((resolve) => (newRoundSeen = () => resolve(true)));
        let timer: NodeJS.Timeout | undefined;
        const notShown = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 8000)));
        if (await Promise.race([shown, notShown]).finally(() => clearTimeout(timer))) targeted++;
        newRoundSeen = undefined;
      } else {
        await sleep(200 + random.next() * 2300);
      }
      const shownBeforeKill = new Map(seen);
      coordinator.child.kill('SIGKILL');
      await coordinator.exited;
      coordinator = await launch(port, dataDir);
      const history = ((await (await fetch(`${url}/api/status`)).json()) as FederationStatus).history;
      const restored = new Map(history.map((r) => [r.round, r.modelHash]));
      for (const [round, hash] of shownBeforeKill) {
        assert.ok(
          restored.has(round),
          `kill ${kills + 1}: round ${round} was shown before the kill and is missing after the restart (history: ${[...restored.keys()].join(',')})`,
        );
        assert.equal(restored.get(round), hash, `kill ${kills + 1}: round ${round} came back with another model`);
      }
    }
    polling = false;
    await poller;
    // Every round a participant heard end is in the history as well.
    const history = new Set(((await (await fetch(`${url}/api/status`)).json()) as FederationStatus).history.map((r) => r.round));
    for (const p of participants) {
      for (const e of p.events)
        if (e.type === 'round-end') assert.ok(history.has(e.message.round), `round ${e.message.round} was announced and lost`);
    }
    const elapsed = (Date.now() - started) / 1000;
    console.log(
      `random-kill: ${kills} kills (${targeted} the moment a new round was shown) in ${elapsed.toFixed(0)} s, ${polls} polls, ${seen.size} rounds shown, 0 lost`,
    );
    assert.ok(kills >= 20, `only ${kills} kills fit in the time budget`);
    assert.ok(targeted >= 5, `only ${targeted} kills landed right after a new round was shown`);
  });
});
