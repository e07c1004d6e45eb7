import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';
import { TestSetEvaluator } from '../coordinator/evaluator.ts';
import { loadMnistDemo } from '../coordinator/task/demo-data.ts';
import { initNodeBackend } from '../coordinator/tf-node.ts';
import { FedAvg } from '../core/aggregation/fedavg.ts';
import { ErrorFeedback } from '../core/compression/error-feedback.ts';
import { RoundDecoder } from '../core/compression/round-decoder.ts';
import { encodeFloat16, frameBytes } from '../core/compression/update-codec.ts';
import { shardIndices, subset } from '../core/data/dataset.ts';
import { buildModel } from '../core/model/architectures.ts';
import { readWeights } from '../core/model/weights.ts';
import type {
  ArchitectureName,
  FitConfig,
  ModelEncodingName,
  ModelSpec,
  UpdateCompression,
  UpdateEncodingName,
} from '../core/protocol/messages.ts';
import { SeededRandom } from '../core/random/prng.ts';
import { LocalTrainer } from '../core/training/local-trainer.ts';
import { FrameKind } from '../core/wire/frame.ts';

const COMMAND = 'flock /tmp/heavy.lock npx tsx bench/compression.ts';
const USAGE = `Usage: ${COMMAND} [options]

Compressed plain updates (docs/compression.md) on the MNIST demo: P participants
(IID shards of the 8,000 demo training digits, or --train N of them), FedAvg,
every participant every round, 1 local epoch, batch 32, learning rate 0.1 (the
demo defaults), the same initial model for every variant. Each round runs the
participants' real code path after training: ErrorFeedback.encode (clipping
and noise are off here), then the coordinator's RoundDecoder.decode and the
round's aggregator (int4: rotated sum, rotated back once), on the 2,000 held-out
test digits. Variants: float32, float16, int8, int8 without error feedback,
int4 (rotation), and float32 again. Accuracy is reported after the rounds in --at.

Paired and deterministic: every variant starts from the same initial model,
the same shards, and the same batch order for participant k in round r (tfjs
shuffles with Math.random, which is replaced by a generator seeded from
(--seed, r, k) while each participant trains); the stochastic rounding of
participant k in round r draws from a generator seeded the same way. So two
runs of one variant give the same accuracies (float32-again checks it), and
variants differ only by their encoding.

  --models LIST        mlp,cnn (default mlp,cnn). The cnn (1,663,370 parameters)
                       trains on the wasm backend at ~14 ms per example on one
                       core here, so its federation is smaller, stated in its
                       table: --cnn-participants, --cnn-train, --cnn-test,
                       --cnn-rounds, --cnn-at.
  --cnn-participants P cnn participants (default 3)
  --cnn-train N        cnn training digits shared out (default 300: 100 each)
  --cnn-test N         cnn test digits, the first N of the 2,000 (default 500)
  --cnn-rounds R       cnn rounds (default 10)
  --cnn-at LIST        cnn rounds to report accuracy at (default 5,10)
  --participants P     (default 5)
  --rounds R           (default 20)
  --at LIST            rounds to report accuracy at (default 5,10,20)
  --train N            demo training digits shared out (default all 8,000)
  --variants LIST      float32,float16,int8,int8-no-ef,int4,float32-again (default all)
  --seed N             seed of the initial model, the shards, the batch order and
                       the rounding draws (default 1)
  --learning-rate X    local SGD learning rate of the mlp (default 0.1)
  --cnn-learning-rate X  local SGD learning rate of the cnn (default 0.1)
  --help
`;

interface Variant {
  readonly name: string;
  readonly encoding: UpdateEncodingName;
  readonly errorFeedback: boolean;
}
const VARIANTS: readonly Variant[] = [
  { name: 'float32', encoding: 'float32', errorFeedback: true },
  { name: 'float16', encoding: 'float16', errorFeedback: true },
  { name: 'int8', encoding: 'int8', errorFeedback: true },
  { name: 'int8-no-ef', encoding: 'int8', errorFeedback: false },
  { name: 'int4', encoding: 'int4', errorFeedback: true },
  { name: 'float32-again', encoding: 'float32', errorFeedback: true },
];

