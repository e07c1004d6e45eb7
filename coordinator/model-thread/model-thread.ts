import { Worker } from 'node:worker_threads';
import type { MembershipAuditResult } from '../../core/privacy/membership-audit.ts';
import type { EvalMetrics } from '../../core/protocol/messages.ts';
import type { ModelEvaluator } from '../rounds/engine-types.ts';
import type { ModelArtifactsFiles, ModelFilesWriter } from '../storage/model-files.ts';
import type { TaskLoadOptions } from '../task/load-task.ts';
import {
  rethrown,
  type ModelAnswers,
  type ModelRequest,
  type ModelRequestKind,
  type ModelThreadData,
  type ModelThreadMessage,
  type ThreadTask,
} from './messages.ts';

/** A model thread that loaded its task: the task as the main thread keeps it, and the tfjs backend it runs on. */
export interface StartedModelThread {
  readonly thread: ModelThread;
  readonly task: ThreadTask;
  readonly backend: string;
}

interface Pending {
  resolve(value: ModelAnswers[ModelRequestKind]): void;
  reject(error: Error): void;
}

/** A started model thread: the worker, and the task it loaded. */
interface Started {
  readonly worker: Worker;
  readonly task: ThreadTask;
  readonly backend: string;
}

/**
 * The coordinator's tfjs, in a worker thread of its own (thread.ts): it loads
 * the task and answers for evaluation, model files and audits, each request
 * carrying a copy of the weights. tfjs then never enters the main thread's
 * heap, which takes every upload: the collector, which runs there on every
 * few dozen 0.8 MB frames, marks what that heap holds (docs/BENCHMARKS.md).
 *
 * A thread that dies fails its pending requests, and the next request starts
 * a fresh one (loading the task again: the same model, seeded).
 */
export class ModelThread implements ModelEvaluator, ModelFilesWriter {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  private current: Promise<Started> | undefined;

  private constructor(private readonly data: ModelThreadData) {}

  /** Starts the thread and waits until it loaded the task; rejects with the task's load error (a TaskLoadError's name and message). */
  static async start(load: TaskLoadOptions): Promise<StartedModelThread> {
    const thread = new ModelThread({ load });
    const { task, backend } = await thread.started();
    return { thread, task, backend };
  }

  evaluate(weights: Float32Array): Promise<EvalMetrics> {
    return this.request('evaluate', weights);
  }

  toFiles(weights: Float32Array): Promise<ModelArtifactsFiles> {
    return this.request('files', weights);
  }

  audit(weights: Float32Array): Promise<MembershipAuditResult> {
    return this.request('audit', weights);
  }

  /** Ends the thread; pending and later requests fail. */
  async close(): Promise<void> {
    this.closed = true;
    const started = await this.current?.catch(() => undefined);
    this.current = undefined;
    await started?.worker.terminate();
    this.failPending(new Error('the model thread was closed'));
  }

  private async request<K extends ModelRequestKind>(kind: K, weights: Float32Array): Promise<ModelAnswers[K]> {
    if (this.closed) throw new Error('the model thread was closed');
    const started = await this.started();
    const id = this.nextId++;
    const answer = new Promise<ModelAnswers[ModelRequestKind]>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    // Held while it owes an answer (a process waiting for one must not exit), not while idle.
    started.worker.ref();
    const request: ModelRequest = { id, kind, weights };
    // Cloned, not transferred: the caller keeps its weights.
    started.worker.postMessage(request);
    return answer as Promise<ModelAnswers[K]>;
  }

  /** The running thread, started (again) when there is none. */
  private async started(): Promise<Started> {
    this.current ??= startThread(this.data, (worker) => this.watch(worker));
    try {
      return await this.current;
    } catch (error) {
      this.current = undefined;
      throw error;
    }
  }

  /** Answers reach their requests; a thread that fails or exits fails the requests it had and is replaced on the next one. */
  private watch(worker: Worker): void {
    let failure = '';
    worker.on('message', (message: ModelThreadMessage) => {
      if (message.kind !== 'answer' && message.kind !== 'failed') return;
      const pending = this.pending.get(message.id);
      if (!pending) return;
      this.pending.delete(message.id);
      if (this.pending.size === 0) worker.unref();
      if (message.kind === 'answer') pending.resolve(message.value);
      else pending.reject(rethrown(message.error));
    });
    worker.on('error', (error) => {
      failure = `: ${error.message}`;
    });
    worker.once('exit', (code) => {
      if (this.closed) return;
      this.current = undefined;
      this.failPending(new Error(`the model thread exited (code ${code})${failure}; the next request starts a new one`));
    });
  }

  private failPending(error: Error): void {
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
  }
}

/** A new thread, resolved once it loaded the task; `watch` gets it at once, before any of its events. */
function startThread(data: ModelThreadData, watch: (worker: Worker) => void): Promise<Started> {
  const worker = new Worker(threadSource(), { eval: true, workerData: data });
  watch(worker);
  return new Promise<Started>((resolve, reject) => {
    const failed = (error: Error) => {
      cleanup();
      void worker.terminate();
      reject(error);
    };
    const onMessage = (message: ModelThreadMessage) => {
      if (message.kind === 'loaded') {
        cleanup();
        // Idle until asked: the coordinator's own handles decide when the process may exit.
        worker.unref();
        resolve({ worker, task: message.task, backend: message.backend });
      } else if (message.kind === 'load-failed') failed(rethrown(message.error));
    };
    const onError = (error: Error) => failed(error);
    const onExit = (code: number) => failed(new Error(`the model thread exited (code ${code}) before it loaded the task`));
    const cleanup = () => {
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
    };
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
  });
}

/**
 * The worker's entry: thread.ts, named through the package's `imports`
 * (`#model-thread`) so that it is found from a bundle of the coordinator as
 * from its source. The worker registers tsx first to run the TypeScript:
 * Node 20 does not pass `--import` hooks on to worker threads.
 */
function threadSource(): string {
  const entry = import.meta.resolve('#model-thread');
  const tsx = import.meta.resolve('tsx/esm/api');
  return `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(entry)}); });`;
}
