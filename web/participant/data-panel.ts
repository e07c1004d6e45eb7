import type { CsvTable } from '../../core/data/csv.ts';
import type { Dataset } from '../../core/data/dataset.ts';
import { isPixelColumnName, preparePixelTable, suggestPixelRoles } from '../../core/data/pixel-table.ts';
import {
  prepareTable,
  suggestRoles,
  TabularSchemaError,
  type ColumnRole,
  type FeatureStatistics,
  type SchemaProblem,
} from '../../core/data/tabular.ts';
import type { TaskSummary } from '../../core/protocol/messages.ts';
import { $, el, errorMessage } from './dom.ts';
import { readCsvFile, sampleValues, tabularInput } from './sources/csv.ts';
import { readIdxFiles } from './sources/idx.ts';
import { readImageFolder } from './sources/images.ts';
import { describeInput } from './task-text.ts';

/**
 * The "Choose your data" section: the task's expected input in words, file
 * inputs for CSV, image folders and IDX files, the CSV column roles, the
 * problems found and a summary of the prepared examples. It resolves with
 * the prepared Dataset when the user joins; files never leave the page.
 */

export interface PreparedData {
  readonly dataset: Dataset;
  /** Where the examples came from, for the page and the worker, e.g. "patients.csv" or "folder digits". */
  readonly description: string;
}

const ROLES: readonly { value: ColumnRole; text: string }[] = [
  { value: 'feature', text: 'feature' },
  { value: 'label', text: 'label' },
  { value: 'drop', text: 'drop' },
];

/** Rows listed in the summary before "and N more". */
const MAX_LISTED = 10;

interface SummaryExtras {
  readonly skipped?: readonly string[];
  readonly statistics?: readonly FeatureStatistics[];
}

export class DataPanel {
  private task: TaskSummary | undefined;
  private ready: PreparedData | undefined;
  private resolveChoice: ((data: PreparedData) => void) | undefined;
  /** Bumped by every new choice, so a slow read of an earlier one cannot overwrite it. */
  private generation = 0;
  private locked = false;
  private csv: { file: File; table: CsvTable; roles: Record<string, ColumnRole> } | undefined;

  constructor() {
    $<HTMLInputElement>('csv-file').addEventListener('change', (event) => void this.onCsv(event.currentTarget as HTMLInputElement));
    $<HTMLInputElement>('image-files').addEventListener('change', () => void this.onImages());
    $<HTMLInputElement>('image-invert').addEventListener('change', () => {
      if (($<HTMLInputElement>('image-files').files?.length ?? 0) > 0) void this.onImages();
    });
    $<HTMLInputElement>('idx-files').addEventListener('change', (event) => void this.onIdx(event.currentTarget as HTMLInputElement));
    $('join').addEventListener('click', () => {
      if (!this.ready || this.locked) return;
      this.resolveChoice?.(this.ready);
    });
  }

  setTask(task: TaskSummary): void {
    this.task = task;
    const described = describeInput(task);
    const box = $('data-expected');
    box.replaceChildren(...described.lead.map((line) => el('p', line)));
    if (described.features.length > 0) box.append(el('ul'));
    for (const line of described.features) box.lastElementChild!.append(el('li', line));
    box.append(...described.tail.map((line) => el('p', line)));
    const image = task.input.kind === 'image';
    $('image-choice').hidden = !image;
    $('idx-choice').hidden = !image;
    if (image) {
      const [h, w, c] = task.input.shape;
      $('idx-choice').after($('csv-choice')); // images first: the usual way to hold an image data set
      $('csv-label').textContent = 'Or a CSV file of pixels';
      $('csv-help').textContent =
        `One row per image: a label column (the class name) and ${h * w * c} pixel columns, whole numbers 0 to 255, row by row ` +
        "(the layout of Kaggle's digit recognizer). Mark columns like identifiers to drop: they never reach the model or the network.";
      $('image-help').textContent =
        `Each subfolder is named after a class (${task.classes.slice(0, 3).join(', ')}${task.classes.length > 3 ? ', …' : ''}) and holds that class's images ` +
        `(PNG, JPEG, WebP, GIF or BMP); they are resized to ${w} × ${h} on this device.`;
    }
  }

  /** Shows the panel and waits for the user to join with valid data. */
  choose(): Promise<PreparedData> {
    $('data-panel').hidden = false;
    return new Promise((resolve) => (this.resolveChoice = resolve));
  }

  /** After joining, leaving or a fatal error: the data can no longer change. */
  lock(joined = false): void {
    this.locked = true;
    this.generation++;
    for (const node of $('data-panel').querySelectorAll<HTMLInputElement | HTMLSelectElement | HTMLButtonElement>('input, select, button'))
      node.disabled = true;
    if (joined) $('join').textContent = 'Joined with this data';
  }

  private requireTask(): TaskSummary {
    if (!this.task) throw new Error('the task is not loaded yet');
    return this.task;
  }

  /** Empties the other file inputs, so the page never shows two choices while using one. */
  private clearOtherInputs(used: string): void {
    for (const id of ['csv-file', 'image-files', 'idx-files']) if (id !== used) $<HTMLInputElement>(id).value = '';
  }

