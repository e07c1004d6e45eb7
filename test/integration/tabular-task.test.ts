import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { startCoordinator, type Coordinator } from '../../coordinator/server.ts';
import { loadTask, type LoadedTask } from '../../coordinator/task/load-task.ts';
import { initNodeBackend } from '../../coordinator/tf-node.ts';
import { parseCsv } from '../../core/data/csv.ts';
import type { Dataset } from '../../core/data/dataset.ts';
import type { TabularInput } from '../../core/data/schema.ts';
import { prepareTable, suggestRoles } from '../../core/data/tabular.ts';
import { startNodeParticipants, stopNodeParticipants, type NodeParticipant } from '../helpers/node-participants.ts';
import { accuracyOn, loadSavedModel } from '../helpers/saved-model.ts';

const PENGUINS = 'tasks/penguins/task.json';
const MNIST = 'tasks/mnist/task.json';

/** A participant's own CSV, prepared as the participant page prepares it (its own statistics). */
async function siteDataset(file: string, schema: TabularInput, classes: readonly string[]): Promise<Dataset> {
  const table = parseCsv(await readFile(file, 'utf8'));
  return prepareTable(table, suggestRoles(table, schema), schema, classes).dataset;
}

/**
 * The shipped penguins task end to end: the coordinator loads tasks/penguins/task.json,
 * three Node participants train on the three site CSVs, and the global model
 * must predict the held-out penguins' sex.
 */
describe('the penguins task file', () => {
  let coordinator: Coordinator;
  let dataDir: string;
  let participants: NodeParticipant[] = [];

  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'fl-penguins-'));
    const config = parseConfig(
      ['--task', PENGUINS, '--port', '0', '--host', '127.0.0.1', '--quiet', '--data-dir', dataDir],
      {},
    ) as CoordinatorConfig;
    coordinator = await startCoordinator(config);
  });

  after(async () => {
    stopNodeParticipants(participants);
    await coordinator?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('publishes the tabular schema, the classes and the raw training CSV', async () => {
    const task = coordinator.task;
    assert.equal(task.name, 'penguins-sex');
    assert.deepEqual(task.classes, ['FEMALE', 'MALE']);
    assert.equal(task.input.kind, 'tabular');
    assert.deepEqual(task.model.inputShape, [10], '2 x 3 categories + 4 numbers');
    assert.deepEqual(task.demoData, { url: '/api/demo-data/train.csv', format: 'csv' });
    const response = await fetch(`${coordinator.url}${task.demoData!.url}`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/csv/);
    assert.equal(await response.text(), await readFile('tasks/penguins/train.csv', 'utf8'));
    const fromApi = (await (await fetch(`${coordinator.url}/api/task`)).json()) as typeof task;
    assert.deepEqual(fromApi.input, task.input);
    // The MNIST route is not there for a CSV task.
    assert.equal((await fetch(`${coordinator.url}/api/demo-data/train.bin`)).status, 404);
  });

  it('three sites with their own CSVs reach 85% test accuracy, and the saved model loads with tf.loadLayersModel', {
    timeout: 60_000,
  }, async () => {
    const schema = coordinator.task.input as TabularInput;
    const sites = await Promise.all(
      [1, 2, 3].map((k) => siteDataset(`tasks/penguins/participants/site-${k}.csv`, schema, coordinator.task.classes)),
    );
    participants = await startNodeParticipants(coordinator.url, sites, coordinator.task, 3);
    const final = await coordinator.done;
    assert.equal(final.history.length, 10);
    assert.ok(
      final.history.every((r) => r.outcome === 'aggregated' && r.received === 3),
      JSON.stringify(final.history.map((r) => [r.outcome, r.received])),
    );
    const accuracy = final.history.at(-1)!.metrics!.accuracy;
    assert.ok(accuracy >= 0.85, `test accuracy ${accuracy}`);

    const dir = path.join(dataDir, 'penguins-sex');
    const model = await loadSavedModel(path.join(dir, 'model.json'), path.join(dir, 'weights.bin'));
    const loadedAccuracy = accuracyOn(model, await siteDataset('tasks/penguins/test.csv', schema, coordinator.task.classes));
    model.dispose();
    assert.ok(Math.abs(loadedAccuracy - accuracy) < 1e-6, `loaded model ${loadedAccuracy}, coordinator ${accuracy}`);
  });
});

describe('tasks/mnist/task.json', () => {
  it('configures exactly what `npm start` does without a task file', () => {
    for (const extra of [[], ['--demo-participants', '3'], ['--model', 'cnn', '--rounds', '5']]) {
      const embedded = parseConfig(extra, {}) as CoordinatorConfig;
      const { task, ...fromFile } = parseConfig(['--task', MNIST, ...extra], {}) as CoordinatorConfig;
      assert.equal(task?.name, 'mnist-demo');
      assert.deepEqual({ ...fromFile, task: undefined }, embedded, `with ${extra.join(' ')}`);
    }
  });

  it('loads the same task, model, initial weights and demo data as the embedded demo', { timeout: 60_000 }, async () => {
    await initNodeBackend();
    const withFile = await loadTask(parseConfig(['--task', MNIST], {}) as CoordinatorConfig);
    const embedded = await loadTask(parseConfig([], {}) as CoordinatorConfig);
    // Layer names come from a per-process counter, so two builds differ in names only: compare shapes.
    const comparable = (t: LoadedTask) => ({
      ...t,
      weightShapes: t.weightShapes.map((w) => w.shape),
      audit: undefined,
      test: undefined,
      demoData: { ...t.demoData, bytes: undefined },
    });
    assert.deepEqual(comparable(withFile), comparable(embedded));
    assert.deepEqual(withFile.demoData!.bytes, embedded.demoData!.bytes);
    assert.deepEqual(withFile.test.labels, embedded.test.labels);
    assert.equal(withFile.audit!.members.count, 1000, 'a sample of the 8,000 served digits');
    assert.equal(withFile.audit!.nonMembers, withFile.test);
  });
});
