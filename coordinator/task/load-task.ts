import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { CsvError, parseCsv } from '../../core/data/csv.ts';
import { encodeDataset, subset, type Dataset } from '../../core/data/dataset.ts';
import { inputSize, type ImageInput, type InputSchema, type TabularInput } from '../../core/data/schema.ts';
import {
  checkTaskSchema,
  type PreparedTable,
  prepareTable,
  skippedRowsNotes,
  suggestRoles,
  TabularSchemaError,
} from '../../core/data/tabular.ts';
import { buildModel, parameterCount, weightShapes } from '../../core/model/architectures.ts';
import { trainableWeightIndices } from '../../core/model/trainable-variables.ts';
import { readWeights } from '../../core/model/weights.ts';
import type { ArchitectureName, DemoDataSource, JsonValue, ModelSpec, WeightShape } from '../../core/protocol/messages.ts';
import { permutation, SeededRandom } from '../../core/random/prng.ts';
import { readImageSource, type ImageSource } from '../../node/data/image-sources.ts';
import { loadMnistDemo } from './demo-data.ts';
import { fineTuneParts, markTrainableLayers, type LoadedFineTune } from './fine-tune-task.ts';
import type { TaskDefinition, TaskFile } from './task-file.ts';

/**
 * From a task definition (a task file, or the embedded MNIST demo) to what
 * the coordinator runs: the model, its initial weights, the held-out test
 * set, the public demo data it serves and the membership-audit sets.
 */

export const DEMO_DATASET_PATH = '/api/demo-data/train.bin';
export const DEMO_CSV_PATH = '/api/demo-data/train.csv';
/** At most this many training examples are audited as members (the audit runs the model on each). */
export const AUDIT_MAX_MEMBERS = 1000;

/** `npm start` with no --task: the MNIST demo, with the model --model picks (tasks/mnist/task.json says the same). */
export const EMBEDDED_TASK: TaskDefinition = {
  name: 'mnist-demo',
  model: { kind: 'builtin', architecture: 'mlp' },
  input: { kind: 'image', shape: [28, 28, 1] },
  classes: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
  data: { kind: 'builtin', name: 'mnist' },
};

/** Public data the coordinator serves to participants, each of which keeps its shard. */
export interface ServedDemoData extends DemoDataSource {
  readonly bytes: Uint8Array;
  readonly contentType: string;
}

export interface LoadedTask {
  readonly name: string;
  readonly description: string;
  readonly spec: ModelSpec;
  readonly weightShapes: readonly WeightShape[];
  readonly paramCount: number;
  /** The starting global model: seeded for a built-in architecture, the model.json weights for a custom one. */
  readonly initialWeights: Float32Array;
  readonly input: InputSchema;
  readonly classes: readonly string[];
  /** The coordinator's held-out evaluation set. */
  readonly test: Dataset;
  readonly demoData?: ServedDemoData;
  /**
   * Membership-inference audit: a seeded sample of the served training
   * examples (members) against the test set (non-members). Absent when the
   * coordinator holds no training data of the task.
   */
  readonly audit?: { readonly members: Dataset; readonly nonMembers: Dataset };
  /** Things worth a log line, e.g. rows of a CSV skipped for missing values. */
  readonly notes: readonly string[];
  /** Present when the task fine-tunes: only its trainable weights travel and are aggregated. */
  readonly fineTune?: LoadedFineTune;
}

export class TaskLoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TaskLoadError';
  }
}

export interface TaskLoadOptions {
  /** The task file; absent: the embedded MNIST demo. */
  readonly task?: TaskFile;
  /** The built-in architecture (--model, or the task file's "model" through it). */
  readonly architecture: ArchitectureName;
  /** Seeds the initial weights of a built-in architecture and the audit sample. */
  readonly seed: number;
}

