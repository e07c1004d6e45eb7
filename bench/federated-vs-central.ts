import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseConfig } from '../coordinator/config.ts';
import { TestSetEvaluator } from '../coordinator/evaluator.ts';
import { isPositive, isPositiveInt, numberFlag } from '../coordinator/flags.ts';
import { startCoordinator, type Coordinator } from '../coordinator/server.ts';
import { initNodeBackend } from '../coordinator/tf-node.ts';
import { shardIndices, subset, type Dataset, type ShardSkew } from '../core/data/dataset.ts';
import type { ImageInput } from '../core/data/schema.ts';
import { buildModel } from '../core/model/architectures.ts';
import { readWeights } from '../core/model/weights.ts';
import type { ArchitectureName, FitConfig, ModelSpec } from '../core/protocol/messages.ts';
import type { RoundRecord } from '../core/protocol/status.ts';
import { LocalTrainer } from '../core/training/local-trainer.ts';
import { splitIdxPair } from '../node/data/idx-split.ts';
import { readIdxPair } from '../node/data/image-sources.ts';
import { startNodeParticipants, stopNodeParticipants, type NodeParticipant } from '../test/helpers/node-participants.ts';

const COMMAND = 'npx tsx bench/federated-vs-central.ts';
const FASHION = '/usr/share/datasets/fashion-mnist';
const CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
const INPUT: ImageInput = { kind: 'image', shape: [28, 28, 1] };
/** Federated runs stop at 95% of the centralised model's test accuracy. */
const TARGET_FRACTION = 0.95;
/** The issue's target: federated IID within 1.5x the centralised epochs. */
const EPOCH_RATIO_TARGET = 1.5;

const USAGE = `Usage: ${COMMAND} [options]

Federated against centralised training on Fashion-MNIST (Debian's
dataset-fashion-mnist, ${FASHION}): the same model, initial weights, data,
batch size and learning rate.

  data         a seeded subset: --train examples of the 60k train set (pooled
               for the centralised run, shared out to participants for the
               federated ones) and --test examples of t10k (the coordinator's
               test set and the centralised run's).
  centralised  one LocalTrainer (core/training, the participants' own
               training code) on the pooled data, --central-epochs epochs,
               evaluated by the coordinator's TestSetEvaluator after each.
               Its accuracy after the last epoch is "the centralised model's
               accuracy"; the target is ${TARGET_FRACTION} of it, and "central
               epochs" is the first epoch at which it reached the target.
  federated    the real coordinator (coordinator/server.ts, FedAvg, every
               participant every round, --target-accuracy = the target) and
               real participants (core/participant, in this process, tfjs
               wasm), P participants x {iid, label} shards (label: McMahan's
               two label pieces per shard, as ?skew=label), --local-epochs E
               local epochs a round over each shard, so one round = E passes
               over the pooled data = E centralised epochs: the table counts
               federated epochs as rounds x E. At most --max-rounds rounds.

  --participants LIST  participant counts (default 3,10)
  --skews LIST         iid,label (default both)
  --train N            training examples (default 10000)
  --test N             test examples (default 2000)
  --model NAME         mlp, 2nn or cnn (default mlp)
  --batch-size B       (default 32)
  --learning-rate X    (default 0.02)
  --central-epochs E   (default 10)
  --max-rounds R       (default 20)
  --server-lrs LIST    FedAvg server learning rates to run each setup with
                       (--server-learning-rate; default 1, plain FedAvg)
  --local-epochs E     participants' local epochs a round (default 1)
  --local-batch-size B participants' batch size (default --batch-size), or
                       "split": --batch-size / P rounded (at least 1), so the
                       P participants' steps together see one central batch
  --local-learning-rate X  participants' learning rate (default --learning-rate)
  --seed N             initial model, data subset and shard seed (default 1)
  --json FILE          write the raw results as JSON
  --help               show this text
`;

interface Options {
  readonly participants: readonly number[];
  readonly skews: readonly ShardSkew[];
  readonly train: number;
  readonly test: number;
  readonly model: ArchitectureName;
  readonly batchSize: number;
  readonly learningRate: number;
  readonly centralEpochs: number;
  readonly maxRounds: number;
  readonly serverLearningRates: readonly number[];
  readonly localEpochs: number;
  /** A batch size, or 'split': the central batch size divided among the participants. */
  readonly localBatchSize: number | 'split';
  readonly localLearningRate: number;
  readonly seed: number;
  readonly json?: string;
}

