import { ArchitectureName } from '../../core/protocol/messages.ts';
import { BENCH_BACKENDS, type BenchBackend } from './backends.ts';
import type { BenchRequest, BenchWorkerMessage } from './worker.ts';

/**
 * The benchmark page: reads the query, runs the benchmark in a dedicated
 * worker and writes the result as JSON into #result (or the failure into
 * #error), each marked data-done="true" for the driver to wait on.
 */

const element = (id: string) => document.getElementById(id) as HTMLElement;

function finish(id: 'result' | 'error', text: string): void {
  const el = element(id);
  el.textContent = text;
  el.dataset.done = 'true';
}

function positive(params: URLSearchParams, name: string, fallback: number, integer: boolean): number {
  const text = params.get(name);
  if (text === null) return fallback;
  const value = Number(text);
  if (text.trim() === '' || !(value > 0) || (integer && !Number.isInteger(value))) {
    throw new Error(`?${name} must be a positive ${integer ? 'integer' : 'number'}, got "${text}"`);
  }
  return value;
}

function readRequest(): BenchRequest {
  const params = new URLSearchParams(location.search);
  const backend = params.get('backend') ?? 'webgpu';
  if (!(BENCH_BACKENDS as readonly string[]).includes(backend))
    throw new Error(`?backend must be one of ${BENCH_BACKENDS.join(', ')}, got "${backend}"`);
  const architecture = params.get('model') ?? 'mlp';
  if (!(ArchitectureName as readonly string[]).includes(architecture)) {
    throw new Error(`?model must be one of ${ArchitectureName.join(', ')}, got "${architecture}"`);
  }
  return {
    backend: backend as BenchBackend,
    architecture: architecture as ArchitectureName,
    examples: positive(params, 'examples', 2000, true),
    reps: positive(params, 'reps', 5, true),
    batchSize: positive(params, 'batchSize', 32, true),
    learningRate: positive(params, 'learningRate', 0.1, false),
  };
}

function main(): void {
  let request: BenchRequest;
  try {
    request = readRequest();
  } catch (error) {
    finish('error', (error as Error).message);
    return;
  }
  const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module', name: 'bench-training' });
  worker.addEventListener('message', (event: MessageEvent<BenchWorkerMessage>) => {
    const message = event.data;
    if (message.type === 'progress') {
      element('progress').textContent = message.text;
      // The driver relays page console lines: it shows progress on long runs.
      console.log(`[bench] ${message.text}`);
    } else if (message.type === 'result') {
      element('progress').textContent = 'Done.';
      finish('result', JSON.stringify(message.result, null, 2));
      worker.terminate();
    } else {
      finish('error', message.message);
      worker.terminate();
    }
  });
  worker.addEventListener('error', (event) => finish('error', event.message || 'the benchmark worker crashed'));
  worker.postMessage(request);
}

main();
