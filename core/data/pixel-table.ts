import { lineOfRow, looksNumeric, parseNumber, type CsvTable } from './csv.ts';
import { checkClassCount } from './dataset.ts';
import { inputSize, type ImageInput } from './schema.ts';
import {
  isMissingValue,
  ProblemList,
  roleOf,
  TabularSchemaError,
  type ColumnRole,
  type ColumnRoles,
  type PreparedTable,
  type SchemaProblem,
  type SkippedRow,
} from './tabular.ts';

/**
 * Images as a CSV, the way MNIST and Fashion-MNIST are often passed around:
 * a label column and one column per pixel value (0..255, row-major,
 * channels last), plus whatever else the file carries (identifiers), which
 * the person marks to drop. The values of dropped columns are never looked at here.
 */

/** Names of pixel columns in common exports: "pixel0", "pixel_12", "px3", "1x1" .. "28x28". */
const PIXEL_COLUMN = /^(?:(?:pixel|px)[\s_-]?\d+|\d+x\d+)$/i;

/** True for a column named like one pixel of an image ("pixel12", "px_3", "28x28"). */
export function isPixelColumnName(name: string): boolean {
  return PIXEL_COLUMN.test(name);
}
const LABEL_COLUMN = /^(?:label|labels|class|digit|target|y)$/i;

/**
 * Roles a person most likely wants: the column named like a label, the
 * pixel-named columns (else every column whose first value is a number) as
 * features, everything else dropped.
 */
export function suggestPixelRoles(table: CsvTable): ColumnRoles {
  const roles: Record<string, ColumnRole> = {};
  const label = table.header.find((name) => LABEL_COLUMN.test(name));
  const named = table.header.some((name) => PIXEL_COLUMN.test(name));
  const first = table.rows[0];
  table.header.forEach((name, column) => {
    if (name === label) roles[name] = 'label';
    else if (named) roles[name] = PIXEL_COLUMN.test(name) ? 'feature' : 'drop';
    else roles[name] = first !== undefined && looksNumeric(first[column]!) ? 'feature' : 'drop';
  });
  return roles;
}

/** Every reason the table, with these roles, cannot give the task's images (empty when it can). */
export function checkPixelTable(table: CsvTable, roles: ColumnRoles, input: ImageInput, classes: readonly string[]): SchemaProblem[] {
  return analyse(table, roles, input, classes).problems;
}

/** The images of the table as a byte dataset; throws TabularSchemaError when checkPixelTable finds problems. */
export function preparePixelTable(table: CsvTable, roles: ColumnRoles, input: ImageInput, classes: readonly string[]): PreparedTable {
  const { problems, dataset, skipped } = analyse(table, roles, input, classes);
  if (problems.length > 0) throw new TabularSchemaError(problems);
  return { dataset, statistics: [], skipped };
}

function analyse(table: CsvTable, roles: ColumnRoles, input: ImageInput, classes: readonly string[]) {
  checkClassCount(classes);
  const problems = new ProblemList();
  const size = inputSize(input);
  const [h, w, c] = input.shape;
  const labelColumns = table.header.flatMap((name, i) => (roleOf(roles, name) === 'label' ? [i] : []));
  const featureColumns = table.header.flatMap((name, i) => (roleOf(roles, name) === 'feature' ? [i] : []));
  if (labelColumns.length !== 1) {
    problems.add({
      message:
        labelColumns.length === 0
          ? 'Mark one column as the label (the class of each image).'
          : `Mark only one column as the label, not ${labelColumns.length} (${labelColumns.map((i) => table.header[i]).join(', ')}).`,
    });
  }
  if (featureColumns.length !== size) {
    problems.add({
      message: `The task's images are ${h}×${w}${c > 1 ? `×${c}` : ''} = ${size} pixel values, but ${featureColumns.length} columns are marked as features: mark exactly the ${size} pixel columns (row by row${c > 1 ? ', channels last' : ''}) and drop the others.`,
    });
  }
  const shapeFits = problems.items.length === 0;
  const values = new Uint8Array(shapeFits ? table.rows.length * size : 0);
  const labels = new Uint8Array(shapeFits ? table.rows.length : 0);
  const skipped: SkippedRow[] = [];
  let count = 0;
  if (shapeFits) {
    const labelColumn = labelColumns[0]!;
    const labelName = table.header[labelColumn]!;
    table.rows.forEach((row, r) => {
      const line = lineOfRow(table, r);
      const labelText = row[labelColumn]!;
      const classIndex = classes.indexOf(labelText);
      const missingPixel = featureColumns.find((column) => isMissingValue(row[column]!));
      if ((classIndex < 0 && isMissingValue(labelText)) || missingPixel !== undefined) {
        skipped.push({ line, reason: `${missingPixel === undefined ? labelName : table.header[missingPixel]} is missing` });
        return;
      }
      if (classIndex < 0) {
        problems.add({
          line,
          column: labelName,
          message: `Line ${line}, column ${labelName}: "${labelText}" is not one of the task's classes (${classes.join(', ')}).`,
        });
        return;
      }
      for (let k = 0; k < size; k++) {
        const text = row[featureColumns[k]!]!;
        const value = parseNumber(text);
        if (value === undefined || !Number.isInteger(value) || value < 0 || value > 255) {
          const name = table.header[featureColumns[k]!]!;
          const hint = value !== undefined && value > 0 && value < 1 ? ' (values in [0, 1]? multiply them by 255)' : '';
          problems.add({
            line,
            column: name,
            message: `Line ${line}, column ${name}: "${text}" is not a pixel value, an integer from 0 to 255${hint}.`,
          });
          return;
        }
        values[count * size + k] = value;
      }
      labels[count++] = classIndex;
    });
    if (count === 0 && problems.items.length === 0)
      problems.add({
        message:
          table.rows.length === 0 ? 'The file has a header but no rows.' : 'Every row has a missing value: there is nothing to train on.',
      });
  }
  return {
    problems: problems.result(),
    skipped,
    dataset: { count, features: size, numClasses: classes.length, values: values.slice(0, count * size), labels: labels.slice(0, count) },
  };
}
