import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseConfig, type CoordinatorConfig } from '../coordinator/config.ts';
import { bestRound } from '../coordinator/rounds/best-round.ts';
import { startCoordinator } from '../coordinator/server.ts';
import { loadMnistDemo } from '../coordinator/task/demo-data.ts';
import { parseCsv } from '../core/data/csv.ts';
import { shardIndices, subset, type Dataset } from '../core/data/dataset.ts';
import type { TabularInput } from '../core/data/schema.ts';
import { prepareTable, suggestRoles } from '../core/data/tabular.ts';
import type { FederationStatus } from '../core/protocol/status.ts';
import { startNodeParticipants, stopNodeParticipants } from '../test/helpers/node-participants.ts';

const COMMAND = 'npx tsx bench/server-lr.ts';
const USAGE = `Usage: ${COMMAND} [--scenario penguins|skewed] [--rounds N] [--decays LIST] [--patience N] [--seeds LIST]

Best model, early stopping and the FedAvg server learning-rate decay, on
real federations (coordinator/server.ts, in-process Node participants on the
tfjs wasm backend):

  penguins  tasks/penguins/task.json: 3 sites with their own CSVs
            (tasks/penguins/participants/site-*.csv), 10 local epochs per round.
  skewed    the MNIST demo (MLP), 4 participants on the pathological
            label-skewed split (each sees about 2 digits), 1 local epoch.

For each decay D (1 = constant server learning rate 1) and seed: the final
and the best test accuracy, the best round, and where --early-stopping-patience
N would have stopped (read off the same history: the first round with N
evaluated rounds since the best).

  --rounds N     rounds per run (default 15 penguins, 12 skewed)
  --decays LIST  default 1,0.8
  --patience N   default 3
  --seeds LIST   coordinator seeds (initial model, selection), default 1,2
  --epochs N     skewed: local epochs per round (default 1; more epochs, more client drift)`;

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'penguins' },
    rounds: { type: 'string' },
    decays: { type: 'string', default: '1,0.8' },
    patience: { type: 'string', default: '3' },
    seeds: { type: 'string', default: '1,2' },
    epochs: { type: 'string', default: '1' },
    help: { type: 'boolean' },
  },
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const scenario = values.scenario;
if (scenario !== 'penguins' && scenario !== 'skewed') throw new Error(`--scenario must be penguins or skewed, got ${scenario}`);
const rounds = Number(values.rounds ?? (scenario === 'penguins' ? 15 : 12));
const decays = values.decays.split(',').map(Number);
const patience = Number(values.patience);
const seeds = values.seeds.split(',').map(Number);

async function siteDataset(file: string, schema: TabularInput, classes: readonly string[]): Promise<Dataset> {
  const table = parseCsv(await readFile(file, 'utf8'));
  return prepareTable(table, suggestRoles(table, schema), schema, classes).dataset;
}

/** Where early stopping with `patience` would have stopped this history, and the best round at that point. */
function earlyStop(
  history: FederationStatus['history'],
  patience: number,
): { stoppedAt: number; best: number; accuracy: number } | undefined {
  for (let i = 0; i < history.length; i++) {
    const prefix = history.slice(0, i + 1);
    const best = bestRound(prefix);
    if (!best?.metrics) continue;
    const since = prefix.filter((r) => r.round > best.round && r.outcome === 'aggregated' && r.metrics).length;
    if (since >= patience) return { stoppedAt: history[i]!.round, best: best.round, accuracy: best.metrics.accuracy };
  }
  return undefined;
}

const pct = (x: number | undefined) => (x === undefined ? '–' : `${(x * 100).toFixed(1)}%`);

console.log(
  `${COMMAND} --scenario ${scenario}${scenario === 'skewed' ? ` --epochs ${values.epochs}` : ''} --rounds ${rounds} --decays ${decays.join(',')} --patience ${patience} --seeds ${seeds.join(',')}`,
);
console.log(`| scenario | decay | seed | final acc | best acc (round) | early stop at (patience ${patience}) | per-round accuracy |`);
console.log('|---|---|---|---|---|---|---|');
const demo = scenario === 'skewed' ? await loadMnistDemo() : undefined;
for (const decay of decays) {
  for (const seed of seeds) {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'fl-bench-lr-'));
    const common = [
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--quiet',
      '--data-dir',
      dataDir,
      '--rounds',
      String(rounds),
      '--seed',
      String(seed),
      ...(decay === 1 ? [] : ['--server-lr-decay', String(decay)]),
    ];
    const args =
      scenario === 'penguins'
        ? ['--task', 'tasks/penguins/task.json', ...common]
        : [
            ...common,
            '--min-clients',
            '4',
            '--clients-per-round',
            '4',
            '--min-updates',
            '4',
            '--epochs',
            values.epochs,
            '--batch-size',
            '32',
            '--learning-rate',
            '0.1',
            '--round-timeout',
            '120',
          ];
    const coordinator = await startCoordinator(parseConfig(args, {}) as CoordinatorConfig);
    const task = coordinator.task;
    const data: Dataset[] =
      scenario === 'penguins'
        ? await Promise.all(
            [1, 2, 3].map((k) => siteDataset(`tasks/penguins/participants/site-${k}.csv`, task.input as TabularInput, task.classes)),
          )
        : [0, 1, 2, 3].map((k) => subset(demo!.train, shardIndices(demo!.train.labels, { index: k, count: 4, skew: 'label' })));
    const participants = await startNodeParticipants(coordinator.url, data, task, data.length);
    const final = await coordinator.done;
    stopNodeParticipants(participants);
    await coordinator.close();
    await rm(dataDir, { recursive: true, force: true });
    const best = bestRound(final.history);
    const stop = earlyStop(final.history, patience);
    const perRound = final.history.map((r) => (r.metrics ? (r.metrics.accuracy * 100).toFixed(1) : '–')).join(' ');
    console.log(
      `| ${scenario} | ${decay} | ${seed} | ${pct(final.history.at(-1)?.metrics?.accuracy)} | ${pct(best?.metrics?.accuracy)} (${best?.round ?? '–'}) | ` +
        `${stop ? `round ${stop.stoppedAt}, best ${pct(stop.accuracy)} (round ${stop.best})` : 'no stop'} | ${perRound} |`,
    );
  }
}