interface Result {
  readonly model: ArchitectureName;
  readonly variant: string;
  readonly bytesUp: number;
  /** The model frame each participant downloads per round, as float32 and as float16 (--model-encoding); the float32 one is also the float32 update's size. */
  readonly bytesDown: Record<ModelEncodingName, number>;
  readonly accuracyAt: Record<number, number>;
  readonly encodeMsPerUpdate: number;
  readonly decodeMsPerUpdate: number;
  readonly wallSeconds: number;
  /** SHA-256 of the final weights' bytes (first 12 hex digits): two runs of one variant must match bit for bit. */
  readonly finalWeightsDigest: string;
}

function parseOptions() {
  const { values } = parseArgs({
    options: {
      models: { type: 'string', default: 'mlp,cnn' },
      participants: { type: 'string', default: '5' },
      rounds: { type: 'string', default: '20' },
      at: { type: 'string', default: '5,10,20' },
      train: { type: 'string' },
      variants: { type: 'string', default: VARIANTS.map((v) => v.name).join(',') },
      seed: { type: 'string', default: '1' },
      'learning-rate': { type: 'string', default: '0.1' },
      'cnn-learning-rate': { type: 'string', default: '0.1' },
      'cnn-participants': { type: 'string', default: '3' },
      'cnn-train': { type: 'string', default: '300' },
      'cnn-test': { type: 'string', default: '500' },
      'cnn-rounds': { type: 'string', default: '10' },
      'cnn-at': { type: 'string', default: '5,10' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return 'help' as const;
  const variants = values.variants.split(',').map((name) => {
    const v = VARIANTS.find((x) => x.name === name);
    if (!v) throw new Error(`unknown variant ${name}`);
    return v;
  });
  const rounds = Number(values.rounds);
  const cnnRounds = Number(values['cnn-rounds']);
  const list = (text: string, max: number) =>
    text
      .split(',')
      .map(Number)
      .filter((r) => r >= 1 && r <= max);
  return {
    models: values.models.split(',') as ArchitectureName[],
    participants: Number(values.participants),
    rounds,
    at: list(values.at, rounds),
    train: values.train === undefined ? undefined : Number(values.train),
    learningRate: Number(values['learning-rate']),
    cnn: {
      participants: Number(values['cnn-participants']),
      train: Number(values['cnn-train']),
      test: Number(values['cnn-test']),
      rounds: cnnRounds,
      at: list(values['cnn-at'], cnnRounds),
      learningRate: Number(values['cnn-learning-rate']),
    },
    variants,
    seed: Number(values.seed),
  };
}

/** A federation every variant runs identically but for the encoding. */
interface Federation {
  readonly spec: ModelSpec;
  readonly initial: Float32Array;
  readonly trainers: readonly UpdateSource[];
  readonly evaluator: TestSetEvaluator;
  readonly learningRate: number;
  readonly rounds: number;
  readonly at: readonly number[];
  readonly seed: number;
}

/**
 * The seed of one (run seed, round, participant, purpose): the same in every
 * variant, whatever other variants drew. Packed into 32 bits (SeededRandom's
 * splitmix start decorrelates neighbouring seeds).
 */
function pairedSeed(seed: number, round: number, participant: number, purpose: 'batches' | 'rounding'): number {
  if (!(seed >= 0 && seed < 128 && round < 65536 && participant < 256)) {
    throw new RangeError(`paired seeds need --seed < 128, rounds < 65536, participants < 256`);
  }
  return ((seed << 25) | (round << 9) | (participant << 1) | (purpose === 'batches' ? 0 : 1)) >>> 0;
}

/**
 * Runs `train` with Math.random replaced by a seeded generator: tfjs draws
 * each epoch's batch order from Math.random (tf.util.createShuffledIndices),
 * and nothing else in this process uses it while a participant trains.
 */
async function withSeededMathRandom<T>(seed: number, train: () => Promise<T>): Promise<T> {
  const original = Math.random;
  const source = new SeededRandom(seed);
  Math.random = () => source.next();
  try {
    return await train();
  } finally {
    Math.random = original;
  }
}

async function runVariant(federation: Federation, variant: Variant): Promise<Result> {
  const { spec, initial, trainers, evaluator, rounds, at, seed } = federation;
  const started = performance.now();
  const fit: FitConfig = { epochs: 1, batchSize: 32, learningRate: federation.learningRate };
  const strategy = new FedAvg();
  const feedback = trainers.map(() => new ErrorFeedback());
  const seeds = new SeededRandom(99);
  let weights: Float32Array = Float32Array.from(initial);
  let encodeMs = 0;
  let decodeMs = 0;
  let updates = 0;
  let bytesUp = 0;
  const accuracyAt: Record<number, number> = {};
  for (let round = 1; round <= rounds; round++) {
    const compression: UpdateCompression | undefined =
      variant.encoding === 'float32'
        ? undefined
        : variant.encoding === 'int4'
          ? { encoding: 'int4', rotationSeed: Math.floor(seeds.next() * 4294967296) }
          : { encoding: variant.encoding };
    const frames: ArrayBuffer[] = [];
    for (let k = 0; k < trainers.length; k++) {
      const { update } = await withSeededMathRandom(pairedSeed(seed, round, k, 'batches'), () => trainers[k]!.train(weights, fit));
      // Seeded here so runs repeat; participants draw from SecureRandom, the same uniform distribution.
      const rounding = new SeededRandom(pairedSeed(seed, round, k, 'rounding'));
      const t0 = performance.now();
      const pending = feedback[k]!.encode(update, compression ?? { encoding: 'float32' }, rounding);
      encodeMs += performance.now() - t0;
      if (variant.errorFeedback) pending.commit();
      frames.push(pending.frame);
      bytesUp = pending.frame.byteLength;
    }
    const decoder = new RoundDecoder(weights.length, compression, strategy);
    const aggregator = decoder.beginRound(strategy, { round, globalWeights: weights });
    for (let k = 0; k < frames.length; k++) {
      const t0 = performance.now();
      const { update, norm } = decoder.decode(frames[k]);
      decodeMs += performance.now() - t0;
      aggregator.add({ participantId: `p${k}`, numExamples: trainers[k]!.numExamples, update, norm });
      updates++;
    }
    // int4: the one rotation back per aggregate is part of the coordinator's decode cost.
    const t0 = performance.now();
    const next = aggregator.finish();
    if (decoder.aggregatesRotated) decodeMs += performance.now() - t0;
    if (!next) throw new Error(`round ${round} aggregated nothing`);
    weights = next;
    if (at.includes(round)) {
      accuracyAt[round] = (await evaluator.evaluate(weights)).accuracy;
      console.error(`  ${spec.architecture} ${variant.name} round ${round}: accuracy ${accuracyAt[round]!.toFixed(4)}`);
    }
  }
  return {
    model: spec.architecture as ArchitectureName,
    variant: variant.name,
    bytesUp,
    bytesDown: { float32: frameBytes('float32', weights.length), float16: encodeFloat16(FrameKind.Weights, weights).frame.byteLength },
    accuracyAt,
    encodeMsPerUpdate: encodeMs / updates,
    decodeMsPerUpdate: decodeMs / updates,
    wallSeconds: (performance.now() - started) / 1000,
    finalWeightsDigest: createHash('sha256')
      .update(new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength))
      .digest('hex')
      .slice(0, 12),
  };
}

async function main(): Promise<void> {
  const options = parseOptions();
  if (options === 'help') {
    console.log(USAGE);
    return;
  }
  const demo = await loadMnistDemo();
  const backend = await initNodeBackend('wasm');
  for (const architecture of options.models) {
    const results: Result[] = [];
    const spec: ModelSpec = { architecture, inputShape: [784], numClasses: 10 };
    const model = buildModel(spec, options.seed);
    const initial = await readWeights(model);
    model.dispose();
    // The cnn runs a smaller federation (usage text): same code path, fewer examples.
    const isCnn = architecture === 'cnn';
    const participants = isCnn ? options.cnn.participants : options.participants;
    const rounds = isCnn ? options.cnn.rounds : options.rounds;
    const at = isCnn ? options.cnn.at : options.at;
    const learningRate = isCnn ? options.cnn.learningRate : options.learningRate;
    const trainCount = isCnn ? options.cnn.train : options.train;
    const first = (n: number) => Array.from({ length: n }, (_, i) => i);
    const train = trainCount === undefined ? demo.train : subset(demo.train, first(trainCount));
    const test = isCnn ? subset(demo.test, first(options.cnn.test)) : demo.test;
    const trainers = Array.from(
      { length: participants },
      (_, k) =>
        new LocalTrainer(
          spec,
          subset(train, shardIndices(train.labels, { index: k, count: participants, skew: 'iid', seed: options.seed })),
        ),
    );
    const evaluator = new TestSetEvaluator(spec, test);
    console.error(
      `${architecture}: ${initial.length} parameters, ${participants} participants, ${train.labels.length} training digits, ${test.labels.length} test digits, ${rounds} rounds, learning rate ${learningRate}, seed ${options.seed}, backend ${backend}`,
    );
    const federation: Federation = { spec, initial, trainers, evaluator, learningRate, rounds, at, seed: options.seed };
    for (const variant of options.variants) results.push(await runVariant(federation, variant));
    for (const t of trainers) t.dispose();
    evaluator.dispose();
    printTable(results, at);
  }
}

/** What a participant hands the encoder each round: its trained update. */
interface UpdateSource {
  readonly numExamples: number;
  train(weights: Float32Array, fit: FitConfig): Promise<{ readonly update: Float32Array }>;
}

function printTable(results: readonly Result[], at: readonly number[]): void {
  if (results.length === 0) return;
  const last = at.at(-1);
  const accuracyColumns = last === undefined ? [] : [...at.map((r) => `acc. @${r} (%)`), `Δ vs float32 @${at.join(' / @')} (points)`];
  const row = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  const lines = [
    row([
      'model',
      'variant',
      'bytes up / participant / round',
      '× float32',
      'bytes down (float32 / float16 model)',
      ...accuracyColumns,
      'encode ms / update',
      'decode ms / update',
      'wall s',
      'final weights (SHA-256)',
    ]),
    row(['---', '---', ...Array.from({ length: 6 + accuracyColumns.length }, () => '---:'), '---']),
  ];
  for (const r of results) {
    // Paired difference to the first float32 run of the same model in this invocation (float32 or float32-again).
    const base = results.find((b) => b.model === r.model && b.variant.startsWith('float32'));
    const signed = (points: number) => `${points > 0 ? '+' : ''}${points.toFixed(2)}`;
    const accuracy =
      last === undefined
        ? []
        : [
            ...at.map((round) => (100 * r.accuracyAt[round]!).toFixed(2)),
            base ? at.map((round) => signed((r.accuracyAt[round]! - base.accuracyAt[round]!) * 100)).join(' / ') : '–',
          ];
    lines.push(
      row([
        r.model,
        r.variant,
        r.bytesUp.toLocaleString('en'),
        (r.bytesUp / r.bytesDown.float32).toFixed(3),
        `${r.bytesDown.float32.toLocaleString('en')} / ${r.bytesDown.float16.toLocaleString('en')}`,
        ...accuracy,
        r.encodeMsPerUpdate.toFixed(2),
        r.decodeMsPerUpdate.toFixed(2),
        r.wallSeconds.toFixed(0),
        r.finalWeightsDigest,
      ]),
    );
  }
  console.log(lines.join('\n'));
}

await main();
