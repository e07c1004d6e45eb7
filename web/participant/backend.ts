import * as tf from '@tensorflow/tfjs';
import wasmPlain from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimd from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreaded from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import { registerWasmTrainingKernels } from '../../core/model/wasm-kernels.ts';
import { choiceKey, loadChoice, saveChoice, type BackendMeasurement } from './backend-cache.ts';
import { measureActiveBackend, type MeasureJob } from './backend-measure.ts';
import type { BackendName } from './backend-name.ts';

export type { BackendMeasurement } from './backend-cache.ts';

/**
 * Which tfjs backend this device trains on. Automatically, it is the one
 * that trains the task's own model fastest here, by measurement
 * (`chooseBackend`): the order WebGPU > WebGL > WASM is wrong wherever the
 * only GPU is a software one (SwiftShader trains 12× slower than WASM on two
 * cores). `?backend=` forces one (`selectBackend`).
 *
 * WebGPU and WASM are loaded on demand, so a device whose choice is cached
 * downloads only the backend it uses (WebGL and the CPU backend come with
 * @tensorflow/tfjs itself).
 */

export interface SelectedBackend {
  readonly backend: BackendName;
  readonly adapter?: string;
  /** The adapter is a fallback or software one. */
  readonly software: boolean;
  /** WASM: the threads really in use (1 unless the page is cross-origin isolated). */
  readonly threads?: number;
  /** How it was chosen: measured now, a cached measurement, or `?backend=`. */
  readonly how: 'measured' | 'cached' | 'forced';
  /** Each backend's rate (or why it has none): what the choice rests on. */
  readonly measurements: readonly BackendMeasurement[];
  /** Wall time of the choice, ms. */
  readonly chooseMs: number;
}

/**
 * Total time for the choice, ms: one deadline for the cache lookup, every
 * backend's start and its timing. Only what cannot be cut short can pass it:
 * starting a backend, and the first backend's warm-up step.
 */
export const MEASURE_BUDGET_MS = 2000;
/** A backend is not started with less than this left before the deadline (a first GPU step alone needs more). */
const MIN_SLICE_MS = 250;
/**
 * The most a software (fallback) adapter is waited for once another backend
 * has a rate. It compiles its shaders and runs them on the same CPU cores as
 * WASM, one to two orders slower (460 against 5,700 examples/s here): if its
 * first step is not done by then, it cannot be ahead.
 */
const SOFTWARE_SHARE_MS = 400;
/** Kept back from the budget for what follows the timing: switching to the chosen backend and saving the choice. */
const SETTLE_MS = 150;
/** Measurement order: WASM first, as the one that works nearly everywhere gives the others a rate to beat. */
const MEASURE_ORDER: readonly BackendName[] = ['wasm', 'webgpu', 'webgl', 'cpu'];

/** Adapter and renderer names of software rasterisers and fallback adapters. */
const SOFTWARE_NAME = /swiftshader|llvmpipe|lavapipe|softpipe|software|microsoft basic render|\bwarp\b/i;

interface AdapterInfoLike {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}

interface GpuLike {
  requestAdapter(): Promise<{ info?: AdapterInfoLike; isFallbackAdapter?: boolean } | null>;
}

interface Adapter {
  readonly description: string;
  readonly software: boolean;
}

let adapterLookup: Promise<Adapter | { missing: string }> | undefined;

/** The WebGPU adapter, or why there is none; asked for once per worker (the cache key and the measurement both need it). */
function webgpuAdapter(): Promise<Adapter | { missing: string }> {
  adapterLookup ??= requestWebgpuAdapter().catch((error: unknown) => ({
    missing: `requestAdapter failed: ${error instanceof Error ? error.message : String(error)}`,
  }));
  return adapterLookup;
}

