import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CsvError, detectDelimiter, parseCsv, parseNumber } from '../../core/data/csv.ts';

/** Asserts that parsing throws a CsvError for `line` whose message matches `pattern`. */
function assertCsvError(text: string, line: number, pattern: RegExp): void {
  assert.throws(
    () => parseCsv(text),
    (error: unknown) => {
      assert.ok(error instanceof CsvError, `expected a CsvError, got ${String(error)}`);
      assert.equal(error.line, line);
      assert.match(error.message, new RegExp(`^line ${line}: `));
      assert.match(error.message, pattern);
      return true;
    },
  );
}

describe('parseCsv', () => {
  it('reads a header and rows, and the line each row starts on', () => {
    const table = parseCsv('a,b,c\n1,2,3\n4,5,6\n');
    assert.deepEqual(table.header, ['a', 'b', 'c']);
    assert.deepEqual(table.rows, [
      ['1', '2', '3'],
      ['4', '5', '6'],
    ]);
    assert.deepEqual(table.lines, [2, 3]);
    assert.equal(table.headerLine, 1);
    assert.equal(table.delimiter, ',');
  });

  it('reads quoted fields holding delimiters, line breaks and doubled quotes, and keeps counting lines after them', () => {
    const text = 'name,comment,n\n"Smith, J.","said ""hi""\nthen left",1\nplain,"",2\n"x","a\r\nb\rc",3\n';
    const table = parseCsv(text);
    assert.deepEqual(table.rows, [
      ['Smith, J.', 'said "hi"\nthen left', '1'],
      ['plain', '', '2'],
      ['x', 'a\r\nb\rc', '3'],
    ]);
    // The second row starts on line 4 because the first spans lines 2 and 3; the third spans 5 to 7.
    assert.deepEqual(table.lines, [2, 4, 5]);
    assert.throws(() => parseCsv(`${text}1,2\n`), /CsvError: line 8: 2 fields/);
  });

  it('reads CRLF, LF and CR line breaks alike, with or without a trailing newline', () => {
    const expected = parseCsv('a,b\n1,2\n3,4');
    for (const text of ['a,b\r\n1,2\r\n3,4\r\n', 'a,b\r1,2\r3,4\r', 'a,b\n1,2\n3,4\n', 'a,b\r\n1,2\n3,4']) {
      const table = parseCsv(text);
      assert.deepEqual(table.rows, expected.rows, JSON.stringify(text));
      assert.deepEqual(table.lines, [2, 3], JSON.stringify(text));
    }
  });

  it('skips a leading byte order mark and blank lines, counting them in line numbers', () => {
    const table = parseCsv('\uFEFF\n\nid,v\r\n\r\n1,2\n   \n\t\n3,4\n\n');
    assert.deepEqual(table.header, ['id', 'v']);
    assert.equal(table.headerLine, 3);
    assert.deepEqual(table.rows, [
      ['1', '2'],
      ['3', '4'],
    ]);
    assert.deepEqual(table.lines, [5, 8]);
  });

  it('trims whitespace around unquoted fields and around quotes, but not inside quotes', () => {
    const table = parseCsv(' a , b \n  1 ,  " x "  \n');
    assert.deepEqual(table.header, ['a', 'b']);
    assert.deepEqual(table.rows, [['1', ' x ']]);
  });

  it('keeps a row of empty fields and a quote inside an unquoted field', () => {
    const table = parseCsv('a,b,c\n,,\nsize 5\'3",x,y\n');
    assert.deepEqual(table.rows, [
      ['', '', ''],
      ['size 5\'3"', 'x', 'y'],
    ]);
  });

  it('detects comma, semicolon and tab from the header line, ignoring delimiters inside quotes', () => {
    assert.equal(parseCsv('a;b;c\n1,5;2;3\n').delimiter, ';');
    assert.deepEqual(parseCsv('a;b;c\n1,5;2;3\n').rows, [['1,5', '2', '3']]);
    assert.equal(parseCsv('a\tb\n1\t2\n').delimiter, '\t');
    assert.deepEqual(parseCsv('a\tb\n 1 \t 2 \n').rows, [['1', '2']]);
    assert.equal(detectDelimiter('"x;y;z",b\n1,2'), ',');
    assert.equal(detectDelimiter('\n\na;b\n1,2,3,4,5'), ';', 'blank lines before the header are skipped');
    assert.equal(detectDelimiter('single\n1'), ',');
    assert.deepEqual(parseCsv('single\n1\n2\n').rows, [['1'], ['2']]);
  });

  it('uses the delimiter it is given', () => {
    const table = parseCsv('a;b,c\n1;2,3\n', { delimiter: ',' });
    assert.deepEqual(table.header, ['a;b', 'c']);
    assert.deepEqual(table.rows, [['1;2', '3']]);
  });

  it('explains an empty file', () => {
    assertCsvError('', 1, /the file is empty/);
    assertCsvError('\uFEFF\r\n  \n\n', 1, /the file is empty/);
  });

  it('explains a missing header (a first line of numbers)', () => {
    assertCsvError('1,2.5,3\n4,5,6\n', 1, /looks like data rather than column names; add a header line/);
    // One named column is enough to count as a header.
    assert.deepEqual(parseCsv('1,2,label\n4,5,x\n').header, ['1', '2', 'label']);
  });

  it('explains duplicate and empty column names', () => {
    assertCsvError('id,x,y,x\n1,2,3,4\n', 1, /'x' appears twice \(columns 2 and 4\)/);
    assertCsvError('\nid,,y\n1,2,3\n', 2, /column 2 of the header has no name/);
    assertCsvError('id,""\n1,2\n', 1, /column 2 of the header has no name/);
  });

  it('explains a row with too many or too few fields, naming its line and both counts', () => {
    assertCsvError(
      'a,b,c\n1,2,3\n\n4,5,6,7\n',
      4,
      /4 fields, but the header \(line 1\) has 3 columns; a value containing a comma must be in double quotes/,
    );
    assertCsvError('a;b;c\n1;2;3\n4;5\n', 3, /2 fields, but the header \(line 1\) has 3 columns; every row needs a value/);
    assertCsvError('a,b\n1,2\n3\n', 3, /^line 3: 1 field, but/);
  });

  it('explains an unterminated quote at the line where it opens', () => {
    assertCsvError('a,b\n1,2\n3,"four\n5,6\n7,8\n', 3, /closing quote \("\) is missing/);
    assertCsvError('"a,b\n1,2\n', 1, /closing quote/);
  });

  it('explains text after a closing quote', () => {
    assertCsvError(
      'a,b\n1,2\n"x"y,3\n',
      3,
      /unexpected "y" after the closing quote of field 1; a quote inside a quoted field must be doubled/,
    );
    assertCsvError('a,b\n1,"multi\nline" z\n', 3, /unexpected "z" after the closing quote of field 2/);
  });

  it('parses a few-MB file in linear time', () => {
    const header = 'id,name,a,b,c,d,label\n';
    const row = (i: number): string => `${i},"Name, ${i} ""q""",${i * 0.5},${-i},1e3,.25,class${i % 3}\n`;
    const build = (count: number): string => header + Array.from({ length: count }, (_, i) => row(i)).join('');
    const small = build(10_000);
    const large = build(80_000); // about 4.5 MB
    assert.ok(large.length > 4_000_000);
    const time = (text: string): number => {
      const start = performance.now();
      parseCsv(text);
      return performance.now() - start;
    };
    time(small); // warm up the JIT
    const smallMs = Math.min(time(small), time(small));
    const largeMs = Math.min(time(large), time(large));
    const table = parseCsv(large);
    assert.equal(table.rows.length, 80_000);
    assert.deepEqual(table.rows[79_999], ['79999', 'Name, 79999 "q"', '39999.5', '-79999', '1e3', '.25', 'class1']);
    assert.ok(largeMs < 3000, `4.5 MB took ${largeMs.toFixed(0)} ms`);
    // 8x the data must not take anywhere near 64x the time (a quadratic parser would).
    assert.ok(largeMs < 30 * Math.max(smallMs, 5), `8x the rows took ${(largeMs / smallMs).toFixed(1)}x the time`);
    // One huge quoted field: a scanner that re-copies the field per character would be quadratic here.
    const huge = `a,b\n"${'x""y,\n'.repeat(200_000)}",1\n`;
    const start = performance.now();
    const hugeTable = parseCsv(huge);
    assert.ok(performance.now() - start < 3000);
    assert.equal(hugeTable.rows[0]![0]!.length, 'x"y,\n'.length * 200_000);
    assert.deepEqual(hugeTable.lines, [2]);
  });
});

describe('parseNumber', () => {
  it('accepts plain decimal numbers with sign, fraction and exponent', () => {
    const cases: [string, number][] = [
      ['0', 0],
      ['42', 42],
      ['+1.5', 1.5],
      ['-2', -2],
      ['.5', 0.5],
      ['5.', 5],
      ['-1.25e3', -1250],
      ['2E-2', 0.02],
      ['007', 7],
    ];
    for (const [text, value] of cases) assert.equal(parseNumber(text), value, text);
  });

  it('rejects what Number() would wrongly accept, and non-finite values', () => {
    for (const text of [
      '',
      ' ',
      '0x1F',
      '0b11',
      '0o7',
      'Infinity',
      '-Infinity',
      'NaN',
      '1_000',
      '1,5',
      '1.2.3',
      'e5',
      '1e',
      '--1',
      '+',
      '.',
      '1e999',
      '12abc',
    ]) {
      assert.equal(parseNumber(text), undefined, JSON.stringify(text));
    }
  });
});
