import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError, parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { parseTaskFile, readTaskFile, SETTINGS, TaskFileError } from '../../coordinator/task/task-file.ts';

const FILE = 'tasks/x/task.json';

/** A valid tabular task; each case below breaks one thing in a copy. */
function base(): Record<string, unknown> {
  return {
    name: 'x',
    description: 'a test task',
    model: 'mlp',
    input: {
      kind: 'tabular',
      labelColumn: 'y',
      features: [
        { name: 'a', type: 'numeric' },
        { name: 'c', type: 'categorical', categories: ['p', 'q'] },
      ],
    },
    classes: ['no', 'yes'],
    data: { train: './train.csv', test: './test.csv' },
  };
}

type Json = Record<string, unknown>;
const input = (t: Json) => t.input as Json;
const features = (t: Json) => input(t).features as Json[];

/** [what is wrong, how to break the base task, what the error must say (after "tasks/x/task.json: ")]. */
const CASES: readonly [string, (t: Json) => unknown, RegExp][] = [
  ['a top-level typo', (t) => ({ ...t, nmae: 'x' }), /^nmae is not a known key \(did you mean name\?\)/],
  [
    'a setting in the wrong section',
    (t) => ({ ...t, federation: { batchSize: 3 } }),
    /^federation\.batchSize is not a known key \(did you mean training\.batchSize\?\)/,
  ],
  ['a setting at the top level', (t) => ({ ...t, rounds: 3 }), /^rounds is not a known key \(did you mean federation\.rounds\?\)/],
  ['no name', (t) => ({ ...t, name: undefined }), /^name must be 1-64 letters.*got nothing/],
  ['a name that is no folder name', (t) => ({ ...t, name: '../etc' }), /^name must be .*got "\.\.\/etc"/],
  ['a description that is no string', (t) => ({ ...t, description: 3 }), /^description must be a string, got 3/],
  [
    'an unknown architecture',
    (t) => ({ ...t, model: 'mpl' }),
    /^model must be a built-in architecture \(mlp, 2nn or cnn\) \(did you mean mlp\?\), got "mpl"/,
  ],
  ['a model that is a number', (t) => ({ ...t, model: 3 }), /^model must be a built-in architecture name/],
  [
    'both architecture and modelJson',
    (t) => ({ ...t, model: { architecture: 'mlp', modelJson: 'm.json' } }),
    /^model must have exactly one of "architecture" or "modelJson", got both/,
  ],
  ['an empty model object', (t) => ({ ...t, model: {} }), /^model must have exactly one .*got neither/],
  [
    'a typo in the model object',
    (t) => ({ ...t, model: { modelJSON: 'm.json' } }),
    /^model\.modelJSON is not a known key \(did you mean model\.modelJson\?\)/,
  ],
  [
    'an unknown architecture in the model object',
    (t) => ({ ...t, model: { architecture: 'resnet' } }),
    /^model\.architecture must be a built-in architecture/,
  ],
  ['an empty modelJson path', (t) => ({ ...t, model: { modelJson: '' } }), /^model\.modelJson must be a file path/],
  ['cnn on a tabular input', (t) => ({ ...t, model: 'cnn' }), /^model "cnn" needs an image input/],
  ['no input', (t) => ({ ...t, input: undefined }), /^input must be an object/],
  [
    'an unknown input kind',
    (t) => ({ ...t, input: { kind: 'tabluar' } }),
    /^input\.kind must be "image" or "tabular" \(did you mean tabular\?\)/,
  ],
  ['a 2-d image shape', (t) => ({ ...t, input: { kind: 'image', shape: [28, 28] } }), /^input\.shape must be \[height, width, channels\]/],
  [
    'two channels',
    (t) => ({ ...t, input: { kind: 'image', shape: [28, 28, 2] } }),
    /^input\.shape must have 1 \(grayscale\) or 3 \(RGB\) channels, got 2/,
  ],
  ['an unknown image key', (t) => ({ ...t, input: { kind: 'image', shape: [28, 28, 1], size: 3 } }), /^input\.size is not a known key/],
  ['no label column', (t) => ({ ...t, input: { ...input(t), labelColumn: '' } }), /^input\.labelColumn must name the CSV column/],
  ['no features', (t) => ({ ...t, input: { ...input(t), features: [] } }), /^input\.features must be a non-empty array/],
  ['a feature that is a string', (t) => ({ ...t, input: { ...input(t), features: ['a'] } }), /^input\.features\[0\] must be an object/],
  [
    'a feature with no name',
    (t) => ({ ...t, input: { ...input(t), features: [{ type: 'numeric' }] } }),
    /^input\.features\[0\]\.name must be a column name/,
  ],
  [
    'a feature listed twice',
    (t) => ({ ...t, input: { ...input(t), features: [...features(t), { name: 'a', type: 'numeric' }] } }),
    /^input\.features\[2\]\.name "a" is listed twice/,
  ],
  [
    'the label as a feature',
    (t) => ({ ...t, input: { ...input(t), features: [{ name: 'y', type: 'numeric' }] } }),
    /^input\.features\[0\]\.name "y" is the label column/,
  ],
  [
    'an unknown feature type',
    (t) => ({ ...t, input: { ...input(t), features: [{ name: 'a', type: 'numerical' }] } }),
    /^input\.features\[0\]\.type must be "numeric" or "categorical" \(did you mean numeric\?\)/,
  ],
  [
    'a categorical feature without categories',
    (t) => ({ ...t, input: { ...input(t), features: [{ name: 'c', type: 'categorical' }] } }),
    /^input\.features\[0\]\.categories must be an array of at least 1 string/,
  ],
  [
    'a category listed twice',
    (t) => ({ ...t, input: { ...input(t), features: [{ name: 'c', type: 'categorical', categories: ['p', 'p'] }] } }),
    /^input\.features\[0\]\.categories\[1\] "p" is listed twice/,
  ],
  [
    'categories on a numeric feature',
    (t) => ({ ...t, input: { ...input(t), features: [{ name: 'a', type: 'numeric', categories: ['p'] }] } }),
    /^input\.features\[0\]\.categories is not a known key/,
  ],
  ['one class', (t) => ({ ...t, classes: ['yes'] }), /^classes must be an array of at least 2 strings, got \["yes"\]/],
  ['a class that is a number', (t) => ({ ...t, classes: ['no', 1] }), /^classes\[1\] must be a non-empty string, got 1/],
  ['a class listed twice', (t) => ({ ...t, classes: ['no', 'no'] }), /^classes\[1\] "no" is listed twice/],
  [
    '257 classes',
    (t) => ({ ...t, classes: Array.from({ length: 257 }, (_, i) => `c${i}`) }),
    /^classes may name at most 256 classes, got 257/,
  ],
  ['no data', (t) => ({ ...t, data: undefined }), /^data must be \{ "builtin": "mnist" \} or/],
  ['no test file', (t) => ({ ...t, data: { train: './train.csv' } }), /^data\.test is required/],
  ['a test path that is a number', (t) => ({ ...t, data: { test: 3 } }), /^data\.test must be a file path/],
  [
    'a typo in data',
    (t) => ({ ...t, data: { test: 't.csv', trian: 'x.csv' } }),
    /^data\.trian is not a known key \(did you mean data\.train\?\)/,
  ],
  ['unknown built-in data', (t) => ({ ...t, data: { builtin: 'cifar' } }), /^data\.builtin must be "mnist"/],
  ['built-in data with files', (t) => ({ ...t, data: { builtin: 'mnist', test: 't.csv' } }), /^data\.test is not a known key/],
  [
    'MNIST with a tabular input',
    (t) => ({ ...t, data: { builtin: 'mnist' } }),
    /^input must be \{ "kind": "image", "shape": \[28, 28, 1\] \} with the built-in MNIST data/,
  ],
  [
    'MNIST with 2 classes',
    (t) => ({ ...t, input: { kind: 'image', shape: [28, 28, 1] }, data: { builtin: 'mnist' } }),
    /^classes must name the 10 digits/,
  ],
  [
    'an image task with no data',
    (t) => ({ ...t, input: { kind: 'image', shape: [28, 28, 1] }, data: undefined }),
    /^data must be \{ "builtin": "mnist" \} or \{ "train": <images>, "test": <images> \}, where <images> is a folder/,
  ],
  [
    'an image task with no test images',
    (t) => ({ ...t, input: { kind: 'image', shape: [28, 28, 1] }, data: { train: './train' } }),
    /^data\.test is required/,
  ],
  [
    'an IDX pair with a typo',
    (t) => ({ ...t, input: { kind: 'image', shape: [28, 28, 1] }, data: { test: { images: 'i.gz', lables: 'l.gz' } } }),
    /^data\.test\.lables is not a known key \(did you mean data\.test\.labels\?\)/,
  ],
  [
    'an IDX pair without labels',
    (t) => ({ ...t, input: { kind: 'image', shape: [28, 28, 1] }, data: { test: { images: 'i.gz' } } }),
    /^data\.test\.labels must be a file path/,
  ],
  [
    'cnn on images smaller than 4x4',
    (t) => ({ ...t, model: 'cnn', input: { kind: 'image', shape: [3, 8, 1] }, data: { test: './test' } }),
    /^model "cnn" pools twice by 2, so it needs images of at least 4x4 pixels, the task's are 3x8/,
  ],
  ['a settings section that is a list', (t) => ({ ...t, training: [1] }), /^training must be an object, got \[1\]/],
  [
    'a boolean setting given as a string',
    (t) => ({ ...t, federation: { adaptiveDeadline: 'yes' } }),
    /^federation\.adaptiveDeadline must be true or false, got "yes"/,
  ],
  ['a string setting given as a number', (t) => ({ ...t, aggregation: { strategy: 1 } }), /^aggregation\.strategy must be a string, got 1/],
  [
    'a number setting given as an object',
    (t) => ({ ...t, training: { epochs: { n: 1 } } }),
    /^training\.epochs must be a number, got \{"n":1\}/,
  ],
  ['a number in quotes', (t) => ({ ...t, training: { epochs: '3' } }), /^training\.epochs must be a JSON number: write 3 without quotes/],
  [
    'neighbours neither a number nor "all"',
    (t) => ({ ...t, secureAggregation: { neighbours: true } }),
    /^secureAggregation\.neighbours must be a number or "all", got true/,
  ],
];

