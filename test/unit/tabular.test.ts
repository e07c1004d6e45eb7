import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCsv, type CsvTable } from '../../core/data/csv.ts';
import { decodeDataset, encodeDataset } from '../../core/data/dataset.ts';
import type { TabularInput } from '../../core/data/schema.ts';
import {
  checkTable,
  checkTaskSchema,
  MAX_PROBLEMS,
  prepareTable,
  suggestRoles,
  TabularSchemaError,
  type ColumnRoles,
} from '../../core/data/tabular.ts';

// Twelve rows of the Palmer penguins data (vega-datasets 3.2.1, data/penguins.json; its nulls written NA),
// with the source row number as an identifier column.
const PENGUINS_CSV = `row,Species,Island,Beak Length (mm),Beak Depth (mm),Flipper Length (mm),Body Mass (g),Sex
1,Adelie,Torgersen,39.1,18.7,181,3750,MALE
2,Adelie,Torgersen,39.5,17.4,186,3800,FEMALE
3,Adelie,Torgersen,40.3,18,195,3250,FEMALE
4,Adelie,Torgersen,NA,NA,NA,NA,NA
151,Adelie,Dream,36,17.1,187,3700,FEMALE
152,Adelie,Dream,41.5,18.5,201,4000,MALE
153,Chinstrap,Dream,46.5,17.9,192,3500,FEMALE
221,Gentoo,Biscoe,46.1,13.2,211,4500,FEMALE
222,Gentoo,Biscoe,50,16.3,230,5700,MALE
223,Gentoo,Biscoe,48.7,14.1,210,4450,FEMALE
9,Adelie,Torgersen,34.1,18.1,193,3475,NA
10,Adelie,Torgersen,42,20.2,190,4250,NA
`;

const CLASSES = ['Adelie', 'Chinstrap', 'Gentoo'];

// Input order deliberately differs from the file's column order.
const SCHEMA: TabularInput = {
  kind: 'tabular',
  features: [
    { name: 'Body Mass (g)', type: 'numeric' },
    { name: 'Beak Length (mm)', type: 'numeric' },
    { name: 'Beak Depth (mm)', type: 'numeric' },
    { name: 'Flipper Length (mm)', type: 'numeric' },
    { name: 'Island', type: 'categorical', categories: ['Biscoe', 'Dream', 'Torgersen'] },
  ],
  labelColumn: 'Species',
};
const WIDTH = 4 + 3;

function penguins(): CsvTable {
  return parseCsv(PENGUINS_CSV);
}

/** The messages of checkTable's problems. */
function problemsOf(table: CsvTable, roles: ColumnRoles, schema: TabularInput = SCHEMA, classes: readonly string[] = CLASSES): string[] {
  return checkTable(table, roles, schema, classes).map((p) => p.message);
}

/** A table built in code, with the lines parseCsv would give. */
function table(header: string[], rows: string[][]): CsvTable {
  return { header, rows, lines: rows.map((_, i) => i + 2), headerLine: 1 };
}

const SMALL_SCHEMA: TabularInput = {
  kind: 'tabular',
  features: [
    { name: 'x', type: 'numeric' },
    { name: 'colour', type: 'categorical', categories: ['red', 'green', 'NA'] },
  ],
  labelColumn: 'y',
};
const SMALL_ROLES: ColumnRoles = { id: 'drop', x: 'feature', colour: 'feature', y: 'label' };

describe('suggestRoles', () => {
  it("marks the schema's features and label, and drops every other column", () => {
    assert.deepEqual(suggestRoles(penguins(), SCHEMA), {
      row: 'drop',
      Species: 'label',
      Island: 'feature',
      'Beak Length (mm)': 'feature',
      'Beak Depth (mm)': 'feature',
      'Flipper Length (mm)': 'feature',
      'Body Mass (g)': 'feature',
      Sex: 'drop',
    });
  });

  it('keeps columns named like Object.prototype members as plain keys', () => {
    const roles = suggestRoles(table(['__proto__', 'constructor', 'x', 'colour', 'y'], []), SMALL_SCHEMA);
    assert.deepEqual(Object.keys(roles), ['__proto__', 'constructor', 'x', 'colour', 'y']);
    assert.equal(Object.getOwnPropertyDescriptor(roles, '__proto__')?.value, 'drop');
    assert.equal(Object.getPrototypeOf(roles), Object.prototype);
  });
});