interface CentralResult {
  readonly accuracyByEpoch: readonly number[];
  /** Wall-clock ms from the start to the end of each epoch's evaluation. */
  readonly elapsedMsByEpoch: readonly number[];
  readonly finalAccuracy: number;
  readonly target: number;
  /** 1-based; null if never reached (cannot happen for the last epoch's own fraction). */
  readonly epochsToTarget: number | null;
  readonly msToTarget: number | null;
}

interface FederatedResult {
  readonly participants: number;
  readonly skew: ShardSkew;
  readonly serverLearningRate: number;
  readonly localEpochs: number;
  readonly localBatchSize: number;
  readonly localLearningRate: number;
  readonly examplesPerParticipant: readonly number[];
  readonly accuracyByRound: readonly number[];
  /** Wall-clock ms from the participants' start to the end of each round (its evaluation included). */
  readonly elapsedMsByRound: readonly number[];
  readonly roundsToTarget: number | null;
  /** Rounds to target x local epochs: passes over the pooled data, as a centralised epoch is one. */
  readonly epochsToTarget: number | null;
  readonly msToTarget: number | null;
  readonly roundsRun: number;
  readonly doneReason: string | undefined;
  readonly wallMs: number;
}

function fail(message: string): never {
  console.error(`${message}\n\n${USAGE}`);
  process.exit(2);
}

function optionValues(argv: readonly string[]) {
  try {
    return parseArgs({
      args: [...argv],
      strict: true,
      options: {
        participants: { type: 'string' },
        skews: { type: 'string' },
        train: { type: 'string' },
        test: { type: 'string' },
        model: { type: 'string' },
        'batch-size': { type: 'string' },
        'learning-rate': { type: 'string' },
        'central-epochs': { type: 'string' },
        'max-rounds': { type: 'string' },
        'server-lrs': { type: 'string' },
        'local-epochs': { type: 'string' },
        'local-batch-size': { type: 'string' },
        'local-learning-rate': { type: 'string' },
        seed: { type: 'string' },
        json: { type: 'string' },
        help: { type: 'boolean' },
      },
    }).values;
  } catch (error) {
    return fail((error as Error).message);
  }
}

function parseOptions(argv: readonly string[]): Options | 'help' {
  const values = optionValues(argv);
  if (values.help) return 'help';
  const int = (text: string | undefined, flag: string, fallback: number) =>
    numberFlag(text, flag, isPositiveInt, 'a positive integer', fail) ?? fallback;
  const model = values.model ?? 'mlp';
  if (model !== 'mlp' && model !== '2nn' && model !== 'cnn') fail(`--model must be mlp, 2nn or cnn, got ${model}`);
  const train = int(values.train, 'train', 10_000);
  const test = int(values.test, 'test', 2000);
  if (train > 60_000) fail('--train: the Fashion-MNIST train set holds 60,000 images');
  if (test > 10_000) fail('--test: the Fashion-MNIST t10k set holds 10,000 images');
  const batchSize = int(values['batch-size'], 'batch-size', 32);
  const learningRate = numberFlag(values['learning-rate'], 'learning-rate', isPositive, 'a positive number', fail) ?? 0.02;
  return {
    participants: (values.participants ?? '3,10').split(',').map((s) => int(s, 'participants', 0)),
    skews: (values.skews ?? 'iid,label').split(',').map((s): ShardSkew => {
      if (s === 'iid' || s === 'label') return s;
      return fail(`--skews: unknown skew "${s}"`);
    }),
    train,
    test,
    model,
    batchSize,
    learningRate,
    centralEpochs: int(values['central-epochs'], 'central-epochs', 10),
    maxRounds: int(values['max-rounds'], 'max-rounds', 20),
    localEpochs: int(values['local-epochs'], 'local-epochs', 1),
    localBatchSize: values['local-batch-size'] === 'split' ? 'split' : int(values['local-batch-size'], 'local-batch-size', batchSize),
    localLearningRate:
      numberFlag(values['local-learning-rate'], 'local-learning-rate', isPositive, 'a positive number', fail) ?? learningRate,
    serverLearningRates: (values['server-lrs'] ?? '1')
      .split(',')
      .map((s) => numberFlag(s, 'server-lrs', isPositive, 'a list of positive numbers', fail) ?? 1),
    seed: int(values.seed, 'seed', 1),
    json: values.json,
  };
}