/** Loads everything a task needs; errors name the file and what is wrong with it. The tfjs backend must be ready. */
export async function loadTask(options: TaskLoadOptions): Promise<LoadedTask> {
  const definition = options.task ?? EMBEDDED_TASK;
  const { input, classes } = definition;
  const notes: string[] = [];
  let test: Dataset;
  let train: Dataset | undefined;
  let demoData: ServedDemoData | undefined;
  let description = definition.description;
  if (definition.data.kind === 'builtin') {
    const mnist = await loadMnistDemo();
    ({ test, train } = mnist);
    description ??= `MNIST digits (${train.count} training examples shared out to participants, ${test.count} held out on the coordinator)`;
    demoData = { url: DEMO_DATASET_PATH, format: 'dataset', contentType: 'application/octet-stream', bytes: encodeDataset(train) };
  } else if (definition.data.kind === 'images') {
    const image = input as ImageInput; // task-file.ts reads image data only for an image input
    test = await readImages(definition.data.test, image, classes, 'data.test', notes);
    if (definition.data.train !== undefined) {
      train = await readImages(definition.data.train, image, classes, 'data.train', notes);
      // Prepared once here: each participant fetches it and keeps its shard, as with the MNIST demo.
      demoData = { url: DEMO_DATASET_PATH, format: 'dataset', contentType: 'application/octet-stream', bytes: encodeDataset(train) };
    }
    description ??= `${definition.name}: ${image.shape[0]}x${image.shape[1]} ${image.shape[2] === 1 ? 'grayscale' : 'colour'} images of ${classes.length} classes; ${test.count} test examples on the coordinator`;
  } else {
    const schema = input as TabularInput; // task-file.ts allows CSV data only with a tabular input
    try {
      checkTaskSchema(schema, classes);
    } catch (error) {
      throw new TaskLoadError(`${shown(options.task?.file ?? definition.name)}: ${(error as Error).message}`);
    }
    const testFile = await readCsvDataset(definition.data.test, schema, classes, 'data.test', notes);
    test = testFile.dataset;
    if (definition.data.train !== undefined) {
      const trainFile = await readCsvDataset(definition.data.train, schema, classes, 'data.train', notes);
      train = trainFile.dataset;
      // The raw file: each participant prepares its shard like its own CSV, with the shard's own statistics.
      demoData = { url: DEMO_CSV_PATH, format: 'csv', contentType: 'text/csv; charset=utf-8', bytes: trainFile.bytes };
    }
    description ??= `${definition.name}: predict ${schema.labelColumn} (${classes.join(' / ')}) from ${schema.features.length} columns; ${test.count} test examples on the coordinator`;
  }

  const model =
    definition.model.kind === 'builtin'
      ? await builtinModel(options.architecture, input, classes, options.seed)
      : await customModel(definition.model.path, input, classes, definition.fineTune?.trainable);
  return {
    name: definition.name,
    description,
    ...model,
    paramCount: parameterCount(model.weightShapes),
    input,
    classes,
    test,
    demoData,
    audit: train === undefined ? undefined : { members: auditSample(train, options.seed), nonMembers: test },
    notes,
  };
}

interface TaskModelParts {
  readonly spec: ModelSpec;
  readonly weightShapes: readonly WeightShape[];
  readonly initialWeights: Float32Array;
  readonly fineTune?: LoadedFineTune;
}

async function builtinModel(
  architecture: ArchitectureName,
  input: InputSchema,
  classes: readonly string[],
  seed: number,
): Promise<TaskModelParts> {
  // Data reaches every model as a flat row of inputSize values; the built-in models reshape it themselves.
  const spec: ModelSpec = {
    architecture,
    inputShape: [inputSize(input)],
    numClasses: classes.length,
    ...(input.kind === 'image' ? { imageShape: input.shape } : {}),
  };
  const model = buildModel(spec, seed);
  try {
    return { spec, weightShapes: weightShapes(model), initialWeights: await readWeights(model) };
  } finally {
    model.dispose();
  }
}

/**
 * A task's own tfjs model: loaded from model.json and its weight files,
 * checked against the task, and described so that every participant
 * rebuilds the same layers (ModelSpec.topology).
 */
