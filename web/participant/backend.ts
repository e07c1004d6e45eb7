import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import wasmPlain from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimd from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreaded from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import { registerWasmTrainingKernels } from '../../core/model/wasm-kernels.ts';
import { BACKENDS, type BackendName } from './worker-protocol.ts';

setWasmPaths({
  'tfjs-backend-wasm.wasm': wasmPlain,
  'tfjs-backend-wasm-simd.wasm': wasmSimd,
  'tfjs-backend-wasm-threaded-simd.wasm': wasmThreaded,
});

export interface SelectedBackend {
  readonly backend: string;
  readonly adapter?: string;
  /** Each backend tried before the one in use, with why it was passed over. */
  readonly tried: readonly string[];
}

interface AdapterInfoLike {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
}

interface GpuLike {
  requestAdapter(): Promise<{ info?: AdapterInfoLike } | null>;
}

/** The WebGPU adapter's description, or why there is none. */
async function webgpuAdapter(): Promise<{ description?: string; missing?: string }> {
  const gpu = (navigator as Navigator & { gpu?: GpuLike }).gpu;
  if (!gpu) return { missing: 'navigator.gpu is absent (WebGPU needs a secure context: https or localhost)' };
  const adapter = await gpu.requestAdapter();
  if (!adapter) return { missing: 'navigator.gpu.requestAdapter() returned no adapter' };
  const info = adapter.info ?? {};
  const parts = [info.vendor, info.architecture, info.device, info.description].filter((p) => p);
  return { description: parts.length > 0 ? parts.join(' / ') : 'WebGPU adapter (no details reported)' };
}

function webglRenderer(): string | undefined {
  try {
    const gl = new OffscreenCanvas(1, 1).getContext('webgl2') as WebGL2RenderingContext | null;
    if (!gl) return undefined;
    const debug = gl.getExtension('WEBGL_debug_renderer_info');
    return String(gl.getParameter(debug ? debug.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
  } catch {
    return undefined;
  }
}

/**
 * Picks the fastest backend that really works: WebGPU, WebGL, WASM, CPU.
 * `tf.setBackend` throws when a backend is not registered and resolves false
 * when it fails to initialise; both count as unavailable. A forced backend
 * that is unavailable is an error, not a silent fallback.
 */
export async function selectBackend(forced?: BackendName): Promise<SelectedBackend> {
  const tried: string[] = [];
  for (const name of forced ? [forced] : BACKENDS) {
    let adapter: string | undefined;
    if (name === 'webgpu') {
      const found = await webgpuAdapter();
      if (!found.description) {
        tried.push(`webgpu: ${found.missing}`);
        continue;
      }
      adapter = found.description;
    }
    let ok = false;
    try {
      ok = await tf.setBackend(name);
    } catch (error) {
      tried.push(`${name}: ${error instanceof Error ? error.message : String(error)}`);
      continue;
    }
    if (!ok) {
      tried.push(`${name}: failed to initialise`);
      continue;
    }
    await tf.ready();
    if (name === 'webgl') adapter = webglRenderer();
    if (name === 'wasm') {
      adapter = 'WebAssembly';
      // tfjs-backend-wasm lacks Conv2DBackpropFilter: without it Conv2D models cannot train.
      registerWasmTrainingKernels();
    }
    if (name === 'cpu') adapter = 'JavaScript';
    return { backend: tf.getBackend(), adapter, tried };
  }
  throw new Error(forced ? `backend "${forced}" is unavailable: ${tried.join('; ')}` : `no tfjs backend works here: ${tried.join('; ')}`);
}
