import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { chromium, type Browser } from 'playwright';
import { CHROMIUM_ARGS, findChromium } from '../coordinator/browser.ts';
import { parseConfig, type CoordinatorConfig } from '../coordinator/config.ts';
import { isPositive, isPositiveInt, numberFlag } from '../coordinator/flags.ts';
import { startCoordinator } from '../coordinator/server.ts';
import { ArchitectureName } from '../core/protocol/messages.ts';
import { BENCH_BACKENDS, type BenchBackend } from './client/backends.ts';
import type { BenchResult } from './client/worker.ts';

const USAGE = `Usage: npx tsx bench/client.ts [options]

Local-training throughput in headless Chromium, per tfjs backend: our
LocalTrainer.train against a plain model.fit on the same data, model and
backend. Needs a build first (npm run build); serves dist/ with an in-process
coordinator and opens /bench/client/index.html once per backend.

  --backends LIST        comma-separated, from ${BENCH_BACKENDS.join(', ')} (default
                         webgpu,webgl,wasm). wasm1: WASM with threads off (the
                         single-threaded SIMD binary); auto: the participant's
                         choice by measurement, from a fresh profile (its time is
                         reported), then trained on like the others
  --page-weight          instead: bytes the participant page downloads before its
                         first training step, first visit and a reload (cached
                         choice), by kind of file
  --model NAME           ${ArchitectureName.join(' | ')} (default mlp)
  --examples N           training examples per epoch (default 2000)
  --webgpu-examples N    examples for webgpu, which is SwiftShader (software) on
                         machines without a GPU (default 500)
  --reps N               timed 1-epoch repetitions of each side, alternated (default 5)
  --batch-size N         (default 32)
  --learning-rate X      (default 0.1)
  --timeout S            seconds allowed per backend (default 600)
  --static-dir DIR       serve this build instead of dist/ (e.g. a copy of an
                         earlier build, to compare two builds in one run)
  --json FILE            also write the raw results as JSON
  --help                 show this text
`;

interface Options {
  readonly backends: readonly BenchBackend[];
  readonly pageWeight: boolean;
  readonly model: ArchitectureName;
  readonly examples: number;
  readonly webgpuExamples: number;
  readonly reps: number;
  readonly batchSize: number;
  readonly learningRate: number;
  readonly timeoutMs: number;
  readonly json?: string;
  readonly staticDir: string;
}

function positive(text: string | undefined, flag: string, fallback: number, integer = true): number {
  return (
    numberFlag(
      text,
      flag,
      integer ? isPositiveInt : isPositive,
      `a positive ${integer ? 'integer' : 'number'}`,
      (message) => new Error(message),
    ) ?? fallback
  );
}

function parseOptions(argv: readonly string[]): Options | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      backends: { type: 'string' },
      model: { type: 'string' },
      examples: { type: 'string' },
      'webgpu-examples': { type: 'string' },
      reps: { type: 'string' },
      'batch-size': { type: 'string' },
      'learning-rate': { type: 'string' },
      timeout: { type: 'string' },
      json: { type: 'string' },
      'static-dir': { type: 'string' },
      'page-weight': { type: 'boolean' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) return 'help';
  const backends = (values.backends ?? 'webgpu,webgl,wasm')
    .split(',')
    .map((b) => b.trim())
    .filter((b) => b !== '');
  for (const b of backends) {
    if (!(BENCH_BACKENDS as readonly string[]).includes(b))
      throw new Error(`--backends: unknown backend "${b}" (known: ${BENCH_BACKENDS.join(', ')})`);
  }
  if (backends.length === 0) throw new Error('--backends is empty');
  const model = values.model ?? 'mlp';
  if (!(ArchitectureName as readonly string[]).includes(model))
    throw new Error(`--model must be one of ${ArchitectureName.join(', ')}, got "${model}"`);
  return {
    backends: backends as BenchBackend[],
    pageWeight: values['page-weight'] === true,
    model: model as ArchitectureName,
    examples: positive(values.examples, 'examples', 2000),
    webgpuExamples: positive(values['webgpu-examples'], 'webgpu-examples', 500),
    reps: positive(values.reps, 'reps', 5),
    batchSize: positive(values['batch-size'], 'batch-size', 32),
    learningRate: positive(values['learning-rate'], 'learning-rate', 0.1, false),
    timeoutMs: 1000 * positive(values.timeout, 'timeout', 600, false),
    json: values.json,
    staticDir: values['static-dir'] ?? 'dist',
  };
}

