import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { customModel, TaskLoadError } from '../../coordinator/task/load-task.ts';
import { parseTaskFile, TaskFileError } from '../../coordinator/task/task-file.ts';
import { initNodeBackend } from '../../coordinator/tf-node.ts';
import { FedAvg } from '../../core/aggregation/fedavg.ts';
import { CoordinateMedian } from '../../core/aggregation/robust.ts';
import type { Dataset } from '../../core/data/dataset.ts';
import type { TabularInput } from '../../core/data/schema.ts';
import { buildModel } from '../../core/model/architectures.ts';
import {
  gatherFrozen,
  gatherTrainable,
  joinWeights,
  trainableLayout,
  weightsContentHash,
  withTrainable,
} from '../../core/model/fine-tune.ts';
import { ParticipantWeights, type FrozenWeightsStore } from '../../core/model/fine-tune-weights.ts';
import { FineTuneStrategy } from '../../core/model/fine-tune-strategy.ts';
import { readWeights } from '../../core/model/weights.ts';
import { DpSgdTrainer } from '../../core/privacy/dp-sgd.ts';
import { ErrorCode, ProtocolError } from '../../core/protocol/errors.ts';
import type { TaskSummary, WeightShape } from '../../core/protocol/messages.ts';
import { SeededRandom } from '../../core/random/prng.ts';
import { LocalTrainer } from '../../core/training/local-trainer.ts';
import { encodeFrame, FrameKind } from '../../core/wire/frame.ts';
import { FileFrozenWeightsStore } from '../../node/participant/frozen-file-store.ts';

const SHAPES: WeightShape[] = [
  { name: 'a/kernel', shape: [2, 3] },
  { name: 'a/bias', shape: [3] },
  { name: 'b/kernel', shape: [3, 2] },
  { name: 'b/bias', shape: [2] },
];
const INPUT: TabularInput = {
  kind: 'tabular',
  labelColumn: 'y',
  features: [
    { name: 'f1', type: 'numeric' },
    { name: 'f2', type: 'numeric' },
    { name: 'f3', type: 'numeric' },
    { name: 'f4', type: 'numeric' },
  ],
};

