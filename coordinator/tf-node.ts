import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { registerWasmTrainingKernels } from '../core/model/wasm-kernels.ts';

/**
 * Picks the tfjs backend for Node: WASM (SIMD) when it initialises, else the
 * pure-JS CPU backend. `@tensorflow/tfjs-node` is not used: its install
 * downloads a native binary, which many machines cannot do.
 */
export async function initNodeBackend(preferred: 'wasm' | 'cpu' = 'wasm'): Promise<string> {
  for (const name of preferred === 'wasm' ? ['wasm', 'cpu'] : ['cpu']) {
    try {
      if (await tf.setBackend(name)) {
        await tf.ready();
        // tfjs-backend-wasm lacks Conv2DBackpropFilter: without it Conv2D models cannot train.
        if (tf.getBackend() === 'wasm') registerWasmTrainingKernels();
        return tf.getBackend();
      }
    } catch {
      // Not registered or failed to load: try the next one.
    }
  }
  throw new Error('no tfjs backend could be initialised in Node (tried wasm and cpu)');
}