type Outcome = BenchResult | { readonly status: 'error'; readonly backend: BenchBackend; readonly message: string };

/** Runs the benchmark page for one backend in a fresh browser context (a fresh worker and tfjs). */
async function benchBackend(browser: Browser, baseUrl: string, backend: BenchBackend, options: Options): Promise<Outcome> {
  const examples = backend === 'webgpu' ? options.webgpuExamples : options.examples;
  const query = new URLSearchParams({
    backend,
    model: options.model,
    examples: String(examples),
    reps: String(options.reps),
    batchSize: String(options.batchSize),
    learningRate: String(options.learningRate),
  });
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    page.on('console', (message) => {
      if (message.text().startsWith('[bench]')) console.error(`  ${backend}: ${message.text().slice(8)}`);
    });
    page.on('pageerror', (error) => console.error(`  ${backend}: page error: ${error.message}`));
    await page.goto(`${baseUrl}/bench/client/index.html?${query}`);
    await page.waitForSelector('#result[data-done="true"], #error[data-done="true"]', { state: 'attached', timeout: options.timeoutMs });
    const error = await page.locator('#error').getAttribute('data-done');
    if (error === 'true') return { status: 'error', backend, message: (await page.locator('#error').textContent()) ?? '' };
    return JSON.parse((await page.locator('#result').textContent()) ?? '') as BenchResult;
  } catch (error) {
    return { status: 'error', backend, message: error instanceof Error ? error.message : String(error) };
  } finally {
    await context.close();
  }
}

const round = (x: number) => Math.round(x).toLocaleString('en-US');
const cell = (text: string) => text.replaceAll('|', '\\|').replaceAll('\n', ' ');

function table(outcomes: readonly Outcome[]): string {
  const lines = [
    '| run | backend | adapter | threads | examples | ours ex/s | model.fit ex/s | ratio | ratio per pair, min–max | tensors flat | choice |',
    '|---|---|---|---:|---:|---:|---:|---:|---:|---|---|',
  ];
  for (const o of outcomes) {
    if (o.status === 'ok') {
      const t = o.tensors;
      lines.push(
        `| ${o.requested} | ${o.backend} | ${cell(o.adapter ?? '–')} | ${o.threads ?? '–'} | ${o.examples} | ${round(o.oursExamplesPerSecond)} | ${round(o.fitExamplesPerSecond)} | ` +
          `${o.ratio.toFixed(3)} | ${Math.min(...o.pairRatios).toFixed(2)}–${Math.max(...o.pairRatios).toFixed(2)} | ${o.tensorsFlat ? 'yes' : 'no'} (${t.setup} → ${t.afterWarmup} → ${t.end}) | ` +
          `${o.chooseMs === undefined ? '' : cell(`chosen in ${(o.chooseMs / 1000).toFixed(1)} s (${o.choice ?? ''})`)} |`,
      );
    } else if (o.status === 'unavailable') {
      lines.push(`| ${o.backend} | | unavailable: ${cell(o.reason)} | | | | | | | | |`);
    } else {
      lines.push(`| ${o.backend} | | error: ${cell(o.message.split('\n')[0] ?? '')} | | | | | | | | |`);
    }
  }
  return lines.join('\n');
}

interface PageWeight {
  readonly visit: string;
  readonly bytes: number;
  readonly byKind: Record<string, number>;
  readonly ms: number;
  readonly backend: string;
}

/**
 * Bytes the participant page downloads (page, worker, every chunk and WASM
 * binary, the task and the demo data) from navigation until its status first
 * says "training": a first visit (the backend is measured, so every candidate
 * backend loads) and a reload in the same profile (the cached choice loads
 * only the chosen backend).
 */