describe('fine-tuning: trainable and frozen parts of the flat weights', () => {
  it('gathers, joins and replaces the trainable values in order; the frozen ones are untouched', () => {
    const layout = trainableLayout(SHAPES, [1, 2]);
    assert.deepEqual(layout, { fullCount: 17, trainableCount: 9, segments: [[6, 15]] });
    const full = Float32Array.from({ length: 17 }, (_, i) => i + 0.5);
    assert.deepEqual(
      [...gatherTrainable(full, layout)],
      [6, 7, 8, 9, 10, 11, 12, 13, 14].map((i) => i + 0.5),
    );
    assert.deepEqual(
      [...gatherFrozen(full, layout)],
      [0, 1, 2, 3, 4, 5, 15, 16].map((i) => i + 0.5),
    );
    assert.deepEqual(joinWeights(gatherTrainable(full, layout), gatherFrozen(full, layout), layout), full);
    const replaced = withTrainable(full, new Float32Array(9).fill(-1), layout);
    assert.deepEqual(gatherFrozen(replaced, layout), gatherFrozen(full, layout));
    assert.ok(gatherTrainable(replaced, layout).every((v) => v === -1));
    // Separate tensors that sit apart in the flat weights are separate segments.
    assert.deepEqual(trainableLayout(SHAPES, [0, 3]).segments, [
      [0, 6],
      [15, 17],
    ]);
    assert.throws(() => trainableLayout(SHAPES, [4]), /not one of the model's 4 weights/);
    assert.throws(() => gatherTrainable(new Float32Array(3), layout), /got 3 values, expected 17/);
  });

  for (const inner of [() => new FedAvg(), () => new CoordinateMedian()]) {
    it(`${inner().name} inside FineTuneStrategy aggregates only the trainable values and keeps the frozen ones bit-identical`, () => {
      const layout = trainableLayout(SHAPES, [2, 3]);
      const strategy = new FineTuneStrategy(inner(), layout);
      // Frozen values that float arithmetic would not give back exactly (x + 0 · anything is x, but a mean may not be).
      const global = Float32Array.from({ length: 17 }, (_, i) => Math.fround(Math.PI * (i + 1) * 1e-3));
      const round = strategy.beginRound({ round: 1, globalWeights: global });
      const updates = [0.3, 0.1, 0.2].map((v) => new Float32Array(layout.trainableCount).fill(v));
      for (const [i, update] of updates.entries()) round.add({ participantId: `p${i}`, numExamples: 10 * (i + 1), update });
      const next = round.finish()!;
      assert.equal(next.length, 17);
      assert.deepEqual(new Uint8Array(gatherFrozen(next, layout).buffer), new Uint8Array(gatherFrozen(global, layout).buffer));
      const change = gatherTrainable(next, layout).map((v, i) => v - gatherTrainable(global, layout)[i]!);
      const expected = inner().name === 'fedavg' ? (0.3 * 10 + 0.1 * 20 + 0.2 * 30) / 60 : 0.2;
      for (const c of change) assert.ok(Math.abs(c - expected) < 1e-6, `change ${c}, expected ${expected}`);
      assert.throws(
        () =>
          strategy
            .beginRound({ round: 2, globalWeights: global })
            .add({ participantId: 'x', numExamples: 1, update: new Float32Array(17) }),
        (error: unknown) =>
          error instanceof ProtocolError && error.code === ErrorCode.WrongLength && /its 8 trainable values/.test(error.message),
      );
    });
  }
});

describe('fine-tuning: local training moves only the trainable layers', () => {
  const data: Dataset = {
    count: 32,
    features: 4,
    numClasses: 2,
    values: Uint8Array.from({ length: 128 }, (_, i) => (i * 37) % 256),
    labels: Uint8Array.from({ length: 32 }, (_, i) => i % 2),
  };
  let spec: ReturnType<typeof frozenFirstLayer>;

  /** A custom model whose first dense layer is marked trainable: false, as a task's topology carries it. */
  function frozenFirstLayer() {
    const model = tf.sequential();
    model.add(tf.layers.dense({ name: 'base', inputShape: [4], units: 5, activation: 'relu', trainable: false }));
    model.add(tf.layers.dense({ name: 'top', units: 2 }));
    const topology = JSON.parse(JSON.stringify({ className: model.getClassName(), config: model.getConfig() }));
    model.dispose();
    return { architecture: 'custom' as const, inputShape: [4], numClasses: 2, topology };
  }

  before(async () => {
    await initNodeBackend();
    spec = frozenFirstLayer();
  });

  it('plain SGD leaves the frozen layer exactly where it was (a delta of exactly zero)', async () => {
    const model = buildModel(spec);
    const start = await readWeights(model);
    const layout = trainableLayout(
      model.weights.map((w) => ({ name: w.originalName, shape: w.shape as number[] })),
      model.weights.flatMap((w, i) => (model.trainableWeights.includes(w) ? [i] : [])),
    );
    model.dispose();
    assert.equal(layout.trainableCount, 12, 'top: 5×2 + 2');
    const trainer = new LocalTrainer(spec, data);
    const result = await trainer.train(start, { epochs: 2, batchSize: 8, learningRate: 0.5 });
    trainer.dispose();
    assert.ok(
      gatherFrozen(result.update, layout).every((v) => Object.is(v, 0)),
      'the frozen delta is exactly 0',
    );
    assert.ok(
      gatherTrainable(result.update, layout).some((v) => v !== 0),
      'the trainable layer moved',
    );
  });

  it('DP-SGD clips and noises the trainable weights only: the frozen delta is exactly zero', async () => {
    const model = buildModel(spec);
    const start = await readWeights(model);
    const frozenCount = model.nonTrainableWeights.reduce((n, w) => n + w.shape.reduce((a: number, b) => a * (b ?? 1), 1), 0);
    model.dispose();
    const trainer = new DpSgdTrainer(spec, data, {
      clipNorm: 1,
      noiseMultiplier: 1,
      expectedBatchSize: 8,
      samplingSource: new SeededRandom(1),
      noiseSource: new SeededRandom(2),
    });
    const result = await trainer.train(start, { epochs: 1, batchSize: 8, learningRate: 0.5 });
    trainer.dispose();
    // tfjs lists trainable weights first: the frozen layer's values are the last ones.
    const frozen = result.update.subarray(result.update.length - frozenCount);
    assert.equal(frozenCount, 25);
    assert.ok(frozen.every((v) => Object.is(v, 0)));
    assert.ok(
      result.update.subarray(0, result.update.length - frozenCount).every((v) => v !== 0),
      'noise reaches every trainable value',
    );
  });
});

describe('fine-tuning: a task names its trainable layers', () => {
  let dir: string;

  async function saveModel(name: string, frozen: readonly string[] = []): Promise<string> {
    const model = tf.sequential();
    model.add(
      tf.layers.dense({ name: `${name}_base`, inputShape: [4], units: 3, activation: 'relu', trainable: !frozen.includes('base') }),
    );
    model.add(tf.layers.dropout({ name: `${name}_drop`, rate: 0.1 }));
    model.add(tf.layers.dense({ name: `${name}_top`, units: 2, trainable: !frozen.includes('top') }));
    const folder = path.join(dir, name);
    await mkdir(folder, { recursive: true });
    await model.save(
      tf.io.withSaveHandler(async (artifacts) => {
        const data = artifacts.weightData!;
        await writeFile(
          path.join(folder, 'w.bin'),
          new Uint8Array(data instanceof ArrayBuffer ? data : tf.io.concatenateArrayBuffers(data)),
        );
        const json = {
          format: 'layers-model',
          modelTopology: artifacts.modelTopology,
          weightsManifest: [{ paths: ['w.bin'], weights: artifacts.weightSpecs }],
        };
        await writeFile(path.join(folder, 'model.json'), JSON.stringify(json));
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    model.dispose();
    return path.join(folder, 'model.json');
  }

  const loadFails = async (file: string, trainable: readonly string[] | undefined, pattern: RegExp) =>
    assert.rejects(customModel(file, INPUT, ['no', 'yes'], trainable), (error: unknown) => {
      assert.ok(error instanceof TaskLoadError);
      assert.match(error.message, pattern);
      return true;
    });

  before(async () => {
    await initNodeBackend();
    dir = await mkdtemp(path.join(tmpdir(), 'fl-fine-tune-unit-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('from fineTune.trainable or from the model.json marks: the same split, carried by the topology', async () => {
    const named = await customModel(await saveModel('named'), INPUT, ['no', 'yes'], ['named_top']);
    const marked = await customModel(await saveModel('marked', ['base']), INPUT, ['no', 'yes']);
    for (const parts of [named, marked]) {
      assert.deepEqual(parts.fineTune?.summary.trainableParamCount, 8, 'top: 3×2 + 2');
      assert.deepEqual(parts.fineTune.layout.segments, [[0, 8]]);
      // A participant rebuilds the same split from the spec alone.
      const rebuilt = buildModel(JSON.parse(JSON.stringify(parts.spec)));
      assert.deepEqual(
        rebuilt.trainableWeights.map((w) => w.shape),
        [[3, 2], [2]],
      );
      rebuilt.dispose();
    }
    const everything = await customModel(await saveModel('all'), INPUT, ['no', 'yes']);
    assert.equal(everything.fineTune, undefined, 'a model that trains every layer is not fine-tuned');
  });

  it('refuses unknown layer names, nothing to train, and the two forms disagreeing', async () => {
    const plain = await saveModel('plain');
    await loadFails(
      plain,
      ['plain_top', 'dense_9'],
      /fineTune\.trainable names "dense_9", not a layer of the model; its layers are "plain_base", "plain_drop", "plain_top"/,
    );
    await loadFails(plain, ['plain_drop'], /names only layers without weights \(plain_drop\): nothing would be trained/);
    await loadFails(await saveModel('none', ['base', 'top']), undefined, /every layer with weights is marked "trainable": false/);
    await loadFails(
      await saveModel('disagree', ['top']),
      ['disagree_top'],
      /names "disagree_top", which model.json marks "trainable": false; the two disagree/,
    );
  });

  it('the task file: fineTune needs a model.json and a list of layer names', () => {
    const task = (extra: object) =>
      JSON.stringify({
        name: 't',
        input: INPUT,
        classes: ['no', 'yes'],
        data: { test: './test.csv' },
        ...extra,
      });
    const fails = (text: string, pattern: RegExp) =>
      assert.throws(
        () => parseTaskFile(text, 'task.json'),
        (error: unknown) => error instanceof TaskFileError && pattern.test(error.message),
      );
    fails(task({ model: 'mlp', fineTune: { trainable: ['x'] } }), /fineTune needs a pretrained model/);
    fails(task({ model: { modelJson: './m.json' }, fineTune: { trainable: [] } }), /fineTune\.trainable must be a non-empty array/);
    fails(task({ model: { modelJson: './m.json' }, fineTune: { trainable: ['a', 'a'] } }), /fineTune\.trainable\[1\] names "a" twice/);
    fails(task({ model: { modelJson: './m.json' }, fineTune: { layers: ['a'] } }), /fineTune\.layers/);
    assert.deepEqual(parseTaskFile(task({ model: { modelJson: './m.json' }, fineTune: { trainable: ['a'] } }), 'task.json').fineTune, {
      trainable: ['a'],
    });
  });
});

describe('fine-tuning: a participant gets the frozen weights once and checks them', () => {
  const frozenValues = Float32Array.from({ length: 8 }, (_, i) => i / 7);
  const trainableValues = Float32Array.from({ length: 9 }, (_, i) => -i);

  async function fineTuneTask(): Promise<TaskSummary> {
    return {
      name: 't',
      description: '',
      model: { architecture: 'custom', inputShape: [2], numClasses: 2 },
      weightShapes: SHAPES,
      paramCount: 17,
      input: INPUT,
      classes: ['no', 'yes'],
      fineTune: { trainableWeights: [1, 2], trainableParamCount: 9, frozenHash: await weightsContentHash(frozenValues) },
    };
  }

  class Store implements FrozenWeightsStore {
    saved = new Map<string, Float32Array>();
    async load(hash: string) {
      return this.saved.get(hash);
    }
    async save(hash: string, values: Float32Array) {
      this.saved.set(hash, values.slice());
    }
  }

  it('downloads once, completes each round from the trainable frame, sends only the trainable values', async () => {
    const task = await fineTuneTask();
    const store = new Store();
    let downloads = 0;
    const weights = new ParticipantWeights(store, async () => {
      downloads++;
      return encodeFrame(FrameKind.Weights, frozenValues);
    });
    assert.deepEqual(await weights.prepare(task), { kind: 'download', bytes: 16 + 4 * 8 });
    assert.deepEqual(await weights.prepare(task), { kind: 'download', bytes: 16 + 4 * 8 }, 'the same work, not a second download');
    const layout = trainableLayout(SHAPES, [1, 2]);
    const full = await weights.roundWeights(task, {
      version: 3,
      weights: encodeFrame(FrameKind.Weights, trainableValues),
      frozenHash: task.fineTune!.frozenHash,
    });
    assert.deepEqual(full, joinWeights(trainableValues, frozenValues, layout));
    assert.deepEqual(await weights.uploadValues(task, full), trainableValues);
    await assert.rejects(
      weights.roundWeights(task, {
        version: 3,
        weights: encodeFrame(FrameKind.Weights, new Float32Array(17)),
        frozenHash: task.fineTune!.frozenHash,
      }),
      (error: unknown) => error instanceof ProtocolError && error.code === ErrorCode.WrongLength,
    );
    assert.equal(downloads, 1);
    // A returning session: from the store, nothing downloaded.
    const again = new ParticipantWeights(store, () => Promise.reject(new Error('must not download')));
    assert.deepEqual(await again.prepare(task), { kind: 'cache' });
  });

  it('a cached copy that does not match its hash is downloaded again; a download that does not match is refused', async () => {
    const task = await fineTuneTask();
    const store = new Store();
    store.saved.set(task.fineTune!.frozenHash, new Float32Array(8).fill(1));
    const repaired = new ParticipantWeights(store, async () => encodeFrame(FrameKind.Weights, frozenValues));
    assert.equal((await repaired.prepare(task))?.kind, 'download');
    assert.deepEqual(store.saved.get(task.fineTune!.frozenHash), frozenValues);
    const lying = new ParticipantWeights(new Store(), async () => encodeFrame(FrameKind.Weights, new Float32Array(8)));
    await assert.rejects(lying.prepare(task), /do not match their hash/);
  });

  it('the Node participant keeps them in its state folder', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'fl-frozen-store-'));
    try {
      const store = new FileFrozenWeightsStore(dir);
      const hash = await weightsContentHash(frozenValues);
      assert.equal(await store.load(hash), undefined);
      await store.save(hash, frozenValues);
      assert.deepEqual(await new FileFrozenWeightsStore(dir).load(hash), frozenValues);
      await assert.rejects(store.save('../x', frozenValues), /not a SHA-256 hash/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
