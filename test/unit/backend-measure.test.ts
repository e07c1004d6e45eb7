import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { initNodeBackend } from '../../coordinator/tf-node.ts';
import { measureActiveBackend } from '../../web/participant/backend-measure.ts';
import * as tf from '@tensorflow/tfjs';

const job = { model: { architecture: 'mlp' as const, inputShape: [784], numClasses: 10 }, batchSize: 8, dp: false };

describe('measureActiveBackend', () => {
  before(async () => {
    await initNodeBackend('wasm');
  });

  it('stops timing after a few doubling groups even with a far deadline, and frees what it made', async () => {
    const tensors = tf.memory().numTensors;
    const measured = await measureActiveBackend(job, { deadline: performance.now() + 60_000 });
    // Groups of 1, 2, 4, 8, 16 steps at most: the old probe went on to 63 steps (or a third of the budget).
    assert.ok(measured.steps >= 1 && measured.steps <= 31, `timed ${measured.steps} steps`);
    assert.ok(measured.examplesPerSecond > 0 && !measured.unfinished && !measured.behind);
    assert.equal(tf.memory().numTensors, tensors);
  });

  it('stops at once when clearly behind the rate to beat', async () => {
    const measured = await measureActiveBackend(job, { deadline: performance.now() + 60_000, beatRate: 1e12 });
    assert.equal(measured.behind, true);
    assert.equal(measured.steps, 1);
  });
});
