import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { TestSetEvaluator } from '../../coordinator/evaluator.ts';
import { ModelThread } from '../../coordinator/model-thread/model-thread.ts';
import { MembershipAuditor } from '../../coordinator/report/audit.ts';
import { weightsFromFiles } from '../../coordinator/storage/model-files.ts';
import { loadTask } from '../../coordinator/task/load-task.ts';
import { parseTaskFile } from '../../coordinator/task/task-file.ts';
import { initNodeBackend } from '../../coordinator/tf-node.ts';

/** The coordinator's tfjs in a worker thread (coordinator/model-thread/): what it answers, and how it fails. */

const DEMO = { architecture: 'mlp', seed: 7 } as const;
const PENGUINS = path.resolve(import.meta.dirname, '../../tasks/penguins');

/** A model thread whose first thread exits at its second request (the fault hook); the threads after it do not. */
async function startExitingAtSecondRequest(load: Parameters<typeof ModelThread.start>[0]) {
  process.env.FL_FAULT_MODEL_THREAD_EXIT_AT = '2';
  try {
    return await ModelThread.start(load);
  } finally {
    delete process.env.FL_FAULT_MODEL_THREAD_EXIT_AT;
  }
}

/** The initial model's metrics, by the same evaluator on this thread. */
async function evaluatedHere(task: Awaited<ReturnType<typeof loadTask>>) {
  const evaluator = new TestSetEvaluator(task.spec, task.test);
  try {
    return await evaluator.evaluate(task.initialWeights);
  } finally {
    evaluator.dispose();
  }
}

describe('the model thread', () => {
  const closing: ModelThread[] = [];
  after(async () => {
    for (const thread of closing) await thread.close();
  });

  it('loads the task and answers, to the bit, what the same code gives on this thread', async () => {
    const { thread, task, backend } = await ModelThread.start(DEMO);
    closing.push(thread);
    await initNodeBackend();
    const here = await loadTask(DEMO);
    assert.equal(backend, 'wasm');
    assert.deepEqual(task.initialWeights, here.initialWeights);
    assert.deepEqual(task.weightShapes, here.weightShapes);
    assert.equal(task.auditable, true);
    assert.equal('test' in task, false, 'the evaluation set stays in the model thread');

    const weights = here.initialWeights.map((v, i) => v + ((i % 7) - 3) * 1e-3);
    const evaluator = new TestSetEvaluator(here.spec, here.test);
    const auditor = new MembershipAuditor(here.spec, here.audit!);
    try {
      assert.deepEqual(await thread.evaluate(weights), await evaluator.evaluate(weights));
      assert.deepEqual(await thread.audit(weights), await auditor.audit(weights));
    } finally {
      evaluator.dispose();
      auditor.dispose();
    }
    const files = await thread.toFiles(weights);
    assert.deepEqual(weightsFromFiles(files, task.weightShapes), weights);
    // The weights were copied to the thread, not moved: the caller still has them.
    assert.equal(weights.length, here.paramCount);
    // Requests at once, two of a kind, each get their own answer (a mix-up of ids would swap a and b).
    const atStart = await evaluatedHere(here);
    const trained = await thread.evaluate(weights);
    assert.notDeepEqual(atStart, trained);
    const [a, b, c] = await Promise.all([
      thread.evaluate(here.initialWeights),
      thread.evaluate(weights),
      thread.toFiles(here.initialWeights),
    ]);
    assert.deepEqual(a, atStart);
    assert.deepEqual(b, trained);
    assert.deepEqual(weightsFromFiles(c, task.weightShapes), here.initialWeights);
  });

  it("a task that cannot load fails the start with the loader's own error name and message", async () => {
    const task = parseTaskFile(
      JSON.stringify({
        name: 'gone',
        model: 'cnn',
        input: { kind: 'image', shape: [4, 4, 1] },
        classes: ['a', 'b'],
        data: { test: './nowhere' },
      }),
      path.join('/nonexistent-task-dir', 'task.json'),
    );
    await assert.rejects(ModelThread.start({ task, architecture: 'cnn', seed: 1 }), (error: Error) => {
      assert.equal(error.name, 'TaskLoadError');
      assert.match(error.message, /data\.test: cannot read the image folder .*nowhere/);
      return true;
    });
  });

  it('a thread that exits fails the request it owed, and the next request gets a fresh thread', async () => {
    const { thread, task } = await startExitingAtSecondRequest(DEMO);
    closing.push(thread);
    const first = await thread.evaluate(task.initialWeights);
    await assert.rejects(thread.evaluate(task.initialWeights), /the model thread exited \(code 3\).*the next request starts a new one/);
    // The fresh thread was started without the fault: it loads the same task and answers the same.
    assert.deepEqual(await thread.evaluate(task.initialWeights), first);
    await thread.close();
    await assert.rejects(thread.evaluate(task.initialWeights), /the model thread was closed/);
  });

  it("a fresh thread that finds the task's files changed refuses to answer for the other task", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'fl-model-thread-'));
    try {
      for (const name of ['task.json', 'train.csv', 'test.csv']) await copyFile(path.join(PENGUINS, name), path.join(dir, name));
      const file = path.join(dir, 'task.json');
      const load = { task: parseTaskFile(await readFile(file, 'utf8'), file), architecture: 'mlp', seed: 1 } as const;
      const { thread, task } = await startExitingAtSecondRequest(load);
      closing.push(thread);
      await thread.evaluate(task.initialWeights);
      // The held-out set loses its last example while the federation runs; then the thread exits.
      const test = (await readFile(path.join(dir, 'test.csv'), 'utf8')).trimEnd().split('\n');
      await writeFile(path.join(dir, 'test.csv'), `${test.slice(0, -1).join('\n')}\n`);
      await assert.rejects(thread.evaluate(task.initialWeights), /the model thread exited/);
      await assert.rejects(thread.evaluate(task.initialWeights), /loaded a different task .*restart the coordinator/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
