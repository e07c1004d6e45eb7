import { createRequire, findSourceMap } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * Loaded with --import before a coordinator entry point: at exit it prints
 * whether this (the main) thread loaded tfjs, and whether Node holds a source
 * map for tfjs-core and for the entry itself.
 */
const entry = process.argv[1]!;
process.on('exit', () => {
  const require = createRequire(pathToFileURL(entry));
  const report = {
    tfjsLoaded: Object.keys(require.cache).some((file) => file.includes(`${path.sep}@tensorflow${path.sep}`)),
    tfjsCoreMap: findSourceMap(require.resolve('@tensorflow/tfjs-core')) !== undefined,
    entry: findSourceMap(pathToFileURL(entry).href) !== undefined,
  };
  process.stdout.write(`tfjs loading ${JSON.stringify(report)}\n`);
});
