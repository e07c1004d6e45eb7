import { createRequire } from 'node:module';

/**
 * Loads tfjs with Node's source maps off, and must be the first import of
 * the model thread (thread.ts): it runs synchronously, so it is
 * evaluated before the modules imported after it, which then get this same
 * instance.
 *
 * tsx turns source maps on so that stack traces point into our TypeScript;
 * Node then keeps the parsed source map of every module loaded while they
 * are on. tfjs's maps hold the text of all its sources: 18 MB of heap, more
 * than twice the rest of our code (docs/BENCHMARKS.md, "tfjs without its
 * source maps"). Stack traces inside tfjs point into its published dist
 * files instead.
 */
function loadTfjsWithoutSourceMaps(): void {
  const enabled = process.sourceMapsEnabled;
  process.setSourceMapsEnabled(false);
  try {
    const load = createRequire(import.meta.url);
    load('@tensorflow/tfjs');
    load('@tensorflow/tfjs-backend-wasm');
  } finally {
    process.setSourceMapsEnabled(enabled);
  }
}

loadTfjsWithoutSourceMaps();
