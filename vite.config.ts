import { resolve } from 'node:path';
import { defineConfig, type Plugin } from 'vite';
import { ISOLATION_HEADERS } from './coordinator/http/static-files.ts';

/**
 * tfjs-backend-wasm starts each WASM thread (pthread) from the source text of
 * its threaded factory (Function.prototype.toString, in a blob worker), where
 * the factory's closure variable `_scriptDir` does not exist. The original
 * guards it with `typeof`; the minifier, seeing the variable declared, turns
 * the guard into `_scriptDir !== void 0`, which throws in every thread
 * ("e is not defined") and threaded WASM never starts. In a browser worker
 * `_scriptDir` is always undefined (no document.currentScript, no
 * __filename), so the guard is replaced by its value there: false.
 *
 * Second, the thread count. `setThreadsCount(n)` is documented as "default
 * to the number of logical CPU cores", but the C++ side caps n at
 * hardwareConcurrency / 2 (it assumes two hyper-threads per core), so a
 * 2-core device gets one thread whatever it asks for. The glue's
 * `_emscripten_num_logical_cores` (read only for that cap) reports twice
 * hardwareConcurrency, so the count the page asks for (one per core, at most
 * tfjs's 8 pre-started workers) is the count that runs; bench/client.ts
 * measures what it buys (docs/BENCHMARKS.md).
 */
function threadedWasmInBundles(): Plugin {
  const guard = 'typeof _scriptDir !== "undefined" && _scriptDir';
  const cores = 'return navigator["hardwareConcurrency"]}';
  return {
    name: 'threaded-wasm-in-bundles',
    enforce: 'pre',
    transform(code, id) {
      if (!id.includes('tfjs-backend-wasm-threaded-simd.js')) return null;
      if (!code.includes(guard))
        this.error(
          `tfjs-backend-wasm changed: "${guard}" is gone from ${id}; check that threaded WASM still starts, then update vite.config.ts`,
        );
      if (!code.includes(cores))
        this.error(`tfjs-backend-wasm changed: "${cores}" is gone from ${id}; check the WASM thread count, then update vite.config.ts`);
      return { code: code.replace(guard, 'false').replace(cores, 'return 2 * navigator["hardwareConcurrency"]}'), map: null };
    },
  };
}

// Two pages: the participant (index.html) and the dashboard. The training
// worker is bundled as an ES module worker; the coordinator serves dist/.
export default defineConfig({
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 4096,
    rollupOptions: {
      input: {
        participant: resolve(import.meta.dirname, 'index.html'),
        dashboard: resolve(import.meta.dirname, 'dashboard.html'),
        bench: resolve(import.meta.dirname, 'bench/client/index.html'),
      },
    },
  },
  plugins: [threadedWasmInBundles()],
  worker: { format: 'es', plugins: () => [threadedWasmInBundles()] },
  // The same cross-origin isolation as the coordinator, so threaded WASM runs in `vite` and `vite preview` too.
  server: { headers: ISOLATION_HEADERS },
  preview: { headers: ISOLATION_HEADERS },
});
