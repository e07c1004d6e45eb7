/**
 * Builds this task's CSV files from the Palmer Penguins data (CC0; Gorman,
 * Williams & Fraser 2014) as shipped in the npm package vega-datasets@3.2.1.
 * Run once; the CSVs are committed and nothing is fetched at run time:
 *
 *   (cd /tmp && npm pack vega-datasets@3.2.1 && tar xzf vega-datasets-3.2.1.tgz)
 *   npx tsx tasks/penguins/make-data.ts /tmp/package/data/penguins.json
 *
 * Writes train.csv, test.csv and participants/site-1..3.csv (a split of
 * train.csv) next to this script. The output depends only on the input and
 * the seeds below.
 */
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { permutation, SeededRandom } from '../../core/random/prng.ts';

const SPLIT_SEED = 2014;
const SHARD_SEED = 7;
const TEST_FRACTION = 0.25;
const SITES = 3;

const MEASUREMENTS = ['Beak Length (mm)', 'Beak Depth (mm)', 'Flipper Length (mm)', 'Body Mass (g)'] as const;
const COLUMNS = ['Sample ID', 'Species', 'Island', ...MEASUREMENTS, 'Sex'] as const;

type Row = Record<(typeof COLUMNS)[number], string>;

function fail(message: string): never {
  console.error(`make-data: ${message}`);
  process.exit(1);
}

function readPenguins(file: string): Row[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    fail(`cannot read ${file}: ${(error as Error).message}`);
  }
  if (!Array.isArray(parsed)) fail(`${file} is not a JSON array of penguins`);
  const rows: Row[] = [];
  parsed.forEach((record: Record<string, unknown>, i) => {
    // Synthetic identifiers, numbered in source order: a column to practise dropping, not data.
    const id = `PAL-${String(i + 1).padStart(4, '0')}`;
    const sex = record.Sex;
    // The source marks unknown sex as null or ".": such rows cannot be labelled.
    if (sex !== 'MALE' && sex !== 'FEMALE') return;
    const row: Partial<Row> = { 'Sample ID': id, Sex: sex };
    for (const name of ['Species', 'Island'] as const) {
      const value = record[name];
      if (typeof value !== 'string' || value === '') fail(`${file}: penguin ${i} has no ${name}`);
      row[name] = value;
    }
    for (const name of MEASUREMENTS) {
      const value = record[name];
      if (typeof value !== 'number' || !Number.isFinite(value)) return;
      row[name] = String(value);
    }
    rows.push(row as Row);
  });
  return rows;
}

function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function toCsv(rows: readonly Row[]): string {
  return `${[COLUMNS.map(csvField).join(','), ...rows.map((row) => COLUMNS.map((c) => csvField(row[c])).join(','))].join('\n')}\n`;
}

const source = process.argv[2] ?? fail('usage: npx tsx tasks/penguins/make-data.ts path/to/vega-datasets/data/penguins.json');
const rows = readPenguins(source);
const order = permutation(rows.length, new SeededRandom(SPLIT_SEED));
const testCount = Math.round(rows.length * TEST_FRACTION);
const test = Array.from(order.subarray(0, testCount), (i) => rows[i]!);
const train = Array.from(order.subarray(testCount), (i) => rows[i]!);

const dir = path.dirname(fileURLToPath(import.meta.url));
writeFileSync(path.join(dir, 'test.csv'), toCsv(test));
writeFileSync(path.join(dir, 'train.csv'), toCsv(train));
mkdirSync(path.join(dir, 'participants'), { recursive: true });
const dealt = permutation(train.length, new SeededRandom(SHARD_SEED));
for (let site = 0; site < SITES; site++) {
  const start = Math.floor((train.length * site) / SITES);
  const end = Math.floor((train.length * (site + 1)) / SITES);
  writeFileSync(path.join(dir, 'participants', `site-${site + 1}.csv`), toCsv(Array.from(dealt.subarray(start, end), (i) => train[i]!)));
}
console.log(`${rows.length} labelled penguins: ${train.length} in train.csv (${SITES} sites), ${test.length} in test.csv`);
