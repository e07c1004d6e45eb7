import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TestSetEvaluator } from '../../coordinator/evaluator.ts';
import { initNodeBackend } from '../../coordinator/tf-node.ts';
import type { ModelSpec } from '../../core/protocol/messages.ts';
import { buildModel } from '../../core/model/architectures.ts';
import { readWeights } from '../../core/model/weights.ts';

const spec: ModelSpec = { architecture: 'mlp', inputShape: [784], numClasses: 10 };

test("the evaluator lets the event loop turn between batches: a cluster leader's evaluation does not hold its loop for the whole test set", async () => {
  await initNodeBackend();
  const count = 12;
  const data = { count, features: 784, numClasses: 10, values: new Uint8Array(count * 784).fill(7), labels: new Uint8Array(count) };
  const evaluator = new TestSetEvaluator(spec, data, 4);
  const model = buildModel(spec);
  const weights = await readWeights(model);
  model.dispose();
  // Something waiting on the loop (a socket's data, a timer) gets its turn before the three batches are done.
  const order: string[] = [];
  setImmediate(() => order.push('loop turned'));
  const metrics = await evaluator.evaluate(weights);
  order.push('evaluated');
  evaluator.dispose();
  assert.deepEqual(order, ['loop turned', 'evaluated']);
  assert.ok(Number.isFinite(metrics.loss) && metrics.accuracy >= 0 && metrics.accuracy <= 1);
});
