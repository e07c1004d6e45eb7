import { createRequire, findSourceMap } from 'node:module';
import { pathToFileURL } from 'node:url';

/**
 * Loaded with --import before a coordinator entry point: at exit it prints
 * whether Node holds a source map for tfjs-core and for the entry itself.
 */
const entry = process.argv[1]!;
process.on('exit', () => {
  const tfjsCore = createRequire(pathToFileURL(entry)).resolve('@tensorflow/tfjs-core');
  const report = {
    tfjsCore: findSourceMap(tfjsCore) !== undefined,
    entry: findSourceMap(pathToFileURL(entry).href) !== undefined,
  };
  process.stdout.write(`source maps ${JSON.stringify(report)}\n`);
});
