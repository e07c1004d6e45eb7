import type { RoundRecord } from '../../core/protocol/status.ts';

/** The round history as CSV (RFC 4180: CRLF line ends, fields with a comma, quote or line break quoted, quotes doubled). */

export const HISTORY_CSV_COLUMNS = [
  'round',
  'outcome',
  'reason',
  'accuracy',
  'loss',
  'selected',
  'received',
  'dropped',
  'rejected',
  'declined',
  'bytes_in',
  'bytes_out',
  'duration_ms',
  'epsilon',
  'delta',
] as const;

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

export function historyCsv(history: readonly RoundRecord[]): string {
  const lines = [HISTORY_CSV_COLUMNS.join(',')];
  for (const r of history) {
    lines.push(
      [
        r.round,
        r.outcome,
        r.reason,
        r.metrics?.accuracy,
        r.metrics?.loss,
        r.selected,
        r.received,
        r.dropped,
        r.rejected,
        r.declined,
        r.bytesIn,
        r.bytesOut,
        r.durationMs,
        r.privacy?.epsilon,
        r.privacy?.delta,
      ]
        .map(csvField)
        .join(','),
    );
  }
  return lines.join('\r\n') + '\r\n';
}
