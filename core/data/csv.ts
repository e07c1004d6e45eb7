/**
 * A CSV reader for a participant's own tabular data (RFC 4180). It runs on
 * the participant's device, and on the coordinator for a task's test CSV.
 */

export type CsvDelimiter = ',' | ';' | '\t';

export interface CsvTable {
  /** Column names, trimmed. */
  readonly header: readonly string[];
  /** One array of fields per data row, each as long as the header. */
  readonly rows: readonly (readonly string[])[];
  /**
   * The 1-based file line each row starts on (a quoted field may span lines),
   * for error messages. When absent, rows are taken to sit on the lines right
   * after the header.
   */
  readonly lines?: readonly number[];
  /** The 1-based file line of the header (1 unless blank lines precede it). */
  readonly headerLine?: number;
  /** The delimiter the table was read with. */
  readonly delimiter?: CsvDelimiter;
}

/** The 1-based file line data row `row` (0-based) starts on. */
export function lineOfRow(table: CsvTable, row: number): number {
  return table.lines?.[row] ?? (table.headerLine ?? 1) + 1 + row;
}

/** A file that is not valid CSV; the message starts with the 1-based line, e.g. "line 17: ...". */
export class CsvError extends Error {
  readonly line: number;
  constructor(line: number, message: string) {
    super(`line ${line}: ${message}`);
    this.name = 'CsvError';
    this.line = line;
  }
}

const QUOTE = 0x22;
const LF = 0x0a;
const CR = 0x0d;
const DELIMITERS: readonly CsvDelimiter[] = [',', ';', '\t'];
const DELIMITER_NAMES: Readonly<Record<CsvDelimiter, string>> = { ',': 'comma', ';': 'semicolon', '\t': 'tab' };

/** Whitespace trimmed around unquoted fields and between a closing quote and the delimiter (not the delimiter itself). */
function isBlank(code: number, delimiter: number): boolean {
  return code !== delimiter && (code === 0x20 || code === 0x09);
}

/** The delimiter's name, for messages (a tab is invisible). */
function describeDelimiter(delimiter: CsvDelimiter): string {
  return DELIMITER_NAMES[delimiter];
}

/**
 * The delimiter the header line uses: the one of comma, semicolon and tab
 * that occurs most often outside quotes (comma on a tie or when none occurs:
 * a single-column file).
 */
export function detectDelimiter(text: string): CsvDelimiter {
  const counts = new Map<CsvDelimiter, number>(DELIMITERS.map((d) => [d, 0]));
  let inQuotes = false;
  let seenContent = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') inQuotes = !inQuotes;
    else if (!inQuotes && (c === '\n' || c === '\r')) {
      if (seenContent) break; // the header line ends; blank lines before it are skipped
    } else if (!inQuotes && counts.has(c as CsvDelimiter)) counts.set(c as CsvDelimiter, counts.get(c as CsvDelimiter)! + 1);
    if (c.trim() !== '') seenContent = true;
  }
  let best: CsvDelimiter = ',';
  for (const d of DELIMITERS) if (counts.get(d)! > counts.get(best)!) best = d;
  return best;
}

/** Strict decimal number syntax (sign, digits, optional fraction and exponent): what a CSV number may look like. */
const NUMBER_SYNTAX = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/**
 * Parses CSV text: a header line of unique column names, then one row per
 * line. Quoted fields may hold delimiters, line breaks and doubled quotes;
 * line breaks may be CRLF, LF or CR; a leading BOM and blank lines are
 * skipped; unquoted fields are trimmed. Throws CsvError naming the line.
 */