/** Writes the seeded train and test subsets as gzipped IDX pairs and a task file pointing at them. */
async function writeTask(dir: string, options: Options): Promise<string> {
  await splitIdxPair(
    path.join(FASHION, 'train-images-idx3-ubyte.gz'),
    path.join(FASHION, 'train-labels-idx1-ubyte.gz'),
    [{ count: options.train, prefix: path.join(dir, 'train') }],
    options.seed,
  );
  await splitIdxPair(
    path.join(FASHION, 't10k-images-idx3-ubyte.gz'),
    path.join(FASHION, 't10k-labels-idx1-ubyte.gz'),
    [{ count: options.test, prefix: path.join(dir, 'test') }],
    options.seed,
  );
  const task = {
    name: 'fashion-bench',
    model: options.model,
    input: INPUT,
    classes: CLASSES,
    data: {
      train: { images: './train-images-idx3-ubyte.gz', labels: './train-labels-idx1-ubyte.gz' },
      test: { images: './test-images-idx3-ubyte.gz', labels: './test-labels-idx1-ubyte.gz' },
    },
  };
  const file = path.join(dir, 'task.json');
  await writeFile(file, JSON.stringify(task));
  return file;
}

/** Centralised: the participants' LocalTrainer on all the data, one epoch at a time, evaluated after each. */
async function runCentral(
  spec: ModelSpec,
  train: Dataset,
  test: Dataset,
  options: Options,
): Promise<Omit<CentralResult, 'target' | 'epochsToTarget' | 'msToTarget'>> {
  const initial = buildModel(spec, options.seed);
  let weights: Float32Array;
  try {
    weights = await readWeights(initial);
  } finally {
    initial.dispose();
  }
  const trainer = new LocalTrainer(spec, train);
  const evaluator = new TestSetEvaluator(spec, test);
  const fit: FitConfig = { epochs: 1, batchSize: options.batchSize, learningRate: options.learningRate };
  const accuracyByEpoch: number[] = [];
  const elapsedMsByEpoch: number[] = [];
  const started = performance.now();
  try {
    for (let epoch = 1; epoch <= options.centralEpochs; epoch++) {
      const { update } = await trainer.train(weights, fit);
      for (let i = 0; i < weights.length; i++) weights[i]! += update[i]!;
      const { accuracy } = await evaluator.evaluate(weights);
      accuracyByEpoch.push(accuracy);
      elapsedMsByEpoch.push(performance.now() - started);
      console.error(
        `  central epoch ${epoch}: accuracy ${(accuracy * 100).toFixed(2)}%, ${((performance.now() - started) / 1000).toFixed(1)} s`,
      );
    }
  } finally {
    trainer.dispose();
    evaluator.dispose();
  }
  return { accuracyByEpoch, elapsedMsByEpoch, finalAccuracy: accuracyByEpoch.at(-1)! };
}