export async function customModel(
  modelJsonPath: string,
  input: InputSchema,
  classes: readonly string[],
  trainable?: readonly string[],
): Promise<TaskModelParts> {
  const where = shown(modelJsonPath);
  const model = await loadLayersModelFile(modelJsonPath);
  try {
    const fail = (message: string): never => {
      throw new TaskLoadError(`${where}: ${message}`);
    };
    if (model.inputs.length !== 1 || model.outputs.length !== 1)
      fail(
        `the model has ${model.inputs.length} inputs and ${model.outputs.length} outputs; a task model takes one input and gives one output`,
      );
    const size = inputSize(input);
    const inShape = model.inputs[0]!.shape;
    if (inShape.length !== 2 || inShape[1] !== size) {
      fail(
        `the model's input shape is [${inShape.map(String).join(', ')}], the task's input is ${size} values per example (see "input"): ` +
          `examples reach the model as flat rows, so its first layer must take inputShape [${size}]` +
          (input.kind === 'image' ? ` (put a reshape layer to [${input.shape.join(', ')}] first)` : ''),
      );
    }
    const outShape = model.outputs[0]!.shape;
    if (outShape.length !== 2 || outShape[1] !== classes.length) {
      fail(
        `the model's output shape is [${outShape.map(String).join(', ')}], the task names ${classes.length} classes (see "classes"): the last layer needs ${classes.length} units, one logit per class`,
      );
    }
    const last = model.outputs[0]!.sourceLayer;
    const config = last.getConfig();
    const activation = last.getClassName() === 'Softmax' ? 'softmax' : typeof config.activation === 'string' ? config.activation : 'linear';
    if (activation === 'softmax' || activation === 'sigmoid') {
      fail(
        `the last layer (${last.name}) applies ${activation}: the model must output logits, because training here uses softmax cross-entropy on logits ` +
          `(numerically stable, and what DP-SGD's per-example gradients need); remove the activation (use "linear") and apply tf.softmax to predictions instead`,
      );
    }
    // Before the topology is taken: it carries each layer's trainable flag to the participants.
    markTrainableLayers(model, trainable, fail);
    const topology = JSON.parse(JSON.stringify({ className: model.getClassName(), config: model.getConfig() })) as JsonValue;
    const spec: ModelSpec = { architecture: 'custom', inputShape: [size], numClasses: classes.length, topology };
    const shapes = weightShapes(model);
    // Participants rebuild the model from the spec alone: check that it gives the same weights, in the same order.
    let rebuilt: tf.LayersModel;
    try {
      rebuilt = buildModel(spec);
    } catch (error) {
      return fail(`the model cannot be rebuilt from its layers configuration: ${(error as Error).message}`);
    }
    const again = weightShapes(rebuilt);
    const trainableAgain = trainableWeightIndices(rebuilt);
    rebuilt.dispose();
    if (JSON.stringify(again) !== JSON.stringify(shapes))
      fail('the model rebuilt from its layers configuration has other weights than the one loaded; custom layers are not supported');
    if (JSON.stringify(trainableAgain) !== JSON.stringify(trainableWeightIndices(model)))
      fail('the model rebuilt from its layers configuration trains other weights than the one loaded');
    const initialWeights = await readWeights(model);
    const fineTune = await fineTuneParts(model, shapes, initialWeights);
    return { spec, weightShapes: shapes, initialWeights, ...(fineTune ? { fineTune } : {}) };
  } finally {
    model.dispose();
  }
}

