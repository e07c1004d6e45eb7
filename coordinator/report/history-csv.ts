import type { RoundRecord } from '../../core/protocol/status.ts';

/** The round history as CSV (RFC 4180: CRLF line ends, fields with a comma, quote or line break quoted, quotes doubled). */

type Cell = string | number | undefined;

/** The columns, each with its value; `participation` ones are left out under client-level DP (run-report.ts PARTICIPATION_WITHHELD). */
const COLUMNS: readonly { readonly name: string; readonly value: (r: RoundRecord) => Cell; readonly participation?: true }[] = [
  { name: 'round', value: (r) => r.round },
  { name: 'outcome', value: (r) => r.outcome },
  { name: 'reason', value: (r) => r.reason, participation: true },
  { name: 'accuracy', value: (r) => r.metrics?.accuracy },
  { name: 'loss', value: (r) => r.metrics?.loss },
  { name: 'selected', value: (r) => r.selected, participation: true },
  { name: 'received', value: (r) => r.received, participation: true },
  { name: 'dropped', value: (r) => r.dropped, participation: true },
  { name: 'rejected', value: (r) => r.rejected, participation: true },
  { name: 'declined', value: (r) => r.declined, participation: true },
  { name: 'bytes_in', value: (r) => r.bytesIn, participation: true },
  { name: 'bytes_out', value: (r) => r.bytesOut, participation: true },
  { name: 'duration_ms', value: (r) => r.durationMs, participation: true },
  { name: 'epsilon', value: (r) => r.privacy?.epsilon },
  { name: 'delta', value: (r) => r.privacy?.delta },
];

/**
 * Async mode: the staleness of each version's buffered updates (counts as
 * "n0 n1 …", the updates of staleness 0, 1, …). Only in a history that has
 * them; withheld under client-level DP, since the counts add up to how many
 * updates a version took.
 */
const STALENESS_COLUMNS: typeof COLUMNS = [
  { name: 'staleness_max', value: (r) => r.staleness?.max, participation: true },
  { name: 'staleness_mean', value: (r) => r.staleness?.mean, participation: true },
  { name: 'staleness_counts', value: (r) => r.staleness?.counts.join(' '), participation: true },
];

/**
 * Text a spreadsheet would read as a formula (after a tab or CR too, which
 * some strip first). Text cells are built by the coordinator today; the
 * apostrophe is defence in depth for the CSV opened in a spreadsheet.
 */
const FORMULA_START = /^[=+\-@\t\r]/;

export function csvField(value: string | number | undefined): string {
  if (value === undefined) return '';
  // Only text gets the apostrophe: a number (a negative one too) stays a number.
  const text = typeof value === 'number' ? String(value) : FORMULA_START.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export interface HistoryCsvOptions {
  /** Client-level DP: no column that tells who or how many took part (absent, not empty, so nobody reads a blank as zero). */
  readonly withholdParticipation?: boolean;
}

export function historyCsv(history: readonly RoundRecord[], options: HistoryCsvOptions = {}): string {
  const all = history.some((r) => r.staleness) ? [...COLUMNS, ...STALENESS_COLUMNS] : COLUMNS;
  const columns = options.withholdParticipation ? all.filter((c) => !c.participation) : all;
  const lines = [columns.map((c) => c.name).join(',')];
  for (const r of history) lines.push(columns.map((c) => csvField(c.value(r))).join(','));
  return `${lines.join('\r\n')}\r\n`;
}