describe('task files: every malformed input is an error naming the file and the key', () => {
  for (const [what, breakIt, expected] of CASES) {
    it(what, () => {
      const text = JSON.stringify(breakIt(base()));
      assert.throws(
        () => parseTaskFile(text, FILE),
        (error: unknown) => {
          assert.ok(error instanceof TaskFileError, String(error));
          assert.ok(error.message.startsWith(`${FILE}: `), error.message);
          assert.match(error.message.slice(FILE.length + 2), expected);
          return true;
        },
      );
    });
  }

  it('text that is not JSON, or not an object', () => {
    assert.throws(() => parseTaskFile('{ "name": ', FILE), /^TaskFileError: tasks\/x\/task\.json is not valid JSON: /);
    assert.throws(() => parseTaskFile('[1, 2]', FILE), /tasks\/x\/task\.json must hold a JSON object, got \[1,2\]/);
  });

  it('a file that cannot be read', () => {
    assert.throws(() => readTaskFile('/nonexistent/task.json'), /cannot read task file \/nonexistent\/task\.json: .*ENOENT/);
  });

  it('the base task is valid, with its paths taken from the task file folder', () => {
    const task = parseTaskFile(JSON.stringify(base()), FILE);
    assert.equal(task.name, 'x');
    assert.deepEqual(task.data, { kind: 'csv', train: path.resolve('tasks/x/train.csv'), test: path.resolve('tasks/x/test.csv') });
    assert.deepEqual(task.model, { kind: 'builtin', architecture: 'mlp' });
    assert.deepEqual(task.flags, ['--model', 'mlp']);
    const custom = parseTaskFile(JSON.stringify({ ...base(), model: { modelJson: 'model/model.json' } }), FILE);
    assert.deepEqual(custom.model, { kind: 'modelJson', path: path.resolve('tasks/x/model/model.json') });
    assert.deepEqual(custom.flags, [], 'a custom model sets no --model');
  });

  it('an image task reads a class folder, a pixel CSV or an IDX pair, relative to the task file', () => {
    const images = (data: unknown) =>
      parseTaskFile(JSON.stringify({ ...base(), input: { kind: 'image', shape: [32, 24, 3] }, model: 'cnn', data }), FILE).data;
    assert.deepEqual(images({ train: './train', test: 'test.csv' }), {
      kind: 'images',
      train: { kind: 'folder', path: path.resolve('tasks/x/train') },
      test: { kind: 'pixel-csv', path: path.resolve('tasks/x/test.csv') },
    });
    assert.deepEqual(images({ test: { images: 'a/t10k-images-idx3-ubyte.gz', labels: 'a/t10k-labels-idx1-ubyte' } }), {
      kind: 'images',
      test: {
        kind: 'idx',
        images: path.resolve('tasks/x/a/t10k-images-idx3-ubyte.gz'),
        labels: path.resolve('tasks/x/a/t10k-labels-idx1-ubyte'),
      },
    });
  });
});