  /** Starts a new choice: clears what the previous one showed, returns its generation. */
  private begin(reading: string, keepColumns = false): number {
    this.ready = undefined;
    $<HTMLButtonElement>('join').disabled = true;
    this.showProblems([]);
    $('data-summary').replaceChildren();
    if (!keepColumns) {
      this.csv = undefined;
      $('csv-columns-block').hidden = true;
    }
    $('data-reading').textContent = reading;
    return ++this.generation;
  }

  private current(generation: number): boolean {
    return generation === this.generation && !this.locked;
  }

  private async onCsv(input: HTMLInputElement): Promise<void> {
    const file = input.files?.[0];
    if (!file) return;
    const task = this.requireTask();
    this.clearOtherInputs('csv-file');
    const generation = this.begin(`Reading ${file.name}…`);
    try {
      const table = await readCsvFile(file);
      if (!this.current(generation)) return;
      // Image tasks read a CSV of pixels (one column per pixel); tabular tasks the schema's columns.
      const suggested = task.input.kind === 'image' ? suggestPixelRoles(table) : suggestRoles(table, tabularInput(task));
      this.csv = { file, table, roles: { ...suggested } };
      this.renderColumns();
      $('data-reading').textContent = `${file.name}: ${table.rows.length.toLocaleString()} rows, ${table.header.length} columns.`;
      this.evaluateCsv();
    } catch (error) {
      if (!this.current(generation)) return;
      $('data-reading').textContent = '';
      this.showProblems([`${file.name}: ${errorMessage(error)}`]);
    }
  }

  private renderColumns(): void {
    const csv = this.csv!;
    const { header } = csv.table;
    // A CSV of pixels has hundreds of pixel columns: one row (and one choice) for all of them.
    const pixels = this.task?.input.kind === 'image' ? header.filter(isPixelColumnName) : [];
    const rows = header
      .filter((name) => !pixels.includes(name))
      .map((name) => this.columnRow(name, sampleValues(csv.table, header.indexOf(name)).join(', ') || '(empty)', [name]));
    if (pixels.length > 1) {
      const label = `${pixels[0]} … ${pixels.at(-1)} (${pixels.length.toLocaleString()} pixel columns)`;
      rows.splice(header.indexOf(pixels[0]!), 0, this.columnRow(label, 'one value per pixel', pixels));
    } else if (pixels.length === 1) {
      rows.splice(
        header.indexOf(pixels[0]!),
        0,
        this.columnRow(pixels[0]!, sampleValues(csv.table, header.indexOf(pixels[0]!)).join(', '), pixels),
      );
    }
    $('csv-columns')
      .querySelector('tbody')!
      .replaceChildren(...rows);
    $('csv-columns-block').hidden = false;
  }

  /** A row of the columns table whose select sets the role of `columns` (one column, or a group of pixel columns). */
  private columnRow(title: string, samples: string, columns: readonly string[]): HTMLTableRowElement {
    const csv = this.csv!;
    const row = el('tr');
    row.append(el('th', title, { scope: 'row' }));
    row.append(el('td', samples));
    const attributes: Record<string, string> =
      columns.length === 1
        ? { 'data-column': columns[0]!, 'aria-label': `Use column "${columns[0]}" as` }
        : { 'data-column-group': 'pixels', 'aria-label': `Use the ${columns.length} pixel columns as` };
    const select = el('select', undefined, attributes);
    for (const role of ROLES) {
      const option = el('option', role.text, { value: role.value });
      option.selected = csv.roles[columns[0]!] === role.value;
      select.append(option);
    }
    select.addEventListener('change', () => {
      for (const name of columns) csv.roles[name] = select.value as ColumnRole;
      this.evaluateCsv();
    });
    const cell = el('td');
    cell.append(select);
    row.append(cell);
    return row;
  }

  /** Checks and prepares the CSV with the current roles; called after every role change. */
  private evaluateCsv(): void {
    const csv = this.csv;
    const task = this.task;
    if (!csv || !task) return;
    this.begin($('data-reading').textContent ?? '', true);
    try {
      const prepared =
        task.input.kind === 'image'
          ? preparePixelTable(csv.table, csv.roles, task.input, task.classes)
          : prepareTable(csv.table, csv.roles, tabularInput(task), task.classes);
      const skipped = prepared.skipped.map((s) => `line ${s.line}: ${s.reason}`);
      this.setReady({ dataset: prepared.dataset, description: csv.file.name }, { skipped, statistics: prepared.statistics });
    } catch (error) {
      this.showProblems(error instanceof TabularSchemaError ? error.problems.map((p: SchemaProblem) => p.message) : [errorMessage(error)]);
    }
  }

