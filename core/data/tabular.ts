import { lineOfRow, looksNumeric, parseNumber, type CsvTable } from './csv.ts';
import { checkClassCount, type Dataset } from './dataset.ts';
import { inputSize, type FeatureSpec, type TabularInput } from './schema.ts';

/**
 * Turns a participant's CSV table into the task's model input, on the
 * participant's device. The person marks each column as a feature, the label
 * or dropped; the values of dropped columns (names, identifiers) are never
 * looked at here, so nothing in them can reach the model or the network.
 */

export type ColumnRole = 'feature' | 'label' | 'drop';
/** Role per column name; a column with no entry is dropped. */
export type ColumnRoles = Readonly<Record<string, ColumnRole>>;

export interface SchemaProblem {
  readonly column?: string;
  /** 1-based file line (the header is line 1). */
  readonly line?: number;
  /** A complete sentence for a person, naming the line and column it is about. */
  readonly message: string;
}

export class TabularSchemaError extends Error {
  readonly problems: readonly SchemaProblem[];
  constructor(problems: readonly SchemaProblem[]) {
    super(`the file does not fit the task:\n${problems.map((p) => `- ${p.message}`).join('\n')}`);
    this.name = 'TabularSchemaError';
    this.problems = problems;
  }
}

export interface FeatureStatistics {
  readonly name: string;
  readonly mean: number;
  /** Population standard deviation; 0 for a constant column, whose values are then divided by 1. */
  readonly std: number;
}

export interface SkippedRow {
  readonly line: number;
  readonly reason: string;
}

/** The note a reader of `file` gets for rows skipped for missing values (the first five line numbers); none when none were. */
export function skippedRowsNotes(file: string, skipped: readonly SkippedRow[]): string[] {
  if (skipped.length === 0) return [];
  const lines = skipped
    .slice(0, 5)
    .map((s) => s.line)
    .join(', ');
  return [`${file}: ${skipped.length} rows skipped for missing values (lines ${lines}${skipped.length > 5 ? ', ...' : ''})`];
}

export interface PreparedTable {
  /** Float32Array values in the schema's feature order; numClasses = classes.length; label = index in classes. */
  readonly dataset: Dataset;
  /** Of the numeric features, in schema order, computed from this table's kept rows only. */
  readonly statistics: readonly FeatureStatistics[];
  /** Rows left out because of missing values. */
  readonly skipped: readonly SkippedRow[];
}

/** The most problems listed; one more entry says how many were left out. */
export const MAX_PROBLEMS = 20;

/** Field values that mean "no value" (compared case-insensitively), unless the task names them as a category or class. */
const MISSING_MARKERS = new Set(['', 'na', 'n/a', '?', 'null', '.', 'nan']);

export function isMissingValue(field: string): boolean {
  return MISSING_MARKERS.has(field.toLowerCase());
}

/** The role marked for a column; 'drop' when it has none. */
export function roleOf(roles: ColumnRoles, column: string): ColumnRole {
  // Own properties only: a column named "constructor" must not find Object.prototype's.
  return Object.hasOwn(roles, column) ? roles[column]! : 'drop';
}

/** Roles a task's schema implies: its features -> 'feature', its label column -> 'label', every other column -> 'drop'. */
export function suggestRoles(table: CsvTable, schema: TabularInput): ColumnRoles {
  const features = new Set(schema.features.map((f) => f.name));
  // fromEntries defines own properties, so a column named "__proto__" stays a plain key.
  return Object.fromEntries(
    table.header.map((name): [string, ColumnRole] => [
      name,
      name === schema.labelColumn ? 'label' : features.has(name) ? 'feature' : 'drop',
    ]),
  );
}

/**
 * Throws when a task's own schema or classes are unusable (the task's fault,
 * not the participant's): the coordinator checks its task config with it.
 */