describe('task file settings become flags', () => {
  it('each settings key maps onto a distinct flag that parseConfig knows', () => {
    const flags = Object.values(SETTINGS).flatMap((section) => Object.values(section).map(([flag]) => flag));
    assert.equal(new Set(flags).size, flags.length);
    for (const flag of flags) {
      // Unknown flags fail parseArgs with "Unknown option"; known ones fail later, or not at all.
      try {
        parseConfig(
          [`--${flag}`, ...(flag === 'adaptive-deadline' || flag === 'adaptive-clip' || flag === 'secure-aggregation' ? [] : ['1'])],
          {},
        );
      } catch (error) {
        assert.doesNotMatch((error as Error).message, /Unknown option/, flag);
      }
    }
  });

  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'fl-task-file-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function writeTask(extra: Record<string, unknown>): Promise<string> {
    const file = path.join(dir, `task-${Math.random().toString(36).slice(2)}.json`);
    await writeFile(file, JSON.stringify({ ...base(), ...extra }));
    return file;
  }

  function configError(argv: string[]): string {
    try {
      parseConfig(argv, {});
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      return error.message;
    }
    return assert.fail(`parseConfig(${argv.join(' ')}) did not throw`);
  }

  it('every section reaches the configuration', async () => {
    const file = await writeTask({
      model: '2nn',
      federation: {
        rounds: 7,
        minClients: 4,
        clientsPerRound: 5,
        minUpdates: 3,
        roundTimeout: 30,
        targetAccuracy: 0.9,
        overSelect: 0.2,
        adaptiveDeadline: true,
        seed: 9,
      },
      training: { epochs: 2, batchSize: 16, learningRate: 0.05 },
      privacy: { clientDp: 'distributed', clientNoiseMultiplier: 1, clientSampleRate: 0.5, clientClip: 2, delta: 1e-6, epsilonBudget: 8 },
      aggregation: { strategy: 'fedadam', serverLearningRate: 0.02 },
      secureAggregation: { enabled: true, neighbours: 'all', stepTimeout: 10 },
    });
    const config = parseConfig(['--task', file, '--admin-token', 'a'.repeat(32)], {}) as CoordinatorConfig;
    assert.equal(config.architecture, '2nn');
    assert.equal(config.seed, 9);
    const s = config.settings;
    assert.deepEqual(
      [s.rounds, s.minClients, s.clientsPerRound, s.minUpdates, s.roundTimeoutMs, s.targetAccuracy, s.overSelect, s.adaptiveDeadline],
      [7, 4, 5, 3, 30_000, 0.9, 0.2, true],
    );
    assert.deepEqual([s.fit.epochs, s.fit.batchSize, s.fit.learningRate], [2, 16, 0.05]);
    assert.equal(config.clientDp?.placement, 'distributed');
    assert.equal(config.clientDp?.delta, 1e-6);
    assert.equal(config.clientDp?.epsilonBudget, 8);
    assert.deepEqual(config.clientDp?.clip, { kind: 'fixed', norm: 2 });
    assert.equal(config.strategy?.name, 'fedadam');
    assert.equal(config.strategy?.serverLearningRate, 0.02);
    assert.equal(s.secureAggregation?.neighbours, 'all');
    assert.equal(s.secureAggregation?.stepTimeoutMs, 10_000);
    assert.equal(config.task?.name, 'x');
  });

  it('distributed noise: Skellam by default under secure aggregation, Gaussian shares only when the file names them', async () => {
    const distributedSecure = (privacy: Record<string, unknown>) =>
      writeTask({
        federation: { minClients: 3, clientsPerRound: 5 },
        privacy: { clientDp: 'distributed', clientNoiseMultiplier: 1, clientSampleRate: 1, expectedClients: 5, ...privacy },
        secureAggregation: { enabled: true },
      });
    const argv = (file: string) => ['--task', file, '--admin-token', 'a'.repeat(32)];
    const byDefault = parseConfig(argv(await distributedSecure({})), {}) as CoordinatorConfig;
    assert.deepEqual(byDefault.distributedNoise, { kind: 'skellam', toleratedDropouts: 0 });
    assert.equal(byDefault.settings.minUpdates, 5);
    const tolerant = parseConfig(argv(await distributedSecure({ toleratedDropouts: 1 })), {}) as CoordinatorConfig;
    assert.deepEqual(tolerant.distributedNoise, { kind: 'skellam', toleratedDropouts: 1 });
    assert.equal(tolerant.settings.minUpdates, 4);
    // What Skellam cannot do is refused in the file's own keys, naming the key that accepts the weaker accounting.
    assert.match(
      configError(argv(await distributedSecure({ expectedClients: 4.5 }))),
      /needs an integer privacy\.expectedClients M .*pass privacy\.distributedNoise gaussian to accept the weaker accounting explicitly/,
    );
    const gaussian = parseConfig(
      argv(await distributedSecure({ expectedClients: 4.5, distributedNoise: 'gaussian' })),
      {},
    ) as CoordinatorConfig;
    assert.equal(gaussian.distributedNoise, undefined);
    assert.equal(gaussian.settings.minUpdates, 1);
  });

  it('sample-level DP settings reach the configuration', async () => {
    const file = await writeTask({
      privacy: { dpSgdClip: 1, dpSgdNoiseMultiplier: 1.1, dpSgdBatchSize: 8, dpSgdEpsilonBudget: 4, clipNorm: 5, noiseStd: 0 },
    });
    const config = parseConfig(['--task', file], {}) as CoordinatorConfig;
    assert.deepEqual(config.settings.fit.sampleDp, {
      clipNorm: 1,
      noiseMultiplier: 1.1,
      expectedBatchSize: 8,
      delta: 1e-5,
      epsilonBudget: 4,
    });
    assert.deepEqual(config.settings.fit.privacy, { clipNorm: 5, noiseStd: 0 });
  });

  it('flags on the command line override the file', async () => {
    const file = await writeTask({ training: { batchSize: 16, epochs: 3 }, federation: { rounds: 4 } });
    const config = parseConfig(['--task', file, '--batch-size', '8', '--model', '2nn'], {}) as CoordinatorConfig;
    assert.equal(config.settings.fit.batchSize, 8);
    assert.equal(config.settings.fit.epochs, 3);
    assert.equal(config.settings.rounds, 4);
    assert.equal(config.architecture, '2nn');
  });

  it('a bad value from the file is reported with the file and its key', async () => {
    const file = await writeTask({ training: { batchSize: 'abc' } });
    assert.equal(configError(['--task', file]), `${file}: training.batchSize must be a positive integer, got "abc"`);
  });

  it('a cross-setting rule names the keys of the file', async () => {
    const file = await writeTask({ privacy: { noiseStd: 1 } });
    assert.equal(
      configError(['--task', file]),
      `${file}: privacy.noiseStd needs privacy.clipNorm: noise without a clipping bound protects nothing`,
    );
    const secagg = await writeTask({ secureAggregation: { neighbours: 4 } });
    assert.equal(configError(['--task', secagg]), `${secagg}: secureAggregation.neighbours needs secureAggregation.enabled`);
  });

  it('a rule broken by a command-line flag is reported as flags', async () => {
    const file = await writeTask({});
    assert.equal(
      configError(['--task', file, '--noise-std', '1']),
      '--noise-std needs --clip-norm: noise without a clipping bound protects nothing',
    );
    // Overridden on the command line: the flag, not the file, is at fault.
    const withBad = await writeTask({ training: { batchSize: 'abc' } });
    assert.equal(configError(['--task', withBad, '--batch-size', '0']), '--batch-size must be a positive integer, got "0"');
  });

  it('--model cannot replace a task model.json', async () => {
    const file = await writeTask({ model: { modelJson: './model.json' } });
    assert.match(
      configError(['--task', file, '--model', 'cnn']),
      /--model picks a built-in architecture, but .* brings its own model \(model\.modelJson\)/,
    );
  });

  it('a task file error is a ConfigError, so the CLI prints it with the usage', async () => {
    const file = await writeTask({ classes: ['one'] });
    assert.match(configError(['--task', file]), /classes must be an array of at least 2 strings/);
    assert.match(configError(['--task', path.join(dir, 'missing.json')]), /cannot read task file/);
  });
});