/** The WebGPU adapter, or why there is none. Fallback adapters say so (`isFallbackAdapter`, on the info or, before Chrome 131, on the adapter). */
async function requestWebgpuAdapter(): Promise<Adapter | { missing: string }> {
  const gpu = (navigator as Navigator & { gpu?: GpuLike }).gpu;
  if (!gpu) return { missing: 'navigator.gpu is absent (WebGPU needs a secure context: https or localhost)' };
  const adapter = await gpu.requestAdapter();
  if (!adapter) return { missing: 'navigator.gpu.requestAdapter() returned no adapter' };
  const info = adapter.info ?? {};
  const parts = [info.vendor, info.architecture, info.device, info.description].filter((p) => p);
  const description = parts.length > 0 ? parts.join(' / ') : 'WebGPU adapter (no details reported)';
  return {
    description,
    software: info.isFallbackAdapter === true || adapter.isFallbackAdapter === true || SOFTWARE_NAME.test(description),
  };
}

let rendererLookup: { readonly renderer: string | undefined } | undefined;

/** The WebGL renderer's name, read once per worker: each lookup creates a WebGL context, slow on a software renderer. */
function webglRenderer(): string | undefined {
  rendererLookup ??= { renderer: readWebglRenderer() };
  return rendererLookup.renderer;
}

