import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { TestSetEvaluator } from '../../coordinator/evaluator.ts';
import { ModelSerializer } from '../../coordinator/storage/model-serializer.ts';
import { customModel, loadLayersModelFile, loadTask, TaskLoadError } from '../../coordinator/task/load-task.ts';
import { parseTaskFile } from '../../coordinator/task/task-file.ts';
import { initNodeBackend } from '../../coordinator/tf-node.ts';
import type { TabularInput } from '../../core/data/schema.ts';
import { buildModel, weightShapes } from '../../core/model/architectures.ts';
import { readWeights, writeWeights } from '../../core/model/weights.ts';
import type { ModelSpec } from '../../core/protocol/messages.ts';
import { LocalTrainer } from '../../core/training/local-trainer.ts';

/** The penguins task's input: 3 + 3 categories and 4 numbers = 10 inputs. */
const PENGUINS_INPUT: TabularInput = {
  kind: 'tabular',
  labelColumn: 'Sex',
  features: [
    { name: 'Species', type: 'categorical', categories: ['Adelie', 'Chinstrap', 'Gentoo'] },
    { name: 'Island', type: 'categorical', categories: ['Biscoe', 'Dream', 'Torgersen'] },
    { name: 'Beak Length (mm)', type: 'numeric' },
    { name: 'Beak Depth (mm)', type: 'numeric' },
    { name: 'Flipper Length (mm)', type: 'numeric' },
    { name: 'Body Mass (g)', type: 'numeric' },
  ],
};
const CLASSES = ['FEMALE', 'MALE'];

let dir: string;

/**
 * Saves `model` as model.json plus its weights split over two files (as
 * tfjs shards large models), through a custom IOHandler: tfjs-node's file://
 * handler is not available here.
 */
async function saveModel(model: tf.LayersModel, name: string): Promise<string> {
  const folder = path.join(dir, name);
  await mkdir(folder, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const data = artifacts.weightData;
      const bytes = new Uint8Array(data instanceof ArrayBuffer ? data : tf.io.concatenateArrayBuffers(data!));
      const cut = Math.floor(bytes.byteLength / 8) * 4;
      await writeFile(path.join(folder, 'group1-shard1of2.bin'), bytes.subarray(0, cut));
      await writeFile(path.join(folder, 'group1-shard2of2.bin'), bytes.subarray(cut));
      const json = {
        format: 'layers-model',
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: ['group1-shard1of2.bin', 'group1-shard2of2.bin'], weights: artifacts.weightSpecs }],
      };
      await writeFile(path.join(folder, 'model.json'), JSON.stringify(json));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return path.join(folder, 'model.json');
}

function sequentialModel(options: { inputs?: number; units?: number; activation?: 'softmax' | 'sigmoid' | 'linear' } = {}): tf.Sequential {
  const model = tf.sequential();
  model.add(tf.layers.dense({ inputShape: [options.inputs ?? 10], units: 12, activation: 'relu' }));
  model.add(tf.layers.dropout({ rate: 0.1 }));
  model.add(tf.layers.dense({ units: 6, activation: 'tanh' }));
  model.add(tf.layers.dense({ units: options.units ?? 2, activation: options.activation ?? 'linear' }));
  return model;
}

function predict(model: tf.LayersModel, x: tf.Tensor): Float32Array {
  return tf.tidy(() => (model.predict(x) as tf.Tensor).dataSync() as Float32Array);
}

/** A task's spec after a trip through JSON, as participants receive it over socket.io. */
function overTheWire(spec: ModelSpec): ModelSpec {
  return JSON.parse(JSON.stringify(spec)) as ModelSpec;
}

