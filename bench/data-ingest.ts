import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadMnistDemo } from '../coordinator/task/demo-data.ts';
import { parseCsv } from '../core/data/csv.ts';
import { idxDataset, parseIdx } from '../core/data/idx.ts';
import { resizeToInput } from '../core/data/images.ts';
import { preparePixelTable, suggestPixelRoles } from '../core/data/pixel-table.ts';
import type { ImageInput, TabularInput } from '../core/data/schema.ts';
import { prepareTable, suggestRoles } from '../core/data/tabular.ts';
import { median } from './stats.ts';

/**
 * Bring-your-own-data ingestion, the work a participant's device does before
 * it can train: read a CSV (RFC 4180, with line numbers for errors) and
 * prepare it, read IDX files, resize a photo. Each CSV figure is paired with
 * a naive baseline on the same text in the same run (split on newlines and
 * commas: no quoting, no checks), so the ratio says what correctness costs.
 *
 *   npx tsx bench/data-ingest.ts [--rows 5000] [--reps 5]
 */

const { values } = parseArgs({ options: { rows: { type: 'string', default: '5000' }, reps: { type: 'string', default: '5' } } });
const rows = Number(values.rows);
const reps = Number(values.reps);
if (!Number.isInteger(rows) || rows < 1 || !Number.isInteger(reps) || reps < 1)
  throw new Error('--rows and --reps must be positive integers');

function medianMs(run: () => unknown): number {
  const times: number[] = [];
  run(); // warm-up
  for (let i = 0; i < reps; i++) {
    const start = performance.now();
    run();
    times.push(performance.now() - start);
  }
  return median(times);
}

const naiveSplit = (text: string) =>
  text
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(','));

function report(name: string, ours: number, baseline: number | undefined, unit: string, amount: number): void {
  const ratio = baseline === undefined ? '' : `   ours/naive ${(ours / baseline).toFixed(2)}x (naive ${baseline.toFixed(1)} ms)`;
  console.log(
    `${name.padEnd(50)} ${ours.toFixed(1).padStart(8)} ms   ${(amount / (ours / 1000)).toLocaleString('en-US', { maximumFractionDigits: 0 }).padStart(10)} ${unit}/s${ratio}`,
  );
}

// A digits CSV (label + 784 pixel columns + an identifier), as a participant might export it.
const { train } = await loadMnistDemo();
const count = Math.min(rows, train.count);
const header = ['id', 'label', ...Array.from({ length: 784 }, (_, i) => `pixel${i}`)].join(',');
const lines = [header];
for (let i = 0; i < count; i++) lines.push(`subject-${i},${train.labels[i]},${train.values.subarray(i * 784, (i + 1) * 784).join(',')}`);
const digitsCsv = `${lines.join('\n')}\n`;
const image: ImageInput = { kind: 'image', shape: [28, 28, 1] };
const digits = Array.from({ length: 10 }, (_, d) => String(d));

console.log(
  `data ingestion, median of ${reps} (Node ${process.version}); digits CSV: ${count.toLocaleString()} rows, ${(digitsCsv.length / 1e6).toFixed(1)} MB\n`,
);
const parseDigits = medianMs(() => parseCsv(digitsCsv));
report(
  'digits CSV: parseCsv',
  parseDigits,
  medianMs(() => naiveSplit(digitsCsv)),
  'rows',
  count,
);
const table = parseCsv(digitsCsv);
const roles = suggestPixelRoles(table);
report(
  'digits CSV: preparePixelTable',
  medianMs(() => preparePixelTable(table, roles, image, digits)),
  undefined,
  'rows',
  count,
);

// The same digits as IDX files (the compact format): header + bytes.
const idxImages = new Uint8Array(16 + count * 784);
new DataView(idxImages.buffer).setUint32(0, 0x803);
new DataView(idxImages.buffer).setUint32(4, count);
new DataView(idxImages.buffer).setUint32(8, 28);
new DataView(idxImages.buffer).setUint32(12, 28);
idxImages.set(train.values.subarray(0, count * 784), 16);
const idxLabels = new Uint8Array(8 + count);
new DataView(idxLabels.buffer).setUint32(0, 0x801);
new DataView(idxLabels.buffer).setUint32(4, count);
idxLabels.set(train.labels.subarray(0, count), 8);
report(
  'digits IDX: parseIdx + idxDataset',
  medianMs(() => idxDataset(parseIdx(idxImages), parseIdx(idxLabels), image, digits)),
  undefined,
  'rows',
  count,
);

// The penguins task's training CSV, repeated to a large table.
const taskDir = path.resolve(import.meta.dirname, '../tasks/penguins');
const task = JSON.parse(readFileSync(path.join(taskDir, 'task.json'), 'utf8')) as { input: TabularInput; classes: string[] };
const [penguinHeader, ...penguinRows] = readFileSync(path.join(taskDir, 'train.csv'), 'utf8').trim().split('\n');
const tabularRows = 100_000;
const tabularCsv = `${[penguinHeader, ...Array.from({ length: tabularRows }, (_, i) => penguinRows[i % penguinRows.length])].join('\n')}\n`;
console.log(`\npenguins CSV repeated: ${tabularRows.toLocaleString()} rows, ${(tabularCsv.length / 1e6).toFixed(1)} MB`);
report(
  'tabular CSV: parseCsv',
  medianMs(() => parseCsv(tabularCsv)),
  medianMs(() => naiveSplit(tabularCsv)),
  'rows',
  tabularRows,
);
const tabular = parseCsv(tabularCsv);
const tabularRoles = suggestRoles(tabular, task.input);
report(
  'tabular CSV: prepareTable (standardise, one-hot)',
  medianMs(() => prepareTable(tabular, tabularRoles, task.input, task.classes)),
  undefined,
  'rows',
  tabularRows,
);

// A 12-megapixel photo down to the task's 28x28 grayscale input.
const width = 4000;
const height = 3000;
const photo = new Uint8ClampedArray(width * height * 4).map((_, i) => (i * 2654435761) >>> 24);
console.log('');
report(
  'photo 4000x3000 RGBA -> 28x28x1: resizeToInput',
  medianMs(() => resizeToInput(photo, width, height, [28, 28, 1])),
  undefined,
  'images',
  1,
);
