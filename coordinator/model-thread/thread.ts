// First: tfjs loads without its source maps (load-tfjs.ts).
import './load-tfjs.ts';

import { createHash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import type { Dataset } from '../../core/data/dataset.ts';
import { TestSetEvaluator } from '../evaluator.ts';
import { MembershipAuditor } from '../report/audit.ts';
import { ModelSerializer } from '../storage/model-serializer.ts';
import { loadTask } from '../task/load-task.ts';
import { initNodeBackend } from '../tf-node.ts';
import {
  threadError,
  type ModelAnswers,
  type ModelRequest,
  type ModelRequestKind,
  type ModelThreadData,
  type ModelThreadMessage,
} from './messages.ts';

/**
 * The model thread (model-thread.ts starts it): everything that needs tfjs
 * (the task's model and initial weights, evaluation, model files, the
 * membership audit) runs here, so the isolate that takes the uploads holds
 * none of tfjs and its garbage collector never marks it.
 */
const port = parentPort;
if (!port) throw new Error('coordinator/model-thread/thread.ts runs as a worker thread (model-thread.ts)');
const post = (message: ModelThreadMessage, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

try {
  const { load } = workerData as ModelThreadData;
  const backend = await initNodeBackend();
  const loaded = await loadTask(load);
  const { test, audit, ...rest } = loaded;
  const evaluator = new TestSetEvaluator(loaded.spec, test);
  const serializer = new ModelSerializer(loaded.spec);
  const auditor = audit && new MembershipAuditor(loaded.spec, audit);
  const answerOf = async (kind: ModelRequestKind, weights: Float32Array): Promise<Answer> => {
    switch (kind) {
      case 'evaluate':
        return { kind, value: await evaluator.evaluate(weights) };
      case 'files':
        return { kind, value: await serializer.toFiles(weights) };
      case 'audit':
        if (!auditor) throw new Error('this task has no member and non-member sets to audit');
        return { kind, value: await auditor.audit(weights) };
    }
  };
  // One request of a kind at a time: each kind has its one model, which a request writes its weights into.
  const queues: Record<ModelRequestKind, Promise<unknown>> = {
    evaluate: Promise.resolve(),
    files: Promise.resolve(),
    audit: Promise.resolve(),
  };
  // Fault injection, used by the model thread's test only: the thread exits at its Nth request.
  const exitAtRequest = Number(process.env.FL_FAULT_MODEL_THREAD_EXIT_AT ?? 0);
  let requests = 0;
  port.on('message', (request: ModelRequest) => {
    if (++requests === exitAtRequest) process.exit(3);
    const { id, kind, weights } = request;
    const run = queues[kind].then(() => answerOf(kind, weights));
    queues[kind] = run.catch(() => {});
    run
      .then((answer) => {
        if (answer.kind !== 'files') return post({ kind: 'answer', id, value: answer.value });
        // The weights' bytes move rather than copy.
        const weightsBin = ownBuffer(answer.value.weightsBin);
        post({ kind: 'answer', id, value: { ...answer.value, weightsBin } }, [weightsBin.buffer]);
      })
      // A failed request, or an answer that could not be sent: the request fails, the thread lives on.
      .catch((error: unknown) => post({ kind: 'failed', id, error: threadError(error) }));
  });
  post({
    kind: 'loaded',
    backend,
    task: { ...rest, auditable: auditor !== undefined, dataDigest: digestOf([test, audit?.members, audit?.nonMembers]) },
  });
} catch (error) {
  post({ kind: 'load-failed', error: threadError(error) });
}

/** SHA-256 over the datasets' shapes, values and labels, in order. */
function digestOf(datasets: readonly (Dataset | undefined)[]): string {
  const hash = createHash('sha256');
  for (const data of datasets) {
    if (!data) {
      hash.update('none;');
      continue;
    }
    hash.update(`${data.count},${data.features},${data.numClasses};`);
    hash.update(new Uint8Array(data.values.buffer, data.values.byteOffset, data.values.byteLength));
    hash.update(new Uint8Array(data.labels.buffer, data.labels.byteOffset, data.labels.byteLength));
  }
  return hash.digest('hex');
}

/** A request's answer, tagged with its kind. */
type Answer = { [K in ModelRequestKind]: { readonly kind: K; readonly value: ModelAnswers[K] } }[ModelRequestKind];

/** The bytes over a buffer of their own, which can be transferred: a copy when they share theirs. */
function ownBuffer(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const { buffer } = bytes;
  if (buffer instanceof ArrayBuffer && bytes.byteOffset === 0 && bytes.byteLength === buffer.byteLength) return new Uint8Array(buffer);
  return bytes.slice();
}