async function pageWeight(browser: Browser, baseUrl: string, timeoutMs: number): Promise<PageWeight[]> {
  const context = await browser.newContext();
  const results: PageWeight[] = [];
  try {
    const page = await context.newPage();
    let byKind: Record<string, number> = {};
    context.on('response', (response) => {
      void response.body().then(
        (body) => {
          const url = new URL(response.url());
          const kind = url.pathname.endsWith('.wasm')
            ? 'wasm'
            : url.pathname.endsWith('.js')
              ? 'js'
              : url.pathname.startsWith('/api/') || url.pathname.startsWith('/data')
                ? 'task + data'
                : 'html, css, other';
          byKind[kind] = (byKind[kind] ?? 0) + body.length;
        },
        () => {},
      );
    });
    for (const visit of ['first visit (measures)', 'reload (cached choice)']) {
      byKind = {};
      const started = Date.now();
      if (results.length === 0) await page.goto(`${baseUrl}/?shard=1/2`);
      else await page.reload();
      await page.waitForSelector('#status[data-status="training"]', { state: 'attached', timeout: timeoutMs });
      const ms = Date.now() - started;
      await page.waitForTimeout(500); // bodies still being read
      const bytes = Object.values(byKind).reduce((a, b) => a + b, 0);
      results.push({ visit, bytes, byKind: { ...byKind }, ms, backend: (await page.locator('#backend-choice').textContent()) ?? '' });
    }
  } finally {
    await context.close();
  }
  return results;
}

async function main(): Promise<number> {
  let options: Options | 'help';
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (options === 'help') {
    console.log(USAGE);
    return 0;
  }

  const dataDir = await mkdtemp(path.join(tmpdir(), 'fl-bench-client-'));
  const config = parseConfig([
    '--port',
    '0',
    '--host',
    '127.0.0.1',
    '--data-dir',
    dataDir,
    '--static-dir',
    options.staticDir,
    '--min-clients',
    '1',
    '--quiet',
  ]) as CoordinatorConfig;
  const coordinator = await startCoordinator(config);
  const browser = await chromium.launch({ executablePath: findChromium(), args: CHROMIUM_ARGS, headless: true });
  const outcomes: Outcome[] = [];
  if (options.pageWeight) {
    try {
      const weights = await pageWeight(browser, coordinator.url, options.timeoutMs);
      const mb = (n: number) => `${(n / 1e6).toFixed(2)} MB`;
      console.log('\nBytes downloaded before the first training step (headless Chromium, demo task):\n');
      console.log('| visit | total | JavaScript | WASM | task + data | page, CSS, other | time to training | backend |');
      console.log('|---|---:|---:|---:|---:|---:|---:|---|');
      for (const w of weights) {
        const k = (name: string) => mb(w.byKind[name] ?? 0);
        console.log(
          `| ${w.visit} | ${mb(w.bytes)} | ${k('js')} | ${k('wasm')} | ${k('task + data')} | ${k('html, css, other')} | ${(w.ms / 1000).toFixed(1)} s | ${cell(w.backend)} |`,
        );
      }
      if (options.json) await writeFile(options.json, `${JSON.stringify({ options, pageWeight: weights }, null, 2)}\n`);
    } finally {
      await browser.close();
      await coordinator.close();
      await rm(dataDir, { recursive: true, force: true });
    }
    return 0;
  }
  try {
    console.error(
      `Chromium ${browser.version()}, coordinator at ${coordinator.url} serving ${options.staticDir}, model ${options.model}, ${options.reps} reps, batch ${options.batchSize}`,
    );
    for (const backend of options.backends) {
      console.error(`${backend}:`);
      const started = Date.now();
      const outcome = await benchBackend(browser, coordinator.url, backend, options);
      console.error(`  ${outcome.status} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      if (outcome.status === 'error') console.error(`  ${outcome.message}`);
      outcomes.push(outcome);
    }
  } finally {
    await browser.close();
    await coordinator.close();
    await rm(dataDir, { recursive: true, force: true });
  }

  console.log(
    `\nLocal training, model ${options.model}, batch ${options.batchSize}, median of ${options.reps} alternated 1-epoch runs each:\n`,
  );
  console.log(table(outcomes));
  if (options.json) {
    await writeFile(options.json, `${JSON.stringify({ options, results: outcomes }, null, 2)}\n`);
    console.error(`raw results: ${options.json}`);
  }
  return outcomes.some((o) => o.status === 'error') ? 1 : 0;
}

process.exitCode = await main();
