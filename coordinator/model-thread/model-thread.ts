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

/** What a thread that started loaded: the task, on a tfjs backend. */
interface Started {
  readonly task: ThreadTask;
  readonly backend: string;
}

/** One worker, from its start to its exit, and the answers it owes. */
interface ThreadRun {
  readonly worker: Worker;
  readonly ready: Promise<Started>;
  readonly pending: Map<number, Pending>;
}

/**
 * The coordinator's tfjs, in a worker thread of its own (thread.ts): it loads
 * the task and answers for evaluation, model files and audits, each request
 * carrying a copy of the weights. tfjs then never enters the main thread's
 * heap, which takes every upload.
 *
 * A thread that dies fails the requests it owed, and the next request starts
 * a fresh one. The fresh one loads the task again and must find the same
 * task (model, initial weights, evaluation and audit data): answers for a
 * task whose files changed under a running federation are refused.
 */
export class ModelThread implements ModelEvaluator, ModelFilesWriter {
  private nextId = 1;
  private closed = false;
  private run: ThreadRun | undefined;
  /** The task as the first thread loaded it: what every later thread must load. */
  private loaded: ThreadTask | undefined;

  private constructor(private readonly data: ModelThreadData) {}

  /** Starts the thread and waits until it loaded the task; rejects with the task's load error (a TaskLoadError's name and message). */
  static async start(load: TaskLoadOptions): Promise<StartedModelThread> {
    const thread = new ModelThread({ load });
    const { task, backend } = await (await thread.running()).ready;
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

  /** Ends the thread, even one still loading; pending and later requests fail. */
  async close(): Promise<void> {
    this.closed = true;
    const run = this.run;
    this.run = undefined;
    if (!run) return;
    await run.worker.terminate();
    failAll(run, new Error('the model thread was closed'));
  }

  private async request<K extends ModelRequestKind>(kind: K, weights: Float32Array): Promise<ModelAnswers[K]> {
    const run = await this.running();
    if (this.closed) throw new Error('the model thread was closed');
    const id = this.nextId++;
    const answer = new Promise<ModelAnswers[ModelRequestKind]>((resolve, reject) => run.pending.set(id, { resolve, reject }));
    // Held while it owes an answer (a process waiting for one must not exit), not while idle.
    run.worker.ref();
    const request: ModelRequest = { id, kind, weights };
    try {
      // Cloned, not transferred: the caller keeps its weights.
      run.worker.postMessage(request);
    } catch (error) {
      settled(run, id)?.reject(error instanceof Error ? error : new Error(String(error)));
    }
    return answer as Promise<ModelAnswers[K]>;
  }

  /** The running thread once it loaded the task, started (again) when there is none. */
  private async running(): Promise<ThreadRun> {
    if (this.closed) throw new Error('the model thread was closed');
    this.run ??= this.launch();
    const run = this.run;
    try {
      await run.ready;
      return run;
    } catch (error) {
      if (this.run === run) {
        this.run = undefined;
        void run.worker.terminate();
      }
      throw error;
    }
  }

  /** A new thread: answers reach their requests; when it fails or exits, it fails what it owed and is replaced on the next request. */
  private launch(): ThreadRun {
    const worker = new Worker(threadSource(), { eval: true, workerData: this.data });
    // Checked once, when it has loaded: the first thread's task is the one every later thread must load.
    const ready = loadedBy(worker).then((started) => {
      this.loaded ??= started.task;
      if (!sameTask(this.loaded, started.task)) {
        throw new Error(
          "the model thread was restarted and loaded a different task (the task's model or data files changed since the coordinator started): restart the coordinator",
        );
      }
      return started;
    });
    const run: ThreadRun = { worker, ready, pending: new Map() };
    // Handled here too: a thread closed while it loads rejects a promise nobody may be waiting on.
    run.ready.catch(() => {});
    let failure = '';
    worker.on('message', (message: ModelThreadMessage) => {
      if (message.kind === 'answer') settled(run, message.id)?.resolve(message.value);
      else if (message.kind === 'failed') settled(run, message.id)?.reject(rethrown(message.error));
    });
    worker.on('error', (error) => {
      failure = `: ${error.message}`;
    });
    worker.once('exit', (code) => {
      if (this.run === run) this.run = undefined;
      failAll(run, new Error(`the model thread exited (code ${code})${failure}; the next request starts a new one`));
    });
    return run;
  }
}

/** The request `id` of `run`, now answered: off its list, and the worker let go once it owes nothing. */
function settled(run: ThreadRun, id: number): Pending | undefined {
  const pending = run.pending.get(id);
  run.pending.delete(id);
  if (run.pending.size === 0) run.worker.unref();
  return pending;
}

function failAll(run: ThreadRun, error: Error): void {
  for (const pending of run.pending.values()) pending.reject(error);
  run.pending.clear();
}

/** The same task: model, weight layout, initial weights, and the evaluation and audit data (their digest). */
function sameTask(a: ThreadTask, b: ThreadTask): boolean {
  const layout = (t: ThreadTask) => JSON.stringify([t.spec, t.weightShapes, t.paramCount, t.dataDigest]);
  return (
    layout(a) === layout(b) &&
    a.initialWeights.length === b.initialWeights.length &&
    a.initialWeights.every((v, i) => Object.is(v, b.initialWeights[i]))
  );
}

/** Resolves once `worker` loaded the task; rejects with its load error, or if it fails or exits first. */
function loadedBy(worker: Worker): Promise<Started> {
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
        resolve({ task: message.task, backend: message.backend });
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