describe('a task model from model.json', () => {
  before(async () => {
    await initNodeBackend();
    dir = await mkdtemp(path.join(tmpdir(), 'fl-custom-model-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loads with its weights, and buildModel rebuilds the same model from the spec', async () => {
    const original = sequentialModel();
    const file = await saveModel(original, 'sequential');
    const parts = await customModel(file, PENGUINS_INPUT, CLASSES);
    assert.equal(parts.spec.architecture, 'custom');
    assert.deepEqual(parts.spec.inputShape, [10]);
    assert.equal(parts.spec.numClasses, 2);
    assert.deepEqual(parts.weightShapes, weightShapes(original));
    assert.deepEqual(parts.initialWeights, await readWeights(original), 'the initial weights are the model.json weights');

    const rebuilt = buildModel(overTheWire(parts.spec));
    assert.deepEqual(
      weightShapes(rebuilt).map((w) => w.shape),
      weightShapes(original).map((w) => w.shape),
    );
    writeWeights(rebuilt, parts.initialWeights);
    const x = tf.randomNormal([5, 10], 0, 1, 'float32', 3);
    const expected = predict(original, x);
    const actual = predict(rebuilt, x);
    for (let i = 0; i < expected.length; i++)
      assert.ok(Math.abs(actual[i]! - expected[i]!) < 1e-5, `output ${i}: ${actual[i]} vs ${expected[i]}`);

    // The run's model files (what the coordinator saves and serves) load with tf.loadLayersModel and predict the same.
    const serializer = new ModelSerializer(parts.spec);
    const files = await serializer.toFiles(parts.initialWeights);
    serializer.dispose();
    const json = JSON.parse(files.modelJson);
    const downloaded = await tf.loadLayersModel(
      tf.io.fromMemory({
        modelTopology: json.modelTopology,
        weightSpecs: json.weightsManifest[0].weights,
        weightData: files.weightsBin.slice().buffer,
      }),
    );
    const fromFiles = predict(downloaded, x);
    for (let i = 0; i < expected.length; i++)
      assert.ok(Math.abs(fromFiles[i]! - expected[i]!) < 1e-5, `saved model output ${i}: ${fromFiles[i]} vs ${expected[i]}`);
    downloaded.dispose();
    x.dispose();
    rebuilt.dispose();
    original.dispose();
  });

  it('a functional model works too, and trains and evaluates like a built-in one', async () => {
    const input = tf.input({ shape: [10] });
    const hidden = tf.layers.dense({ units: 8, activation: 'relu' }).apply(input) as tf.SymbolicTensor;
    const output = tf.layers.dense({ units: 2 }).apply(hidden) as tf.SymbolicTensor;
    const original = tf.model({ inputs: input, outputs: output });
    const parts = await customModel(await saveModel(original, 'functional'), PENGUINS_INPUT, CLASSES);
    const spec = overTheWire(parts.spec);
    const rebuilt = buildModel(spec);
    writeWeights(rebuilt, parts.initialWeights);
    const x = tf.randomNormal([4, 10], 0, 1, 'float32', 5);
    assert.deepEqual(predict(rebuilt, x), predict(original, x));
    x.dispose();
    rebuilt.dispose();
    original.dispose();

    // A separable toy set: label 1 when the first input is positive.
    const count = 64;
    const values = new Float32Array(count * 10);
    const labels = new Uint8Array(count);
    for (let i = 0; i < count; i++) {
      values[i * 10] = i % 2 === 0 ? 1 : -1;
      labels[i] = i % 2 === 0 ? 1 : 0;
    }
    const data = { count, features: 10, numClasses: 2, values, labels };
    const trainer = new LocalTrainer(spec, data);
    const { update } = await trainer.train(parts.initialWeights, { epochs: 20, batchSize: 16, learningRate: 0.5 });
    trainer.dispose();
    const trained = parts.initialWeights.map((w, i) => w + update[i]!);
    const evaluator = new TestSetEvaluator(spec, data);
    const before = await evaluator.evaluate(parts.initialWeights);
    const after = await evaluator.evaluate(trained);
    evaluator.dispose();
    assert.ok(after.loss < before.loss, `loss ${before.loss} -> ${after.loss}`);
    assert.equal(after.accuracy, 1);
  });

  it('a task file with "modelJson" loads the custom model through loadTask', async () => {
    const original = sequentialModel();
    await saveModel(original, 'task/model');
    const taskDir = path.join(dir, 'task');
    const csv =
      'Species,Island,Beak Length (mm),Beak Depth (mm),Flipper Length (mm),Body Mass (g),Sex\nAdelie,Dream,39,18,190,3700,MALE\nGentoo,Biscoe,46,14,215,4800,FEMALE\n';
    await writeFile(path.join(taskDir, 'test.csv'), csv);
    const text = JSON.stringify({
      name: 'custom',
      model: { modelJson: './model/model.json' },
      input: PENGUINS_INPUT,
      classes: CLASSES,
      data: { test: './test.csv' },
    });
    const task = await loadTask({ task: parseTaskFile(text, path.join(taskDir, 'task.json')), architecture: 'mlp', seed: 1 });
    assert.equal(task.spec.architecture, 'custom');
    assert.deepEqual(task.initialWeights, await readWeights(original));
    assert.equal(task.test.count, 2);
    assert.equal(task.demoData, undefined, 'no train file: nothing served');
    assert.equal(task.audit, undefined, 'no training data on the coordinator: no audit');
    original.dispose();
  });

  const refusals: [string, () => tf.LayersModel, RegExp][] = [
    [
      'a softmax output',
      () => sequentialModel({ activation: 'softmax' }),
      /the last layer \(.*\) applies softmax: the model must output logits/,
    ],
    ['a sigmoid output', () => sequentialModel({ activation: 'sigmoid' }), /applies sigmoid: the model must output logits/],
    [
      'the wrong input size',
      () => sequentialModel({ inputs: 7 }),
      /the model's input shape is \[null, 7\], the task's input is 10 values per example \(see "input"\)/,
    ],
    [
      'the wrong number of outputs',
      () => sequentialModel({ units: 3 }),
      /the model's output shape is \[null, 3\], the task names 2 classes \(see "classes"\): the last layer needs 2 units/,
    ],
  ];
  for (const [what, make, expected] of refusals) {
    it(`refuses ${what}, naming the file`, async () => {
      const model = make();
      const file = await saveModel(model, what.replaceAll(' ', '-'));
      model.dispose();
      await assert.rejects(customModel(file, PENGUINS_INPUT, CLASSES), (error: unknown) => {
        assert.ok(error instanceof TaskLoadError);
        assert.ok(error.message.includes(path.join(what.replaceAll(' ', '-'), 'model.json')), error.message);
        assert.match(error.message, expected);
        return true;
      });
    });
  }

  it('refuses files that are not a loadable layers model', async () => {
    const bad = path.join(dir, 'bad');
    await mkdir(bad, { recursive: true });
    const write = async (name: string, text: string) => {
      await writeFile(path.join(bad, name), text);
      return path.join(bad, name);
    };
    await assert.rejects(
      loadLayersModelFile(path.join(bad, 'missing.json')),
      /cannot read the task's model \(model\.modelJson\) .*missing\.json: .*ENOENT/,
    );
    await assert.rejects(loadLayersModelFile(await write('text.json', 'not json')), /cannot read the task's model .*text\.json: .*JSON/);
    await assert.rejects(
      loadLayersModelFile(await write('graph.json', '{"format":"graph-model","modelTopology":{},"weightsManifest":[]}')),
      /graph\.json: is a tfjs graph model; a task needs a layers model/,
    );
    await assert.rejects(
      loadLayersModelFile(await write('notopology.json', '{"weightsManifest":[]}')),
      /notopology\.json: has no modelTopology/,
    );
    await assert.rejects(
      loadLayersModelFile(await write('noweights.json', '{"modelTopology":{}}')),
      /noweights\.json: has no weightsManifest/,
    );
    await assert.rejects(
      loadLayersModelFile(await write('badgroup.json', '{"modelTopology":{},"weightsManifest":[{"paths":"x.bin"}]}')),
      /badgroup\.json: weightsManifest\[0\] needs "paths" and "weights" arrays/,
    );
    await assert.rejects(
      loadLayersModelFile(await write('nobin.json', '{"modelTopology":{},"weightsManifest":[{"paths":["gone.bin"],"weights":[]}]}')),
      /nobin\.json: cannot read the weight file .*gone\.bin \(weightsManifest\[0\]\.paths\)/,
    );
    // A real model whose weight file is cut short, or carries extra bytes: refused, naming the file.
    const model = sequentialModel();
    const file = await saveModel(model, 'truncated');
    model.dispose();
    await writeFile(path.join(dir, 'truncated', 'group1-shard2of2.bin'), new Uint8Array(4));
    await assert.rejects(
      loadLayersModelFile(file),
      /truncated\/model\.json: the weight files hold \d+ bytes, the weightsManifest describes \d+/,
    );
  });

  it('never reads a weight file outside the model folder, nor bytes the manifest does not describe', async () => {
    // A secret next to the model's folder: a manifest naming it would put its bytes into the initial model.
    const secret = path.join(dir, 'secret.txt');
    await writeFile(secret, 'TOPSECRET-admin-token');
    const model = sequentialModel();
    const file = await saveModel(model, 'escape');
    model.dispose();
    const json = JSON.parse(await readFile(file, 'utf8')) as { weightsManifest: { paths: string[] }[] };
    for (const outside of ['../secret.txt', secret, 'sub/../../secret.txt']) {
      json.weightsManifest[0]!.paths = [outside, 'group1-shard2of2.bin'];
      await writeFile(file, JSON.stringify(json));
      await assert.rejects(
        loadLayersModelFile(file),
        /outside the model's folder: weight files must sit next to model\.json or below it/,
        outside,
      );
    }
    // Extra bytes after the last weight (tfjs would ignore them) are refused too.
    json.weightsManifest[0]!.paths = ['group1-shard1of2.bin', 'group1-shard2of2.bin', 'extra.bin'];
    await writeFile(file, JSON.stringify(json));
    await writeFile(path.join(dir, 'escape', 'extra.bin'), 'TOPSECRET');
    await assert.rejects(loadLayersModelFile(file), /the weight files hold \d+ bytes, the weightsManifest describes \d+/);
  });
});
