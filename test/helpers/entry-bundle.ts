import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { build } from 'esbuild';

const root = path.resolve(import.meta.dirname, '../..');
/** Inside the repository (and .gitignore'd) so that the bundles' package imports resolve to its node_modules. */
const buildRoot = path.join(root, '.test-build');

/**
 * `node` arguments that run `entry` (a path from the repository root, or
 * absolute) from its bundle; the entry's own arguments follow them.
 *
 * Tests that start a TypeScript entry point as its own process (the
 * coordinator, the participant CLI) run it from a bundle instead of through
 * `--import tsx`: tsx's loader resolves and transforms every module of every
 * launch on its hooks thread (docs/test-time.md has the measurements).
 *
 * The bundle holds the repository's own modules, the same code tsx would
 * run, transformed by the same esbuild; packages stay imports of
 * node_modules. Each test process builds the entries it spawns once, on its
 * first launch, into a folder of its own that it removes at exit: no bundle
 * outlives the run that built it (so none is stale after a source change),
 * and test files running at once never write the same file. Source maps
 * are on for the bundle, so stack traces name the .ts files and lines.
 *
 * A bundle changes what `import.meta.url` names (the bundle, not the
 * module): entries whose modules find files next to themselves through it
 * cannot be run this way.
 */
export async function nodeEntryArgs(entry: string): Promise<string[]> {
  let bundle = bundles.get(entry);
  if (bundle === undefined) {
    bundle = bundleEntry(entry);
    bundles.set(entry, bundle);
  }
  return [await bundle];
}

const bundles = new Map<string, Promise<string>>();
let ownFolder: string | undefined;

async function bundleEntry(entry: string): Promise<string> {
  const outdir = path.join(processFolder(), entry.replaceAll(/[/\\.]/g, '_'));
  const { metafile } = await build({
    entryPoints: { main: path.resolve(root, entry) },
    absWorkingDir: root,
    outdir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    // Modules the entry imports dynamically (e.g. the coordinator's Playwright-based demo participants) stay lazily loaded chunks.
    splitting: true,
    packages: 'external',
    platform: 'node',
    format: 'esm',
    target: `node${process.versions.node}`,
    // Stack traces need only the mappings; the sources' text would triple the map each launch reads.
    sourcemap: true,
    sourcesContent: false,
    metafile: true,
    logLevel: 'error',
  });
  // Source maps on for the bundle only: with them on from the start, Node also reads the maps that packages ship
  // (tfjs's are megabytes), about 0.2 s a launch. The packages the bundle imports load first, in its order, as they would anyway.
  const packages = new Set(
    metafile.outputs[path.relative(root, path.join(outdir, 'main.mjs'))]!.imports.filter(
      (i) => i.external && i.kind === 'import-statement',
    ).map((i) => i.path),
  );
  const launcher = path.join(outdir, 'launch.mjs');
  const lines = [
    ...[...packages].map((name) => `await import(${JSON.stringify(name)});`),
    'process.setSourceMapsEnabled(true);',
    // The script run is the bundle, as entries that check whether they were run or imported (`process.argv[1]`) expect.
    "process.argv[1] = (await import('node:url')).fileURLToPath(new URL('./main.mjs', import.meta.url));",
    "await import('./main.mjs');",
  ];
  await writeFile(launcher, `${lines.join('\n')}\n`);
  return launcher;
}

/** This process's folder under .test-build/, made on first use; folders left by processes that died unexpectedly are removed then. */
function processFolder(): string {
  if (ownFolder !== undefined) return ownFolder;
  mkdirSync(buildRoot, { recursive: true });
  for (const name of readdirSync(buildRoot)) {
    const pid = Number(name.split('-')[0]);
    if (Number.isInteger(pid) && !isAlive(pid)) rmSync(path.join(buildRoot, name), { recursive: true, force: true });
  }
  const folder = mkdtempSync(path.join(buildRoot, `${process.pid}-`));
  ownFolder = folder;
  process.once('exit', () => rmSync(folder, { recursive: true, force: true }));
  return folder;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}