function readWebglRenderer(): string | undefined {
  try {
    const gl = new OffscreenCanvas(1, 1).getContext('webgl2') as WebGL2RenderingContext | null;
    if (!gl) return undefined;
    const debug = gl.getExtension('WEBGL_debug_renderer_info');
    return String(gl.getParameter(debug ? debug.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
  } catch {
    return undefined;
  }
}

let wasmThreadsCount: (() => number) | undefined;

/** Imports a backend's package (registering it with tfjs) the first time it is needed. */
async function loadBackend(name: BackendName): Promise<void> {
  if (name === 'webgpu') await import('@tensorflow/tfjs-backend-webgpu');
  if (name === 'wasm' && !wasmThreadsCount) {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    wasm.setWasmPaths({
      'tfjs-backend-wasm.wasm': wasmPlain,
      'tfjs-backend-wasm-simd.wasm': wasmSimd,
      'tfjs-backend-wasm-threaded-simd.wasm': wasmThreaded,
    });
    // One thread per core. tfjs takes the threaded SIMD binary only where SharedArrayBuffer
    // can be shared, i.e. when the page is cross-origin isolated (the coordinator's COOP/COEP).
    wasm.setThreadsCount(Math.max(1, navigator.hardwareConcurrency || 1));
    wasmThreadsCount = wasm.getThreadsCount;
  }
}

type Activated =
  | { readonly ok: true; readonly adapter?: string; readonly software: boolean; readonly threads?: number }
  | { readonly ok: false; readonly reason: string };

/**
 * Makes `name` the active tfjs backend. `tf.setBackend` throws when a backend
 * is not registered and resolves false when it fails to initialise; both are
 * reported as a reason, never thrown.
 */
async function activate(name: BackendName): Promise<Activated> {
  let gpu: Adapter | undefined;
  if (name === 'webgpu') {
    const found = await webgpuAdapter();
    if ('missing' in found) return { ok: false, reason: found.missing };
    gpu = found;
  }
  try {
    await loadBackend(name);
    if (!(await tf.setBackend(name))) return { ok: false, reason: 'failed to initialise' };
    await tf.ready();
  } catch (error) {
    return { ok: false, reason: error instanceof Error ? error.message : String(error) };
  }
  switch (name) {
    case 'webgpu':
      return { ok: true, adapter: gpu!.description, software: gpu!.software };
    case 'webgl': {
      const renderer = webglRenderer();
      return { ok: true, adapter: renderer, software: renderer !== undefined && SOFTWARE_NAME.test(renderer) };
    }
    case 'wasm':
      // tfjs-backend-wasm lacks Conv2DBackpropFilter: without it Conv2D models cannot train.
      registerWasmTrainingKernels();
      return { ok: true, adapter: 'WebAssembly', software: false, threads: wasmThreadsCount?.() };
    case 'cpu':
      return { ok: true, adapter: 'JavaScript', software: false };
    default: {
      const unknown: never = name;
      return { ok: false, reason: `unknown backend ${String(unknown)}` };
    }
  }
}

/** `?backend=`: that backend or an error, never a silent fallback. */
export async function selectBackend(forced: BackendName): Promise<SelectedBackend> {
  const started = performance.now();
  const active = await activate(forced);
  if (!active.ok) throw new Error(`backend "${forced}" is unavailable: ${active.reason}`);
  const measurement: BackendMeasurement = {
    backend: forced,
    adapter: active.adapter,
    software: active.software,
    threads: active.threads,
    note: 'forced by ?backend=',
  };
  return {
    backend: forced,
    adapter: active.adapter,
    software: active.software,
    threads: active.threads,
    how: 'forced',
    measurements: [measurement],
    chooseMs: performance.now() - started,
  };
}

/** What the cached choice depends on: a change in any part measures again. */
async function cacheKey(job: MeasureJob): Promise<string> {
  const gpu = await webgpuAdapter();
  return choiceKey({
    userAgent: navigator.userAgent,
    cores: navigator.hardwareConcurrency || 1,
    isolated: globalThis.crossOriginIsolated === true,
    webgpuAdapter: gpu && 'description' in gpu ? gpu.description : undefined,
    webglRenderer: webglRenderer(),
    modelSignature: JSON.stringify({ model: job.model, batchSize: job.batchSize, dp: job.dp }),
  });
}

/**
 * The fastest backend for `job` on this device: a cached measurement when
 * nothing it depends on has changed, otherwise a fresh one within one
 * deadline, `budgetMs` after the call. WASM goes first (it works nearly
 * everywhere, so the others get a rate to beat); each later backend gets an
 * equal share of what is left and stops as soon as it is clearly behind
 * (below half the best rate); a backend is not started once less than
 * MIN_SLICE_MS is left. The CPU backend is measured only when WASM does not
 * work: it runs the same kernels in plain JavaScript and is always slower. A
 * software WebGPU adapter is timed, but not waited for beyond
 * SOFTWARE_SHARE_MS (its first step compiles for seconds, on the CPU); a
 * software WebGL renderer is not started
 * once WASM has a rate, as starting it alone takes seconds that cannot be cut
 * short.
 */
export async function chooseBackend(job: MeasureJob, budgetMs = MEASURE_BUDGET_MS): Promise<SelectedBackend> {
  const started = performance.now();
  const deadline = started + budgetMs - SETTLE_MS;
  const key = await cacheKey(job);
  const cached = await loadChoice(key);
  if (cached) {
    const active = await activate(cached.backend);
    if (active.ok) {
      return {
        backend: cached.backend,
        adapter: active.adapter,
        software: active.software,
        threads: active.threads,
        how: 'cached',
        measurements: cached.measurements,
        chooseMs: performance.now() - started,
      };
    }
  }
  const measurements: BackendMeasurement[] = [];
  let best: { readonly backend: BackendName; readonly rate: number } | undefined;
  for (let i = 0; i < MEASURE_ORDER.length; i++) {
    const name = MEASURE_ORDER[i]!;
    if (name === 'cpu' && best) {
      measurements.push({ backend: name, adapter: 'JavaScript', software: false, note: 'not measured: WASM works and is always faster' });
      continue;
    }
    const backendStart = performance.now();
    if (best && deadline - backendStart < MIN_SLICE_MS) {
      measurements.push({ backend: name, software: false, note: `not timed: the ${(budgetMs / 1000).toFixed(1)} s budget was spent` });
      continue;
    }
    const renderer = name === 'webgl' ? webglRenderer() : undefined;
    if (best && renderer !== undefined && SOFTWARE_NAME.test(renderer)) {
      // Starting tfjs's WebGL backend on a software renderer alone took 5 s here, and cannot be cut short.
      measurements.push({
        backend: name,
        adapter: renderer,
        software: true,
        note: 'not timed: a software renderer is far slower than WASM',
      });
      continue;
    }
    const active = await activate(name);
    if (!active.ok) {
      measurements.push({ backend: name, software: false, note: active.reason, ms: performance.now() - backendStart });
      continue;
    }
    const base = { backend: name, adapter: active.adapter, software: active.software, threads: active.threads };
    // An equal share of what is left for this and each later backend that will start: not the CPU (it runs
    // only when WASM failed), not a software WebGL renderer (skipped once WASM has a rate).
    const later = MEASURE_ORDER.slice(i + 1).filter(
      (b) => b !== 'cpu' && !(b === 'webgl' && SOFTWARE_NAME.test(webglRenderer() ?? '')),
    ).length;
    const left = Math.max(0, deadline - performance.now());
    const share = Math.min(active.software && best ? SOFTWARE_SHARE_MS : Infinity, Math.max(MIN_SLICE_MS, left / (later + 1)));
    try {
      const measured = await measureActiveBackend(job, { deadline: performance.now() + share, beatRate: best?.rate });
      const ms = performance.now() - backendStart;
      if (measured.unfinished) {
        measurements.push({
          ...base,
          ms,
          note: `below ${Math.round(measured.examplesPerSecond).toLocaleString('en-US')} (no step finished in ${(measured.ms / 1000).toFixed(1)} s)`,
        });
        continue;
      }
      measurements.push({
        ...base,
        examplesPerSecond: measured.examplesPerSecond,
        ms,
        note: measured.behind ? 'stopped early: clearly behind' : undefined,
      });
      if (!best || measured.examplesPerSecond > best.rate) best = { backend: name, rate: measured.examplesPerSecond };
    } catch (error) {
      measurements.push({
        ...base,
        ms: performance.now() - backendStart,
        note: `failed while training: ${error instanceof Error ? error.message : String(error)}`,
      });
    }
  }
  if (!best) throw new Error(`no tfjs backend can train here: ${measurements.map((m) => `${m.backend}: ${m.note ?? '?'}`).join('; ')}`);
  const chosen = await activate(best.backend);
  if (!chosen.ok) throw new Error(`backend ${best.backend} measured fastest but then failed: ${chosen.reason}`);
  await saveChoice(key, { backend: best.backend, measurements, measuredAt: new Date().toISOString() });
  return {
    backend: best.backend,
    adapter: chosen.adapter,
    software: chosen.software,
    threads: chosen.threads,
    how: 'measured',
    measurements,
    chooseMs: performance.now() - started,
  };
}

const LABEL: Record<BackendName, string> = { webgpu: 'WebGPU', webgl: 'WebGL', wasm: 'WASM', cpu: 'CPU' };

function describe(m: Pick<BackendMeasurement, 'backend' | 'software' | 'threads'>): string {
  const extra = m.software
    ? m.backend === 'webgl'
      ? ', software renderer'
      : ', software adapter'
    : m.threads !== undefined
      ? `, ${m.threads} thread${m.threads === 1 ? '' : 's'}`
      : '';
  return `${LABEL[m.backend]}${extra}`;
}

const rate = (x: number) => `${Math.round(x).toLocaleString('en-US')} examples/s`;

/** The choice and why, e.g. "WASM, 2 threads: 5,700 examples/s (WebGPU, software adapter: 460; WebGL, software renderer: 630)". */
export function choiceText(selected: SelectedBackend): string {
  const mine = selected.measurements.find((m) => m.backend === selected.backend);
  const head = `${describe({ ...selected })}${mine?.examplesPerSecond !== undefined ? `: ${rate(mine.examplesPerSecond)}` : ''}`;
  if (selected.how === 'forced') return `${head} (forced by ?backend=)`;
  const others = selected.measurements
    .filter((m) => m.backend !== selected.backend)
    .map((m) => `${describe(m)}: ${m.examplesPerSecond !== undefined ? Math.round(m.examplesPerSecond).toLocaleString('en-US') : m.note}`);
  const when = selected.how === 'cached' ? 'measured earlier on this device' : `measured in ${(selected.chooseMs / 1000).toFixed(1)} s`;
  return `${head} (${[...others, when].join('; ')})`;
}
