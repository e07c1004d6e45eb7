import { lineOfRow, parseCsv, type CsvTable } from '../../../core/data/csv.ts';
import { shardIndices, type Dataset, type ShardSpec } from '../../../core/data/dataset.ts';
import type { TabularInput } from '../../../core/data/schema.ts';
import { prepareTable, suggestRoles, TabularSchemaError, type PreparedTable } from '../../../core/data/tabular.ts';
import type { TaskSummary } from '../../../core/protocol/messages.ts';

/** CSV files, read in the page: the user's own, or a task's demo CSV prepared by the same code. */

/** Larger files would be read whole into memory (a string twice their size); far beyond what a tab trains on. */
const MAX_CSV_BYTES = 256 * 1024 * 1024;

export function tabularInput(task: TaskSummary): TabularInput {
  if (task.input.kind !== 'tabular') throw new Error(`task ${task.name} takes ${task.input.kind} input, not a CSV table`);
  return task.input;
}

/** Reads and parses a user's CSV file; throws CsvError (with the line) or a plain Error for unreadable files. */
export async function readCsvFile(file: File): Promise<CsvTable> {
  if (file.size > MAX_CSV_BYTES)
    throw new Error(
      `${file.name} is ${(file.size / 1e6).toFixed(0)} MB; files up to ${MAX_CSV_BYTES / 1024 / 1024} MB can be read in a tab`,
    );
  if (file.size === 0) throw new Error(`${file.name} is empty`);
  const text = await file.text();
  const table = parseCsv(text);
  if (table.rows.length === 0) throw new Error(`${file.name} has a header but no rows of data`);
  return table;
}

/** A few distinct non-empty values of a column, for the user to recognise it. */
export function sampleValues(table: CsvTable, column: number, count = 3): string[] {
  const seen = new Set<string>();
  for (const row of table.rows) {
    const value = row[column]!;
    if (value !== '') seen.add(value.length > 24 ? `${value.slice(0, 23)}…` : value);
    if (seen.size >= count) break;
  }
  return [...seen];
}

/** Problems as one readable message, for errors that end the page's work (the demo CSV). */
function problemsText(error: TabularSchemaError): string {
  return error.problems.map((p) => (p.line === undefined ? p.message : `line ${p.line}: ${p.message}`)).join('; ');
}

/**
 * The demo shard of a task whose demo data is a CSV, prepared like a
 * user's own file: the shard's rows are chosen on the whole file (so the
 * shards of K/N are disjoint and cover it, as for encoded datasets), then
 * only those rows are prepared, with statistics computed from them alone.
 */
export async function loadDemoCsv(task: TaskSummary, shard: ShardSpec): Promise<{ dataset: Dataset; prepared: PreparedTable }> {
  const schema = tabularInput(task);
  const url = task.demoData!.url;
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  const table = parseCsv(await response.text());
  const roles = suggestRoles(table, schema);
  try {
    // Rows with a missing value are skipped; shards are dealt over the rows that remain.
    const whole = prepareTable(table, roles, schema, task.classes);
    const skipped = new Set(whole.skipped.map((s) => s.line));
    const kept = table.rows.flatMap((_, row) => (skipped.has(lineOfRow(table, row)) ? [] : [row]));
    const mine = Array.from(shardIndices(whole.dataset.labels, shard), (k) => kept[k]!);
    const shardTable: CsvTable = { ...table, rows: mine.map((row) => table.rows[row]!), lines: mine.map((row) => lineOfRow(table, row)) };
    const prepared = prepareTable(shardTable, roles, schema, task.classes);
    return { dataset: prepared.dataset, prepared };
  } catch (error) {
    if (error instanceof TabularSchemaError) throw new Error(`the task's demo CSV does not fit its own schema: ${problemsText(error)}`);
    throw error;
  }
}