describe('prepareTable on the penguins', () => {
  it('prepares the real data: schema order, one-hot islands, class indices, the NA row skipped', () => {
    const data = penguins();
    const roles = suggestRoles(data, SCHEMA);
    assert.deepEqual(checkTable(data, roles, SCHEMA, CLASSES), []);
    const prepared = prepareTable(data, roles, SCHEMA, CLASSES);
    const { dataset } = prepared;
    assert.equal(dataset.count, 11);
    assert.equal(dataset.features, WIDTH);
    assert.equal(dataset.numClasses, 3);
    assert.ok(dataset.values instanceof Float32Array);
    // Sex is dropped, so its NAs (lines 12 and 13) skip nothing; line 5 has NA in four features.
    assert.deepEqual(prepared.skipped, [
      {
        line: 5,
        reason:
          "missing values in column 'Body Mass (g)' (NA), column 'Beak Length (mm)' (NA), column 'Beak Depth (mm)' (NA), column 'Flipper Length (mm)' (NA)",
      },
    ]);
    assert.deepEqual(Array.from(dataset.labels), [0, 0, 0, 0, 0, 1, 2, 2, 2, 0, 0]);
    const island = (k: number): number[] => Array.from(dataset.values.subarray(k * WIDTH + 4, k * WIDTH + 7));
    assert.deepEqual(island(0), [0, 0, 1], 'Torgersen is the third category');
    assert.deepEqual(island(3), [0, 1, 0], 'Dream');
    assert.deepEqual(island(6), [1, 0, 0], 'Biscoe');
    // A round trip through the dataset file keeps every value.
    assert.deepEqual(decodeDataset(encodeDataset(dataset)), dataset);
  });

  it('standardises with this table’s mean and population std (checked by hand)', () => {
    const prepared = prepareTable(penguins(), suggestRoles(penguins(), SCHEMA), SCHEMA, CLASSES);
    // Beak length over the 11 kept rows: sum 463.8, mean 463.8 / 11 = 42.163636...;
    // squared deviations sum to 261.8654..., / 11 = 23.80667..., sqrt = 4.879134...
    // Body mass: sum 44375, mean 4034.0909...; population std 651.76968...
    assert.deepEqual(
      prepared.statistics.map((s) => s.name),
      ['Body Mass (g)', 'Beak Length (mm)', 'Beak Depth (mm)', 'Flipper Length (mm)'],
    );
    const [mass, beak] = prepared.statistics;
    assert.ok(Math.abs(beak!.mean - 42.163636363636364) < 1e-12, String(beak!.mean));
    assert.ok(Math.abs(beak!.std - 4.879134186843311) < 1e-12, String(beak!.std));
    assert.ok(Math.abs(mass!.mean - 4034.090909090909) < 1e-9, String(mass!.mean));
    assert.ok(Math.abs(mass!.std - 651.7696824862786) < 1e-9, String(mass!.std));
    const values = prepared.dataset.values;
    // First kept row: beak length 39.1, body mass 3750, at inputs 1 and 0.
    assert.ok(Math.abs(values[1]! - (39.1 - 42.163636363636364) / 4.879134186843311) < 1e-6);
    assert.ok(Math.abs(values[0]! - (3750 - 4034.090909090909) / 651.7696824862786) < 1e-6);
    // Every standardised column has mean 0 and std 1 over the kept rows.
    for (let f = 0; f < 4; f++) {
      const column = Array.from({ length: 11 }, (_, k) => values[k * WIDTH + f]!);
      const mean = column.reduce((a, b) => a + b, 0) / 11;
      const std = Math.sqrt(column.reduce((a, b) => a + (b - mean) ** 2, 0) / 11);
      assert.ok(Math.abs(mean) < 1e-6 && Math.abs(std - 1) < 1e-6, `feature ${f}: mean ${mean}, std ${std}`);
    }
  });

  it('never lets a dropped column influence the prepared data: rewriting all its values leaves it byte-identical', () => {
    const original = penguins();
    const roles = suggestRoles(original, SCHEMA);
    const before = prepareTable(original, roles, SCHEMA, CLASSES);
    const rowColumn = original.header.indexOf('row');
    const sexColumn = original.header.indexOf('Sex');
    // Garbage, missing markers, numbers, huge text: none of it may matter.
    const junk = ['', 'NA', '?', 'not a number', '1e999', 'Gentoo', '-5', 'x'.repeat(10_000)];
    const rewritten: CsvTable = {
      ...original,
      rows: original.rows.map((row, r) =>
        row.map((field, c) => (c === rowColumn || c === sexColumn ? junk[(r + c) % junk.length]! : field)),
      ),
    };
    assert.notDeepEqual(rewritten.rows, original.rows);
    assert.deepEqual(checkTable(rewritten, roles, SCHEMA, CLASSES), []);
    const after = prepareTable(rewritten, roles, SCHEMA, CLASSES);
    assert.deepEqual(encodeDataset(after.dataset), encodeDataset(before.dataset));
    assert.deepEqual(after.statistics, before.statistics);
    assert.deepEqual(after.skipped, before.skipped);
  });

  it('takes a semicolon file with quoted names and CRLF the same way', () => {
    const semicolons = PENGUINS_CSV.split('\n')
      .map((line) =>
        line
          .split(',')
          .map((field, i) => (i === 1 ? `"${field}"` : field))
          .join(';'),
      )
      .join('\r\n');
    const a = prepareTable(penguins(), suggestRoles(penguins(), SCHEMA), SCHEMA, CLASSES);
    const data = parseCsv(semicolons);
    const b = prepareTable(data, suggestRoles(data, SCHEMA), SCHEMA, CLASSES);
    assert.deepEqual(encodeDataset(b.dataset), encodeDataset(a.dataset));
  });
});