export function checkTaskSchema(schema: TabularInput, classes: readonly string[]): void {
  if (schema.features.length === 0) throw new Error('the tabular task has no features');
  checkClassCount(classes);
  const duplicateClass = classes.find((c, i) => classes.indexOf(c) !== i);
  if (duplicateClass !== undefined) throw new Error(`the task's class '${duplicateClass}' is listed twice`);
  const names = new Set<string>();
  for (const f of schema.features) {
    if (f.name === '') throw new Error('a feature of the task has an empty name');
    if (names.has(f.name)) throw new Error(`the task's feature '${f.name}' is listed twice`);
    if (f.name === schema.labelColumn) throw new Error(`'${f.name}' is both a feature and the label column of the task`);
    names.add(f.name);
    if (f.type === 'categorical') {
      if (f.categories.length === 0) throw new Error(`the task's categorical feature '${f.name}' has no categories`);
      const duplicate = f.categories.find((c, i) => f.categories.indexOf(c) !== i);
      if (duplicate !== undefined) throw new Error(`the task's feature '${f.name}' lists the category '${duplicate}' twice`);
    }
  }
  if (schema.labelColumn === '') throw new Error('the task has no label column name');
}

/**
 * Every reason the table, with these roles, cannot feed the task's model, explained for a person (empty when it can).
 * Rows with a missing value are not problems (prepareTable skips them) unless every row has one; other values
 * are checked in every row. Throws a plain Error when the task's own schema is unusable (see checkTaskSchema).
 */
export function checkTable(table: CsvTable, roles: ColumnRoles, schema: TabularInput, classes: readonly string[]): SchemaProblem[] {
  return analyse(table, roles, schema, classes).problems;
}

/** Throws TabularSchemaError when checkTable finds problems. */
export function prepareTable(table: CsvTable, roles: ColumnRoles, schema: TabularInput, classes: readonly string[]): PreparedTable {
  const analysis = analyse(table, roles, schema, classes);
  if (analysis.problems.length > 0) throw new TabularSchemaError(analysis.problems);
  const { kept, numbers, categories, labels } = analysis;
  const count = kept.length;
  const width = inputSize(schema);
  const values = new Float32Array(count * width);
  const statistics: FeatureStatistics[] = [];
  let offset = 0; // of the feature's first input within an example
  schema.features.forEach((feature, f) => {
    if (feature.type === 'numeric') {
      const column = numbers[f]!;
      const { mean, std } = meanAndStd(column, kept);
      statistics.push({ name: feature.name, mean, std });
      const scale = std > 0 ? std : 1;
      kept.forEach((row, k) => {
        values[k * width + offset] = (column[row]! - mean) / scale;
      });
      offset += 1;
    } else {
      const column = categories[f]!;
      kept.forEach((row, k) => {
        values[k * width + offset + column[row]!] = 1;
      });
      offset += feature.categories.length;
    }
  });
  const labelBytes = Uint8Array.from(kept, (row) => labels[row]!);
  return {
    dataset: { count, features: width, numClasses: classes.length, values, labels: labelBytes },
    statistics,
    skipped: analysis.skipped,
  };
}

/** Mean and population std of the kept rows, in two passes (a one-pass sum of squares loses precision for large values). */
function meanAndStd(column: Float64Array, kept: readonly number[]): { mean: number; std: number } {
  let sum = 0;
  for (const row of kept) sum += column[row]!;
  const mean = sum / kept.length;
  let squares = 0;
  for (const row of kept) squares += (column[row]! - mean) ** 2;
  return { mean, std: Math.sqrt(squares / kept.length) };
}

interface Analysis {
  readonly problems: SchemaProblem[];
  /** Indices of the rows with no missing value. */
  readonly kept: number[];
  readonly skipped: SkippedRow[];
  /** Per schema feature: parsed numbers per row (numeric features), else undefined. */
  readonly numbers: (Float64Array | undefined)[];
  /** Per schema feature: category index per row (categorical features), else undefined. */
  readonly categories: (Int32Array | undefined)[];
  /** Class index per row. */
  readonly labels: Int32Array;
}

