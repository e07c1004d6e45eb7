import { isMissingValue, type ColumnRole, type ColumnRoles } from '../../../core/data/tabular.ts';
import { parseNumber, type CsvTable } from '../../../core/data/csv.ts';
import type { Dataset } from '../../../core/data/dataset.ts';
import type { ImageInput } from '../../../core/data/schema.ts';

/**
 * A CSV of images for an image task, as Kaggle's digit recognizer ships
 * them: a label column and one column per pixel (0 to 255, row by row,
 * channels interleaved), plus any columns the user drops. The pixels stay
 * bytes, exactly as image folders and IDX files give them: they are not
 * standardised like a tabular task's numbers.
 */

export class PixelCsvError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('; '));
    this.name = 'PixelCsvError';
  }
}

const LABEL_NAMES = new Set(['label', 'labels', 'class', 'target', 'digit', 'y', 'category']);
const MAX_PROBLEMS = 20;
/** Rows looked at to guess whether a column holds numbers. */
const SAMPLE_ROWS = 20;

/** The label column by name, numeric columns as pixels, everything else (identifiers, names) dropped. */
export function suggestPixelRoles(table: CsvTable): ColumnRoles {
  const label = table.header.find((name) => LABEL_NAMES.has(name.trim().toLowerCase()));
  return Object.fromEntries(
    table.header.map((name, column): [string, ColumnRole] => {
      if (name === label) return [name, 'label'];
      const sample = table.rows.slice(0, SAMPLE_ROWS).map((row) => row[column]!);
      return [name, sample.length > 0 && sample.every((field) => parseNumber(field) !== undefined) ? 'feature' : 'drop'];
    }),
  );
}

export interface PreparedPixels {
  readonly dataset: Dataset;
  readonly skipped: readonly { line: number; reason: string }[];
}

/** Throws PixelCsvError listing every reason the table cannot feed the task (capped, with a count of the rest). */
export function preparePixelTable(table: CsvTable, roles: ColumnRoles, input: ImageInput, classes: readonly string[]): PreparedPixels {
  const roleOf = (name: string): ColumnRole => (Object.hasOwn(roles, name) ? roles[name]! : 'drop');
  const [height, width, channels] = input.shape;
  const features = height * width * channels;
  const problems: string[] = [];
  const labelColumns = table.header.map((name, i) => [name, i] as const).filter(([name]) => roleOf(name) === 'label');
  const pixelColumns = table.header.map((_, i) => i).filter((i) => roleOf(table.header[i]!) === 'feature');
  if (labelColumns.length === 0) problems.push("no column is marked as the label: mark the column that holds each image's class");
  if (labelColumns.length > 1) problems.push(`${labelColumns.map(([n]) => `'${n}'`).join(', ')} are all marked as the label; mark only one`);
  if (pixelColumns.length !== features) {
    problems.push(
      `${pixelColumns.length} columns are marked as features, but the task's ${width} × ${height} ${channels === 1 ? 'grayscale' : 'RGB'} images need exactly ${features} ` +
        `pixel columns (one per ${channels === 1 ? 'pixel' : 'pixel and channel'}, row by row); mark the others to drop`,
    );
  }
  if (problems.length > 0) throw new PixelCsvError(problems);
  const labelColumn = labelColumns[0]![1];
  const classIndex = new Map(classes.map((c, i) => [c, i]));
  const values = new Uint8Array(table.rows.length * features);
  const labels = new Uint8Array(table.rows.length);
  const skipped: { line: number; reason: string }[] = [];
  let extra = 0;
  const problem = (text: string) => (problems.length < MAX_PROBLEMS ? problems.push(text) : extra++);
  let count = 0;
  table.rows.forEach((row, r) => {
    const line = table.lines?.[r] ?? (table.headerLine ?? 1) + 1 + r;
    const labelField = row[labelColumn]!;
    const missing = pixelColumns.filter((c) => isMissingValue(row[c]!));
    if (isMissingValue(labelField) || missing.length > 0) {
      const what = [...(isMissingValue(labelField) ? [`the label '${table.header[labelColumn]}'`] : []), ...(missing.length > 0 ? [`${missing.length} pixel value(s), first '${table.header[missing[0]!]}'`] : [])];
      skipped.push({ line, reason: `missing ${what.join(' and ')}` });
      return;
    }
    const label = classIndex.get(labelField);
    if (label === undefined) {
      problem(`line ${line}: the label '${labelField}' is not a class of the task (${classes.slice(0, 20).join(', ')}${classes.length > 20 ? ', ...' : ''})`);
      return;
    }
    for (let k = 0; k < features; k++) {
      const field = row[pixelColumns[k]!]!;
      const value = parseNumber(field);
      if (value === undefined || !Number.isInteger(value) || value < 0 || value > 255) {
        problem(`line ${line}: '${field.slice(0, 40)}' in column '${table.header[pixelColumns[k]!]}' is not a pixel value (a whole number from 0 to 255)`);
        return;
      }
      values[count * features + k] = value;
    }
    labels[count++] = label;
  });
  if (extra > 0) problems.push(`and ${extra} more problem${extra === 1 ? '' : 's'}`);
  if (problems.length > 0) throw new PixelCsvError(problems);
  if (count === 0) throw new PixelCsvError(['no row has a label and all its pixels']);
  return {
    dataset: { count, features, numClasses: classes.length, values: values.slice(0, count * features), labels: labels.slice(0, count) },
    skipped,
  };
}