describe('prepareTable details', () => {
  it('divides a constant column by 1 and reports std 0', () => {
    const prepared = prepareTable(
      table(
        ['x', 'colour', 'y'],
        [
          ['7', 'red', 'a'],
          ['7', 'green', 'b'],
        ],
      ),
      { x: 'feature', colour: 'feature', y: 'label' },
      SMALL_SCHEMA,
      ['a', 'b'],
    );
    assert.deepEqual(prepared.statistics, [{ name: 'x', mean: 7, std: 0 }]);
    assert.deepEqual(Array.from(prepared.dataset.values), [0, 1, 0, 0, 0, 0, 1, 0]);
  });

  it('skips rows with any missing marker, and reads "NA" as a category where the task lists it', () => {
    const markers = ['', 'NA', 'na', 'N/A', '?', 'null', 'NULL', '.', 'NaN'];
    const rows = markers.map((m, i) => [String(i), m, 'red', 'a']);
    rows.push(['100', '1', 'NA', 'b'], ['101', '3', 'green', '?']);
    const prepared = prepareTable(table(['id', 'x', 'colour', 'y'], rows), SMALL_ROLES, SMALL_SCHEMA, ['a', 'b']);
    assert.equal(prepared.dataset.count, 1);
    assert.deepEqual(Array.from(prepared.dataset.values), [0, 0, 0, 1], 'NA is the third category');
    assert.deepEqual(
      prepared.skipped.map((s) => s.line),
      [...markers.map((_, i) => i + 2), 12],
    );
    assert.equal(prepared.skipped[0]!.reason, "missing value in column 'x' (empty)");
    assert.equal(prepared.skipped[1]!.reason, "missing value in column 'x' (NA)");
    assert.equal(prepared.skipped.at(-1)!.reason, "missing value in column 'y' (?)");
  });

  it('treats a column with no role as dropped', () => {
    const prepared = prepareTable(
      table(['id', 'x', 'colour', 'y'], [['junk', '1', 'red', 'a']]),
      { x: 'feature', colour: 'feature', y: 'label' },
      SMALL_SCHEMA,
      ['a'],
    );
    assert.equal(prepared.dataset.count, 1);
  });

  it('throws TabularSchemaError carrying the problems', () => {
    const data = table(['x', 'colour', 'y'], [['abc', 'red', 'a']]);
    assert.throws(
      () => prepareTable(data, { x: 'feature', colour: 'feature', y: 'label' }, SMALL_SCHEMA, ['a']),
      (error: unknown) => {
        assert.ok(error instanceof TabularSchemaError);
        assert.deepEqual(error.problems, [{ line: 2, column: 'x', message: "line 2: 'abc' in column 'x' is not a number" }]);
        assert.match(error.message, /does not fit the task:\n- line 2: 'abc' in column 'x' is not a number/);
        return true;
      },
    );
  });
});