/** Collects problems, capped at MAX_PROBLEMS plus one entry counting the rest. */
export class ProblemList {
  readonly items: SchemaProblem[] = [];
  private extra = 0;
  add(problem: SchemaProblem): void {
    if (this.items.length < MAX_PROBLEMS) this.items.push(problem);
    else this.extra++;
  }
  result(): SchemaProblem[] {
    if (this.extra === 0) return this.items;
    return [...this.items, { message: `... and ${this.extra} more problem${this.extra === 1 ? '' : 's'}` }];
  }
}

function analyse(table: CsvTable, roles: ColumnRoles, schema: TabularInput, classes: readonly string[]): Analysis {
  checkTaskSchema(schema, classes);
  const problems = new ProblemList();
  const { header, rows } = table;
  const headerLine = table.headerLine ?? 1;
  const columnIndex = new Map(header.map((name, i) => [name, i]));
  const featureNames = new Set(schema.features.map((f) => f.name));
  const label = schema.labelColumn;

  // Which column each schema feature and the label are read from (undefined: cannot be read).
  const featureColumns = schema.features.map((feature): number | undefined => {
    const index = columnIndex.get(feature.name);
    const needs = `the task needs feature '${feature.name}' (${describeFeature(feature)})`;
    if (index === undefined) {
      problems.add({ column: feature.name, message: `${needs} but the file has no such column${columnHint(feature.name, header)}` });
      return undefined;
    }
    const role = roleOf(roles, feature.name);
    if (role === 'feature') return index;
    problems.add({
      column: feature.name,
      message:
        role === 'drop'
          ? `${needs} but the column is marked to drop; mark it as a feature`
          : `${needs} but the column is marked as the label; the label is '${label}'`,
    });
    return undefined;
  });

  let labelIndex: number | undefined;
  const labelPosition = columnIndex.get(label);
  if (labelPosition === undefined) {
    problems.add({
      column: label,
      message: `the task's label column '${label}' (classes: ${listValues(classes)}) is not in the file${columnHint(label, header)}`,
    });
  } else if (roleOf(roles, label) !== 'label') {
    const role = roleOf(roles, label);
    problems.add({
      column: label,
      message: `the task's label column '${label}' is marked ${role === 'drop' ? 'to drop' : 'as a feature'}; mark it as the label`,
    });
  } else {
    labelIndex = labelPosition;
  }
  for (const name of header) {
    const role = roleOf(roles, name);
    if (role === 'label' && name !== label) {
      problems.add({
        column: name,
        message: `column '${name}' is marked as the label, but the task's label column is '${label}'; only that column can be the label`,
      });
    } else if (role === 'feature' && !featureNames.has(name) && name !== label) {
      problems.add({
        column: name,
        message: `column '${name}' is marked as a feature, but the task has no feature of that name (its features: ${listValues(schema.features.map((f) => f.name))}); mark it to drop`,
      });
    }
  }

  if (rows.length === 0) problems.add({ line: headerLine, message: 'the file has a header but no data rows' });

  const numbers = schema.features.map((f, i) =>
    f.type === 'numeric' && featureColumns[i] !== undefined ? new Float64Array(rows.length) : undefined,
  );
  const categories = schema.features.map((f, i) =>
    f.type === 'categorical' && featureColumns[i] !== undefined ? new Int32Array(rows.length) : undefined,
  );
  const labels = new Int32Array(rows.length);
  const classIndex = new Map(classes.map((c, i) => [c, i]));
  const categoryIndex = schema.features.map((f) => (f.type === 'categorical' ? new Map(f.categories.map((c, i) => [c, i])) : undefined));
  const kept: number[] = [];
  const skipped: SkippedRow[] = [];

  rows.forEach((row, r) => {
    const line = lineOfRow(table, r);
    if (row.length !== header.length) {
      problems.add({ line, message: `line ${line}: ${row.length} fields, but the header has ${header.length} columns` });
      return;
    }
    const missing: string[] = [];
    let bad = false;
    schema.features.forEach((feature, f) => {
      const index = featureColumns[f];
      if (index === undefined) return;
      const field = row[index]!;
      if (feature.type === 'categorical') {
        const category = categoryIndex[f]!.get(field);
        if (category !== undefined) categories[f]![r] = category;
        else if (isMissingValue(field)) missing.push(describeMissing(feature.name, field));
        else {
          bad = true;
          problems.add({
            line,
            column: feature.name,
            message: `line ${line}: ${quote(field)} in column '${feature.name}' is not one of the task's categories (${listValues(feature.categories)})${valueHint(field, feature.categories)}`,
          });
        }
      } else {
        const value = parseNumber(field);
        if (value !== undefined) numbers[f]![r] = value;
        else if (isMissingValue(field)) missing.push(describeMissing(feature.name, field));
        else {
          bad = true;
          problems.add({
            line,
            column: feature.name,
            message: `line ${line}: ${quote(field)} in column '${feature.name}' is not a number${numberHint(field)}`,
          });
        }
      }
    });
    if (labelIndex !== undefined) {
      const field = row[labelIndex]!;
      const index = classIndex.get(field);
      if (index !== undefined) labels[r] = index;
      else if (isMissingValue(field)) missing.push(describeMissing(label, field));
      else {
        bad = true;
        problems.add({
          line,
          column: label,
          message: `line ${line}: ${quote(field)} in the label column '${label}' is not one of the task's classes (${listValues(classes)})${valueHint(field, classes)}`,
        });
      }
    }
    if (missing.length > 0) skipped.push({ line, reason: `missing value${missing.length === 1 ? '' : 's'} in ${missing.join(', ')}` });
    else if (!bad) kept.push(r);
  });

  if (rows.length > 0 && skipped.length === rows.length) {
    const first = skipped[0]!;
    problems.add({
      message: `every row has a missing value (for example line ${first.line}: ${first.reason}), so no example is left; fill in the missing values or drop the columns the task does not need`,
    });
  }
  return { problems: problems.result(), kept, skipped, numbers, categories, labels };
}