/** `tf.loadLayersModel` for a model.json on disk: reads the topology and the weight files its manifest lists. */
export async function loadLayersModelFile(modelJsonPath: string): Promise<tf.LayersModel> {
  const where = shown(modelJsonPath);
  let json: unknown;
  try {
    json = JSON.parse(await readFile(modelJsonPath, 'utf8'));
  } catch (error) {
    throw new TaskLoadError(`cannot read the task's model (model.modelJson) ${where}: ${(error as Error).message}`);
  }
  const fail = (message: string): never => {
    throw new TaskLoadError(`${where}: ${message}`);
  };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return fail('is not a tfjs model.json (not a JSON object)');
  const { modelTopology, weightsManifest, format } = json as Record<string, unknown>;
  if (format === 'graph-model') fail('is a tfjs graph model; a task needs a layers model (tf.LayersModel, saved with model.save)');
  if (typeof modelTopology !== 'object' || modelTopology === null) fail('has no modelTopology: it is not a tfjs layers model.json');
  if (!Array.isArray(weightsManifest)) return fail('has no weightsManifest: a task model needs its initial weights');
  const weightSpecs: tf.io.WeightsManifestEntry[] = [];
  const parts: Uint8Array[] = [];
  for (const [g, group] of weightsManifest.entries()) {
    const { paths, weights } = (group ?? {}) as { paths?: unknown; weights?: unknown };
    if (!Array.isArray(paths) || !Array.isArray(weights)) fail(`weightsManifest[${g}] needs "paths" and "weights" arrays`);
    weightSpecs.push(...(weights as tf.io.WeightsManifestEntry[]));
    for (const file of paths as unknown[]) {
      if (typeof file !== 'string' || file === '')
        return fail(`weightsManifest[${g}].paths holds ${JSON.stringify(file)}, not a file name`);
      // The weights become the initial global model every participant downloads: a manifest
      // naming a file outside the model's folder (../, an absolute path) would publish that file.
      const folder = path.dirname(modelJsonPath);
      const weightsPath = path.resolve(folder, file);
      const inside = path.relative(folder, weightsPath);
      if (path.isAbsolute(file) || inside === '' || inside.startsWith('..') || path.isAbsolute(inside)) {
        return fail(
          `weightsManifest[${g}].paths names ${JSON.stringify(file)}, outside the model's folder: weight files must sit next to model.json or below it`,
        );
      }
      try {
        parts.push(await readFile(weightsPath));
      } catch (error) {
        return fail(`cannot read the weight file ${shown(weightsPath)} (weightsManifest[${g}].paths): ${(error as Error).message}`);
      }
    }
  }
  const expectedBytes = weightSpecs.reduce((n, spec) => n + weightSpecBytes(spec, fail), 0);
  const actualBytes = parts.reduce((n, p) => n + p.byteLength, 0);
  // tfjs ignores bytes past the last weight; refuse them, so nothing else rides along in the model.
  if (actualBytes !== expectedBytes) fail(`the weight files hold ${actualBytes} bytes, the weightsManifest describes ${expectedBytes}`);
  const weightData = new Uint8Array(actualBytes);
  let offset = 0;
  for (const part of parts) {
    weightData.set(part, offset);
    offset += part.byteLength;
  }
  try {
    return await tf.loadLayersModel(
      tf.io.fromMemory({ modelTopology: modelTopology as object, weightSpecs, weightData: weightData.buffer }),
    );
  } catch (error) {
    return fail(`tfjs cannot load it: ${(error as Error).message}`);
  }
}

/** Bytes of one manifest entry: float32/int32 are 4 per value, bool 1; quantised weights are refused. */
function weightSpecBytes(spec: tf.io.WeightsManifestEntry, fail: (message: string) => never): number {
  if (spec.quantization) return fail(`weight ${spec.name} is quantised; save the model without quantisation`);
  const values = spec.shape.reduce((a, b) => a * b, 1);
  switch (spec.dtype) {
    case 'float32':
    case 'int32':
      return 4 * values;
    case 'bool':
      return values;
    default:
      return fail(`weight ${spec.name} has dtype ${spec.dtype}; a task model's weights are float32`);
  }
}

/** Reads a task CSV and prepares it like a participant would (numbers standardised with the file's own statistics). */
async function readCsvDataset(
  file: string,
  schema: TabularInput,
  classes: readonly string[],
  key: string,
  notes: string[],
): Promise<{ dataset: Dataset; bytes: Uint8Array }> {
  const where = shown(file);
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(file));
  } catch (error) {
    throw new TaskLoadError(`cannot read the task's ${key} file ${where}: ${(error as Error).message}`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new TaskLoadError(`${where} (${key}): is not UTF-8 text`);
  }
  let prepared: PreparedTable;
  try {
    const table = parseCsv(text);
    prepared = prepareTable(table, suggestRoles(table, schema), schema, classes);
  } catch (error) {
    if (error instanceof CsvError || error instanceof TabularSchemaError) throw new TaskLoadError(`${where} (${key}): ${error.message}`);
    throw error;
  }
  if (prepared.dataset.count === 0) throw new TaskLoadError(`${where} (${key}): no usable rows`);
  notes.push(...skippedRowsNotes(where, prepared.skipped));
  return { dataset: prepared.dataset, bytes };
}

/** An image source of the task, prepared for its input; errors name the task-file key and the file, line or image. */
async function readImages(
  source: ImageSource,
  input: ImageInput,
  classes: readonly string[],
  key: string,
  notes: string[],
): Promise<Dataset> {
  try {
    const read = await readImageSource(source, input, classes);
    notes.push(...read.notes);
    return read.dataset;
  } catch (error) {
    throw new TaskLoadError(`the task's ${key}: ${(error as Error).message}`);
  }
}

function auditSample(train: Dataset, seed: number): Dataset {
  const order = permutation(train.count, new SeededRandom(seed));
  return subset(train, order.subarray(0, Math.min(AUDIT_MAX_MEMBERS, train.count)));
}

/** A path as a person would type it: relative to the working directory when inside it. */
function shown(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : file;
}