describe('checkTable problems', () => {
  it('a feature the file lacks, with a case-insensitive near miss or the file’s columns', () => {
    const data = penguins();
    const renamed: CsvTable = { ...data, header: data.header.map((h) => (h === 'Island' ? 'island' : h)) };
    const roles = suggestRoles(renamed, SCHEMA);
    assert.deepEqual(problemsOf(renamed, roles), [
      "the task needs feature 'Island' (categorical: Biscoe, Dream, Torgersen) but the file has no such column (the file has 'island': column names must match exactly, including upper and lower case)",
    ]);
    const without: CsvTable = { ...data, header: data.header.map((h) => (h === 'Island' ? 'Place' : h)) };
    assert.match(
      problemsOf(without, suggestRoles(without, SCHEMA))[0]!,
      /has no such column \(the file's columns: row, Species, Place, Beak Length/,
    );
  });

  it('a feature marked to drop or as the label', () => {
    const data = penguins();
    const dropped = { ...suggestRoles(data, SCHEMA), Island: 'drop' } as const;
    assert.deepEqual(checkTable(data, dropped, SCHEMA, CLASSES), [
      {
        column: 'Island',
        message:
          "the task needs feature 'Island' (categorical: Biscoe, Dream, Torgersen) but the column is marked to drop; mark it as a feature",
      },
    ]);
    const asLabel = { ...suggestRoles(data, SCHEMA), 'Body Mass (g)': 'label' } as const;
    assert.deepEqual(problemsOf(data, asLabel), [
      "the task needs feature 'Body Mass (g)' (numeric) but the column is marked as the label; the label is 'Species'",
      "column 'Body Mass (g)' is marked as the label, but the task's label column is 'Species'; only that column can be the label",
    ]);
  });

  it('a column marked as a feature that the task does not know', () => {
    const data = penguins();
    assert.deepEqual(problemsOf(data, { ...suggestRoles(data, SCHEMA), Sex: 'feature' }), [
      "column 'Sex' is marked as a feature, but the task has no feature of that name (its features: Body Mass (g), Beak Length (mm), Beak Depth (mm), Flipper Length (mm), Island); mark it to drop",
    ]);
  });

  it('the label column missing, not marked, or another column marked instead', () => {
    const data = penguins();
    const noLabel: CsvTable = { ...data, header: data.header.map((h) => (h === 'Species' ? 'species' : h)) };
    assert.deepEqual(problemsOf(noLabel, suggestRoles(noLabel, SCHEMA)), [
      "the task's label column 'Species' (classes: Adelie, Chinstrap, Gentoo) is not in the file (the file has 'species': column names must match exactly, including upper and lower case)",
    ]);
    assert.deepEqual(problemsOf(data, { ...suggestRoles(data, SCHEMA), Species: 'drop' }), [
      "the task's label column 'Species' is marked to drop; mark it as the label",
    ]);
    assert.deepEqual(problemsOf(data, { ...suggestRoles(data, SCHEMA), Species: 'feature' }), [
      "the task's label column 'Species' is marked as a feature; mark it as the label",
    ]);
    assert.deepEqual(problemsOf(data, { ...suggestRoles(data, SCHEMA), Sex: 'label' }), [
      "column 'Sex' is marked as the label, but the task's label column is 'Species'; only that column can be the label",
    ]);
  });

  it('values that are not numbers, with hints for decimal commas and overflow', () => {
    const data = table(
      ['id', 'x', 'colour', 'y'],
      [
        ['1', 'abc', 'red', 'a'],
        ['2', '0x10', 'red', 'a'],
        ['3', '3,5', 'red', 'a'],
        ['4', '1e999', 'red', 'a'],
        ['5', 'Infinity', 'red', 'a'],
        ['6', '2', 'red', 'a'],
      ],
    );
    assert.deepEqual(checkTable(data, SMALL_ROLES, SMALL_SCHEMA, ['a']), [
      { line: 2, column: 'x', message: "line 2: 'abc' in column 'x' is not a number" },
      { line: 3, column: 'x', message: "line 3: '0x10' in column 'x' is not a number" },
      { line: 4, column: 'x', message: "line 4: '3,5' in column 'x' is not a number; write decimals with a dot (3.5, not 3,5)" },
      { line: 5, column: 'x', message: "line 5: '1e999' in column 'x' is not a number; it is too large" },
      { line: 6, column: 'x', message: "line 6: 'Infinity' in column 'x' is not a number" },
    ]);
  });

  it('categories and classes outside the task’s, with case-insensitive near misses', () => {
    const data = table(
      ['id', 'x', 'colour', 'y'],
      [
        ['1', '1', 'Red', 'a'],
        ['2', '1', 'blue', 'a'],
        ['3', '1', 'red', 'A '],
        ['4', '1', 'red', 'c'],
      ],
    );
    assert.deepEqual(problemsOf(data, SMALL_ROLES, SMALL_SCHEMA, ['a', 'b']), [
      "line 2: 'Red' in column 'colour' is not one of the task's categories (red, green, NA); did you mean 'red'? Values must match exactly, including upper and lower case",
      "line 3: 'blue' in column 'colour' is not one of the task's categories (red, green, NA)",
      "line 4: 'A ' in the label column 'y' is not one of the task's classes (a, b); did you mean 'a'? Values must match exactly, including upper and lower case",
      "line 5: 'c' in the label column 'y' is not one of the task's classes (a, b)",
    ]);
  });

  it('names the file line of a row after a multi-line quoted field', () => {
    const data = parseCsv('id,x,colour,y\n"note\nover two lines",1,red,a\n2,oops,red,a\n');
    assert.deepEqual(checkTable(data, SMALL_ROLES, SMALL_SCHEMA, ['a']), [
      { line: 4, column: 'x', message: "line 4: 'oops' in column 'x' is not a number" },
    ]);
  });

  it('a file with no data rows, and one where every row is skipped', () => {
    assert.deepEqual(checkTable(parseCsv('id,x,colour,y\n'), SMALL_ROLES, SMALL_SCHEMA, ['a']), [
      { line: 1, message: 'the file has a header but no data rows' },
    ]);
    const allMissing = table(
      ['id', 'x', 'colour', 'y'],
      [
        ['1', 'NA', 'red', 'a'],
        ['2', '1', 'red', ''],
      ],
    );
    assert.deepEqual(problemsOf(allMissing, SMALL_ROLES, SMALL_SCHEMA, ['a']), [
      "every row has a missing value (for example line 2: missing value in column 'x' (NA)), so no example is left; fill in the missing values or drop the columns the task does not need",
    ]);
  });

  it('a row whose field count differs from the header (a table not from parseCsv)', () => {
    assert.deepEqual(
      checkTable(table(['x', 'colour', 'y'], [['1', 'red']]), { x: 'feature', colour: 'feature', y: 'label' }, SMALL_SCHEMA, ['a']),
      [{ line: 2, message: 'line 2: 2 fields, but the header has 3 columns' }],
    );
  });

  it(`lists at most ${MAX_PROBLEMS} problems and counts the rest`, () => {
    const rows = Array.from({ length: 50 }, (_, i) => [String(i), 'bad', 'red', 'a']);
    const problems = problemsOf(table(['id', 'x', 'colour', 'y'], rows), SMALL_ROLES, SMALL_SCHEMA, ['a']);
    assert.equal(problems.length, MAX_PROBLEMS + 1);
    assert.equal(problems[MAX_PROBLEMS - 1], `line ${MAX_PROBLEMS + 1}: 'bad' in column 'x' is not a number`);
    assert.equal(problems[MAX_PROBLEMS], `... and ${50 - MAX_PROBLEMS} more problems`);
  });

  it('ignores inherited properties of the roles object', () => {
    const data = table(['constructor', 'x', 'colour', 'y'], [['1', '1', 'red', 'a']]);
    // "constructor" has no own role, so it is dropped rather than read as Object.prototype.constructor.
    assert.deepEqual(checkTable(data, { x: 'feature', colour: 'feature', y: 'label' }, SMALL_SCHEMA, ['a']), []);
  });
});

describe('checkTaskSchema', () => {
  it('explains a task schema or classes that cannot work', () => {
    const schema = (features: TabularInput['features'], labelColumn = 'y'): TabularInput => ({ kind: 'tabular', features, labelColumn });
    const x = { name: 'x', type: 'numeric' } as const;
    assert.doesNotThrow(() => checkTaskSchema(SMALL_SCHEMA, ['a']));
    assert.throws(() => checkTaskSchema(schema([]), ['a']), /has no features/);
    assert.throws(() => checkTaskSchema(SMALL_SCHEMA, []), /1 to 256 classes/);
    assert.throws(() => checkTaskSchema(SMALL_SCHEMA, Array.from({ length: 257 }, String)), /1 to 256 classes/);
    assert.throws(() => checkTaskSchema(SMALL_SCHEMA, ['a', 'b', 'a']), /class 'a' is listed twice/);
    assert.throws(() => checkTaskSchema(schema([x, x]), ['a']), /feature 'x' is listed twice/);
    assert.throws(() => checkTaskSchema(schema([x], 'x'), ['a']), /'x' is both a feature and the label column/);
    assert.throws(() => checkTaskSchema(schema([x], ''), ['a']), /no label column name/);
    assert.throws(() => checkTaskSchema(schema([{ name: '', type: 'numeric' }]), ['a']), /empty name/);
    assert.throws(() => checkTaskSchema(schema([{ name: 'c', type: 'categorical', categories: [] }]), ['a']), /'c' has no categories/);
    assert.throws(
      () => checkTaskSchema(schema([{ name: 'c', type: 'categorical', categories: ['p', 'p'] }]), ['a']),
      /lists the category 'p' twice/,
    );
    assert.throws(() => checkTable(table(['x'], []), {}, schema([x, x]), ['a']), /listed twice/, 'checkTable checks the task first');
  });
});