function describeFeature(feature: FeatureSpec): string {
  return feature.type === 'numeric' ? 'numeric' : `categorical: ${listValues(feature.categories)}`;
}

function describeMissing(column: string, field: string): string {
  return `column '${column}' (${field === '' ? 'empty' : field})`;
}

/** Lists allowed values, cut short when there are many. */
function listValues(values: readonly string[], max = 20): string {
  if (values.length <= max) return values.join(', ');
  return `${values.slice(0, max).join(', ')}, ... (${values.length} in all)`;
}

function quote(field: string): string {
  return `'${field.length > 40 ? `${field.slice(0, 40)}...` : field}'`;
}

/** Points out a value that differs from an allowed one only in case or surrounding spaces. */
function valueHint(field: string, allowed: readonly string[]): string {
  const near = nearMiss(field, allowed);
  return near === undefined ? '' : `; did you mean '${near}'? Values must match exactly, including upper and lower case`;
}

function columnHint(name: string, header: readonly string[]): string {
  const near = nearMiss(name, header);
  if (near !== undefined) return ` (the file has '${near}': column names must match exactly, including upper and lower case)`;
  return ` (the file's columns: ${listValues(header)})`;
}

function nearMiss(value: string, candidates: readonly string[]): string | undefined {
  const key = value.trim().toLowerCase();
  return candidates.find((c) => c !== value && c.trim().toLowerCase() === key);
}

function numberHint(field: string): string {
  if (/^[+-]?\d+,\d+$/.test(field)) return '; write decimals with a dot (3.5, not 3,5)';
  if (looksNumeric(field)) return '; it is too large';
  return '';
}