  private async onImages(): Promise<void> {
    const files = [...($<HTMLInputElement>('image-files').files ?? [])];
    if (files.length === 0) return;
    const task = this.requireTask();
    if (task.input.kind !== 'image') return;
    const input = task.input;
    this.clearOtherInputs('image-files');
    const generation = this.begin(`Reading ${files.length.toLocaleString()} files…`);
    try {
      const folder = await readImageFolder(files, input, task.classes, {
        invert: $<HTMLInputElement>('image-invert').checked,
        cancelled: () => !this.current(generation),
        onProgress: (done, total) => {
          if (this.current(generation))
            $('data-reading').textContent = `Decoding and resizing images: ${done.toLocaleString()} of ${total.toLocaleString()} files…`;
        },
      });
      if (!this.current(generation)) return;
      $('data-reading').textContent = `Read ${files.length.toLocaleString()} files.`;
      this.setReady(
        { dataset: folder.dataset, description: folder.description },
        { skipped: folder.skipped.map((s) => `${s.file}: ${s.reason}`) },
      );
    } catch (error) {
      if (!this.current(generation)) return;
      $('data-reading').textContent = '';
      this.showProblems([errorMessage(error)]);
    }
  }

  private async onIdx(input: HTMLInputElement): Promise<void> {
    const files = [...(input.files ?? [])];
    if (files.length === 0) return;
    const task = this.requireTask();
    if (task.input.kind !== 'image') return;
    const shape = task.input;
    this.clearOtherInputs('idx-files');
    const generation = this.begin(`Reading ${files.map((f) => f.name).join(', ')}…`);
    try {
      const read = await readIdxFiles(files, shape, task.classes);
      if (!this.current(generation)) return;
      $('data-reading').textContent = `Read ${read.description}.`;
      this.setReady({ dataset: read.dataset, description: read.description });
    } catch (error) {
      if (!this.current(generation)) return;
      $('data-reading').textContent = '';
      this.showProblems([errorMessage(error)]);
    }
  }

  private showProblems(problems: readonly string[]): void {
    const box = $('data-problems');
    if (problems.length === 0) {
      box.replaceChildren();
      return;
    }
    const list = el('ul');
    list.append(...problems.map((p) => el('li', p)));
    box.replaceChildren(el('h3', problems.length === 1 ? 'A problem to fix' : `${problems.length} problems to fix`), list);
  }

  private setReady(data: PreparedData, extras: SummaryExtras = {}): void {
    this.ready = data;
    this.renderSummary(data.dataset, extras);
    $<HTMLButtonElement>('join').disabled = false;
  }

  private renderSummary(dataset: Dataset, extras: SummaryExtras): void {
    const classes = this.task?.classes ?? [];
    const counts = new Array<number>(Math.max(classes.length, dataset.numClasses)).fill(0);
    for (const label of dataset.labels) counts[label]!++;
    const parts: HTMLElement[] = [
      el('h3', 'Ready to train'),
      el(
        'p',
        `${dataset.count.toLocaleString()} examples, prepared on this device. Your files are not uploaded: only the model updates trained on them leave this device.`,
      ),
    ];
    const missing = counts.map((n, i) => (n === 0 ? (classes[i] ?? String(i)) : null)).filter((c) => c !== null);
    parts.push(
      scrollTable(
        'Examples per class',
        ['Class', 'Examples'],
        counts.map((n, i) => [classes[i] ?? String(i), n.toLocaleString()]),
      ),
    );
    if (missing.length > 0)
      parts.push(el('p', `No examples of ${missing.join(', ')}: the model still learns those classes from the other participants.`));
    const skipped = extras.skipped ?? [];
    if (skipped.length > 0) {
      parts.push(el('p', `${skipped.length.toLocaleString()} ${skipped.length === 1 ? 'entry' : 'entries'} skipped:`));
      const list = el('ul');
      list.append(...skipped.slice(0, MAX_LISTED).map((s) => el('li', s)));
      if (skipped.length > MAX_LISTED) list.append(el('li', `and ${(skipped.length - MAX_LISTED).toLocaleString()} more`));
      parts.push(list);
    }
    const statistics = extras.statistics ?? [];
    if (statistics.length > 0) {
      parts.push(
        scrollTable(
          'Standardisation, computed on this device',
          ['Feature', 'Mean', 'Standard deviation'],
          statistics.map((s) => [s.name, s.mean.toPrecision(4), s.std.toPrecision(4)]),
        ),
        el('p', 'Each numeric feature is fed to the model as (value − mean) ÷ standard deviation.', { class: 'muted' }),
      );
    }
    $('data-summary').replaceChildren(...parts);
  }
}

/** A captioned table in a keyboard-scrollable box (wide tables scroll inside it, not the page). */
function scrollTable(caption: string, head: readonly string[], rows: readonly (readonly string[])[]): HTMLElement {
  const table = el('table');
  table.append(el('caption', caption));
  const headRow = el('tr');
  headRow.append(...head.map((h) => el('th', h, { scope: 'col' })));
  table.append(el('thead'));
  table.tHead!.append(headRow);
  const body = el('tbody');
  for (const row of rows) {
    const tr = el('tr');
    tr.append(el('th', row[0]!, { scope: 'row' }), ...row.slice(1).map((cell) => el('td', cell)));
    body.append(tr);
  }
  table.append(body);
  const box = el('div', undefined, { class: 'table-scroll', tabindex: '0', role: 'region', 'aria-label': caption });
  box.append(table);
  return box;
}