export function parseCsv(text: string, options: { readonly delimiter?: CsvDelimiter } = {}): CsvTable {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const delimiter = options.delimiter ?? detectDelimiter(text);
  const delimiterCode = delimiter.charCodeAt(0);
  const records: string[][] = [];
  const recordLines: number[] = [];
  const n = text.length;
  let line = 1;
  let i = 0;

  while (i < n) {
    const startLine = line;
    const fields: string[] = [];
    let blankRecord = true; // a line of nothing but spaces: skipped, not a row of one empty field
    for (;;) {
      // One field, starting at i.
      while (i < n && isBlank(text.charCodeAt(i), delimiterCode)) i++;
      let value: string;
      if (i < n && text.charCodeAt(i) === QUOTE) {
        blankRecord = false;
        const quoteLine = line;
        const start = ++i;
        let hasDoubled = false;
        for (;;) {
          const q = text.indexOf('"', i);
          if (q < 0) throw new CsvError(quoteLine, 'a quoted field starts here but its closing quote (") is missing');
          if (text.charCodeAt(q + 1) === QUOTE) {
            hasDoubled = true;
            i = q + 2;
            continue;
          }
          line += countLineBreaks(text, start, q);
          value = text.slice(start, q);
          i = q + 1;
          break;
        }
        if (hasDoubled) value = value.replaceAll('""', '"');
        while (i < n && isBlank(text.charCodeAt(i), delimiterCode)) i++;
        const after = text.charCodeAt(i);
        if (i < n && after !== delimiterCode && after !== LF && after !== CR) {
          throw new CsvError(
            line,
            `unexpected ${JSON.stringify(text[i])} after the closing quote of field ${fields.length + 1}; ` +
              'a quote inside a quoted field must be doubled ("")',
          );
        }
      } else {
        const start = i;
        while (i < n) {
          const c = text.charCodeAt(i);
          if (c === delimiterCode || c === LF || c === CR) break;
          i++;
        }
        value = text.slice(start, i).trim();
        if (value !== '') blankRecord = false;
      }
      fields.push(value);
      if (i < n && text.charCodeAt(i) === delimiterCode) {
        blankRecord = false;
        i++;
        continue;
      }
      break;
    }
    // At a line break or the end of the text.
    if (i < n) {
      if (text.charCodeAt(i) === CR && text.charCodeAt(i + 1) === LF) i++;
      i++;
      line++;
    }
    if (blankRecord) continue;
    records.push(fields);
    recordLines.push(startLine);
  }

  if (records.length === 0)
    throw new CsvError(1, 'the file is empty; expected a header line naming the columns, then one line per example');
  const header = records[0]!;
  const headerLine = recordLines[0]!;
  checkHeader(header, headerLine, delimiter);
  const rows = records.slice(1);
  const lines = recordLines.slice(1);
  for (let r = 0; r < rows.length; r++) {
    const count = rows[r]!.length;
    if (count !== header.length) {
      const hint =
        count > header.length
          ? `; a value containing a ${describeDelimiter(delimiter)} must be in double quotes`
          : '; every row needs a value (possibly empty) for each column';
      throw new CsvError(
        lines[r]!,
        `${count} field${count === 1 ? '' : 's'}, but the header (line ${headerLine}) has ${header.length} column${header.length === 1 ? '' : 's'}${hint}`,
      );
    }
  }
  return { header, rows, lines, headerLine, delimiter };
}

function countLineBreaks(text: string, from: number, to: number): number {
  let breaks = 0;
  for (let k = from; k < to; k++) {
    const c = text.charCodeAt(k);
    if (c === LF) breaks++;
    else if (c === CR && text.charCodeAt(k + 1) !== LF) breaks++;
  }
  return breaks;
}

function checkHeader(header: readonly string[], line: number, delimiter: CsvDelimiter): void {
  const seen = new Map<string, number>();
  header.forEach((name, index) => {
    if (name === '') {
      throw new CsvError(
        line,
        `column ${index + 1} of the header has no name; every column needs a name (the header is read as ${describeDelimiter(delimiter)}-separated)`,
      );
    }
    const earlier = seen.get(name);
    if (earlier !== undefined) {
      throw new CsvError(
        line,
        `the column name '${name}' appears twice (columns ${earlier + 1} and ${index + 1}); column names must be unique`,
      );
    }
    seen.set(name, index);
  });
  if (header.every((name) => NUMBER_SYNTAX.test(name))) {
    throw new CsvError(
      line,
      `the first line (${header.slice(0, 4).join(', ')}${header.length > 4 ? ', ...' : ''}) is all numbers, so it looks like data rather than column names; ` +
        'add a header line naming each column',
    );
  }
}

/** The number a CSV field holds, or undefined when it is not a plain decimal number (no hex, no empty-is-zero, no "Infinity"). */
export function parseNumber(field: string): number | undefined {
  if (!NUMBER_SYNTAX.test(field)) return undefined;
  const value = Number(field);
  return Number.isFinite(value) ? value : undefined;
}

/** Whether the text matches the strict number syntax (even if too large to be finite). */
export function looksNumeric(field: string): boolean {
  return NUMBER_SYNTAX.test(field);
}
