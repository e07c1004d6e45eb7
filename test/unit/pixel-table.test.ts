import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCsv } from '../../core/data/csv.ts';
import { checkPixelTable, preparePixelTable, suggestPixelRoles } from '../../core/data/pixel-table.ts';
import type { ImageInput } from '../../core/data/schema.ts';
import { MAX_PROBLEMS, TabularSchemaError } from '../../core/data/tabular.ts';

const input: ImageInput = { kind: 'image', shape: [2, 2, 1] };
const classes = ['0', '1', '2'];
const csv = (rows: string[]) => parseCsv(['id,label,pixel0,pixel1,pixel2,pixel3', ...rows].join('\n'));

describe('images from a CSV of pixel columns', () => {
  it('suggests the label, the pixel columns, and dropping the rest', () => {
    assert.deepEqual(suggestPixelRoles(csv(['a,1,0,1,2,3'])), {
      id: 'drop',
      label: 'label',
      pixel0: 'feature',
      pixel1: 'feature',
      pixel2: 'feature',
      pixel3: 'feature',
    });
    // Without pixel-named columns, numeric columns are the features.
    assert.deepEqual(suggestPixelRoles(parseCsv('name,digit,a,b\nx,1,0,255\n')), {
      name: 'drop',
      digit: 'label',
      a: 'feature',
      b: 'feature',
    });
  });

  it('gives the pixels as bytes in column order and the class index as the label, skipping rows with a missing value', () => {
    const table = csv(['p-1,2,0,64,128,255', 'p-2,NA,1,2,3,4', 'p-3,0,9,8,,6', 'p-4,1,1,2,3,4']);
    const { dataset, skipped } = preparePixelTable(table, suggestPixelRoles(table), input, classes);
    assert.equal(dataset.count, 2);
    assert.ok(dataset.values instanceof Uint8Array);
    assert.deepEqual([...dataset.values], [0, 64, 128, 255, 1, 2, 3, 4]);
    assert.deepEqual([...dataset.labels], [2, 1]);
    assert.deepEqual(skipped, [
      { line: 3, reason: 'label is missing' },
      { line: 4, reason: 'pixel2 is missing' },
    ]);
  });

  it('never reads a dropped column: changing all its values leaves the dataset byte-identical', () => {
    const a = csv(['alice,1,0,1,2,3', 'bob,2,4,5,6,7']);
    const b = csv(['NA,1,0,1,2,3', `${'x'.repeat(5000)},2,4,5,6,7`]);
    const roles = suggestPixelRoles(a);
    assert.deepEqual(preparePixelTable(a, roles, input, classes).dataset, preparePixelTable(b, roles, input, classes).dataset);
  });

  it('explains a wrong number of pixel columns, a second label, values that are not pixels and unknown classes', () => {
    const table = csv(['a,1,0,1,2,3']);
    const withId = { ...suggestPixelRoles(table), id: 'feature' as const };
    assert.match(checkPixelTable(table, withId, input, classes)[0]!.message, /2×2 = 4 pixel values, but 5 columns are marked as features/);
    const twoLabels = { ...suggestPixelRoles(table), id: 'label' as const };
    assert.match(checkPixelTable(table, twoLabels, input, classes)[0]!.message, /only one column as the label, not 2 \(id, label\)/);
    const bad = csv(['a,1,0,1,2,256', 'b,1,0.5,0,0,0', 'c,7,0,0,0,0']);
    const messages = checkPixelTable(bad, suggestPixelRoles(bad), input, classes).map((p) => p.message);
    assert.deepEqual(messages, [
      'Line 2, column pixel3: "256" is not a pixel value, an integer from 0 to 255.',
      'Line 3, column pixel0: "0.5" is not a pixel value, an integer from 0 to 255 (values in [0, 1]? multiply them by 255).',
      'Line 4, column label: "7" is not one of the task\'s classes (0, 1, 2).',
    ]);
    assert.throws(() => preparePixelTable(bad, suggestPixelRoles(bad), input, classes), TabularSchemaError);
  });

  it(`lists at most ${MAX_PROBLEMS} problems and counts the rest`, () => {
    const bad = csv(Array.from({ length: 50 }, (_, i) => `r${i},9,0,0,0,0`));
    const messages = checkPixelTable(bad, suggestPixelRoles(bad), input, classes).map((p) => p.message);
    assert.equal(messages.length, MAX_PROBLEMS + 1);
    assert.equal(messages[MAX_PROBLEMS - 1], `Line ${MAX_PROBLEMS + 1}, column label: "9" is not one of the task's classes (0, 1, 2).`);
    assert.equal(messages[MAX_PROBLEMS], `... and ${50 - MAX_PROBLEMS} more problems`);
  });

  it('needs 1 to 256 classes, since labels are bytes', () => {
    const table = csv(['a,1,0,1,2,3']);
    assert.throws(() => checkPixelTable(table, suggestPixelRoles(table), input, []), /1 to 256 classes/);
    assert.throws(() => preparePixelTable(table, suggestPixelRoles(table), input, Array.from({ length: 257 }, String)), /1 to 256 classes/);
  });

  it('refuses a table with nothing to train on', () => {
    const table = csv(['a,NA,0,1,2,3']);
    assert.match(checkPixelTable(table, suggestPixelRoles(table), input, classes)[0]!.message, /Every row has a missing value/);
  });
});