async function runFederated(
  taskFile: string,
  train: Dataset,
  count: number,
  skew: ShardSkew,
  serverLearningRate: number,
  target: number,
  options: Options,
): Promise<FederatedResult> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'fl-fed-vs-central-'));
  const shards = Array.from({ length: count }, (_, k) =>
    subset(train, shardIndices(train.labels, { index: k, count, skew, seed: options.seed })),
  );
  let coordinator: Coordinator | undefined;
  let participants: NodeParticipant[] = [];
  const localBatchSize = options.localBatchSize === 'split' ? Math.max(1, Math.round(options.batchSize / count)) : options.localBatchSize;
  try {
    const flags = [
      '--task',
      taskFile,
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--quiet',
      '--data-dir',
      dataDir,
      '--rounds',
      String(options.maxRounds),
      '--target-accuracy',
      String(target),
      '--min-clients',
      String(count),
      '--clients-per-round',
      String(count),
      '--min-updates',
      String(count),
      '--round-timeout',
      '600',
      '--epochs',
      String(options.localEpochs),
      '--batch-size',
      String(localBatchSize),
      '--learning-rate',
      String(options.localLearningRate),
      '--seed',
      String(options.seed),
      '--server-learning-rate',
      String(serverLearningRate),
    ];
    const config = parseConfig(flags);
    if (config === 'help') throw new Error('unexpected --help');
    coordinator = await startCoordinator(config);
    // Wall clock counts from the moment participants start connecting.
    const startedWall = Date.now();
    const started = performance.now();
    participants = await startNodeParticipants(coordinator.url, shards, coordinator.task, count);
    const final = await coordinator.done;
    const wallMs = performance.now() - started;
    const rounds = final.history.filter(
      (r): r is RoundRecord & { metrics: NonNullable<RoundRecord['metrics']> } => r.outcome === 'aggregated' && r.metrics !== undefined,
    );
    if (rounds.length !== final.history.length)
      throw new Error(`a round did not aggregate: ${JSON.stringify(final.history.map((r) => [r.round, r.outcome, r.reason]))}`);
    const accuracyByRound = rounds.map((r) => r.metrics.accuracy);
    const elapsedMsByRound = rounds.map((r) => r.startedAt + r.durationMs - startedWall);
    const hit = accuracyByRound.findIndex((a) => a >= target);
    return {
      participants: count,
      skew,
      serverLearningRate,
      localEpochs: options.localEpochs,
      localBatchSize,
      localLearningRate: options.localLearningRate,
      examplesPerParticipant: shards.map((s) => s.count),
      accuracyByRound,
      elapsedMsByRound,
      roundsToTarget: hit < 0 ? null : hit + 1,
      epochsToTarget: hit < 0 ? null : (hit + 1) * options.localEpochs,
      msToTarget: hit < 0 ? null : elapsedMsByRound[hit]!,
      roundsRun: final.history.length,
      doneReason: final.doneReason,
      wallMs,
    };
  } finally {
    stopNodeParticipants(participants);
    await coordinator?.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
const seconds = (ms: number | null) => (ms === null ? '–' : `${(ms / 1000).toFixed(1)} s`);

function table(central: CentralResult, federated: readonly FederatedResult[], options: Options): string {
  const lines = [
    '| run | data per participant | local epochs, batch, lr | rounds to target | epochs to target | epochs vs centralised | wall clock to target | accuracy at target round / last round |',
    '|---|---|---|---:|---:|---:|---:|---|',
    `| centralised (pooled) | ${options.train} | –, ${options.batchSize}, ${options.learningRate} | – | ${central.epochsToTarget ?? `not in ${options.centralEpochs}`} | 1.00x | ${seconds(central.msToTarget)} | ${central.epochsToTarget === null ? '–' : pct(central.accuracyByEpoch[central.epochsToTarget - 1]!)} / ${pct(central.finalAccuracy)} (epoch ${options.centralEpochs}) |`,
  ];
  for (const f of federated) {
    const ratio =
      f.epochsToTarget === null || central.epochsToTarget === null ? '–' : `${(f.epochsToTarget / central.epochsToTarget).toFixed(2)}x`;
    const sizes = `${Math.min(...f.examplesPerParticipant)}–${Math.max(...f.examplesPerParticipant)}`;
    const reached = f.roundsToTarget === null ? `not in ${f.roundsRun}` : String(f.roundsToTarget);
    const atTarget = f.roundsToTarget === null ? '–' : pct(f.accuracyByRound[f.roundsToTarget - 1]!);
    const serverLr = f.serverLearningRate === 1 ? '' : `, server lr ${f.serverLearningRate}`;
    lines.push(
      `| federated, ${f.participants} participants, ${f.skew === 'iid' ? 'IID' : 'label-skewed'}${serverLr} | ${sizes} | ${f.localEpochs}, ${f.localBatchSize}, ${f.localLearningRate} | ${reached} | ${f.epochsToTarget ?? '–'} | ${ratio} | ${seconds(f.msToTarget)} | ${atTarget} / ${pct(f.accuracyByRound.at(-1) ?? NaN)} (round ${f.roundsRun}) |`,
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const options = parseOptions(argv);
  if (options === 'help') {
    console.log(USAGE);
    return;
  }
  const backend = await initNodeBackend('wasm');
  const dir = await mkdtemp(path.join(tmpdir(), 'fl-fashion-bench-'));
  const startedAll = performance.now();
  try {
    const taskFile = await writeTask(dir, options);
    const train = await readIdxPair(
      path.join(dir, 'train-images-idx3-ubyte.gz'),
      path.join(dir, 'train-labels-idx1-ubyte.gz'),
      INPUT,
      CLASSES,
    );
    const test = await readIdxPair(
      path.join(dir, 'test-images-idx3-ubyte.gz'),
      path.join(dir, 'test-labels-idx1-ubyte.gz'),
      INPUT,
      CLASSES,
    );
    // The same model spec the coordinator derives from the task file (load-task.ts builtinModel).
    const spec: ModelSpec = { architecture: options.model, inputShape: [28 * 28], numClasses: CLASSES.length, imageShape: INPUT.shape };
    console.error(`backend ${backend}; centralised, ${options.centralEpochs} epochs on ${train.count} examples ...`);
    const centralRun = await runCentral(spec, train, test, options);
    const target = TARGET_FRACTION * centralRun.finalAccuracy;
    const hit = centralRun.accuracyByEpoch.findIndex((a) => a >= target);
    const central: CentralResult = {
      ...centralRun,
      target,
      epochsToTarget: hit < 0 ? null : hit + 1,
      msToTarget: hit < 0 ? null : centralRun.elapsedMsByEpoch[hit]!,
    };
    console.error(
      `  target ${pct(target)} (${TARGET_FRACTION} x ${pct(central.finalAccuracy)}), reached at epoch ${central.epochsToTarget}`,
    );
    const federated: FederatedResult[] = [];
    for (const skew of options.skews) {
      for (const count of options.participants) {
        for (const serverLr of options.serverLearningRates) {
          console.error(`federated, ${count} participants, ${skew}, server learning rate ${serverLr} ...`);
          const result = await runFederated(taskFile, train, count, skew, serverLr, target, options);
          console.error(
            `  rounds to target ${result.roundsToTarget ?? `not in ${result.roundsRun}`}, ${seconds(result.msToTarget)}; accuracy by round ${result.accuracyByRound.map(pct).join(' ')}`,
          );
          federated.push(result);
        }
      }
    }
    const command = [COMMAND, ...argv].join(' ');
    console.log(`\n${table(central, federated, options)}\n`);
    const iid = federated.filter((f) => f.skew === 'iid');
    if (iid.length > 0 && central.epochsToTarget !== null) {
      const limit = EPOCH_RATIO_TARGET * central.epochsToTarget;
      const verdicts = iid.map(
        (f) =>
          `${f.participants} participants${f.serverLearningRate === 1 ? '' : ` (server lr ${f.serverLearningRate})`}: ${f.epochsToTarget === null ? 'not reached' : `${f.epochsToTarget} epochs`} (${f.epochsToTarget !== null && f.epochsToTarget <= limit ? 'met' : 'NOT met'})`,
      );
      console.log(
        `Target: IID within ${EPOCH_RATIO_TARGET}x the centralised ${central.epochsToTarget} epochs (<= ${limit}): ${verdicts.join('; ')}`,
      );
    }
    console.log(
      `Model ${options.model}, batch ${options.batchSize}, learning rate ${options.learningRate} (participants: ${options.localEpochs} local epochs, batch ${options.localBatchSize === 'split' ? `${options.batchSize} / P` : options.localBatchSize}, learning rate ${options.localLearningRate}), backend ${backend}, ${options.train} train / ${options.test} test examples.`,
    );
    console.log(`Command: ${command}`);
    console.log(`Total wall time: ${((performance.now() - startedAll) / 1000).toFixed(0)} s`);
    if (options.json) {
      await writeFile(
        options.json,
        `${JSON.stringify({ command, backend, options, central, federated, date: new Date().toISOString() }, null, 2)}\n`,
      );
      console.log(`Raw results: ${options.json}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  // Participants' reconnect timers and the wasm backend may keep the loop alive.
  process.exit(0);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
