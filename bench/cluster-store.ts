import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { FedAvg } from '../core/aggregation/fedavg.ts';
import { decodePartial, encodePartial } from '../core/aggregation/partial.ts';
import { SeededRandom } from '../core/random/prng.ts';
import { FencedStore } from '../coordinator/cluster/fenced-store.ts';
import { FederationStore } from '../coordinator/cluster/federation-store.ts';
import { clusterKeys } from '../coordinator/cluster/keys.ts';
import { makeModel } from '../coordinator/rounds/engine-types.ts';
import { TestRedis } from '../test/support/redis.ts';

/**
 * The Redis side of a cluster round, on a real redis-server (started here,
 * appendonly yes, appendfsync always): for 1, 2, 4 and 10 nodes, each node
 * writes its partial aggregate (float64 sum) once, the leader reads them all
 * and combines them with the strategy's own aggregator, then commits the
 * round (model once per version, record, head) in one fenced script, and
 * each other node reads the model once. Reports bytes through Redis per
 * round, the leader's fan-in and combine time, and the fenced commit time.
 * It measures the store and the combine alone, with no participant traffic:
 * bench/cluster.ts runs whole rounds of a cluster.
 *
 *   npm run bench -- cluster-store     (or: node --import tsx bench/cluster-store.ts [--reps 5])
 */

const MODELS = [
  { name: '2NN (FedAvg paper)', params: 199_210 },
  { name: 'CNN (FedAvg paper)', params: 1_663_370 },
];
const NODE_COUNTS = [1, 2, 4, 10];
const repsFlag = process.argv.indexOf('--reps');
const REPS = repsFlag >= 0 ? Number(process.argv[repsFlag + 1]) : 3;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(1);

const redis = await TestRedis.start();
const client = new Redis(redis.url);
try {
  console.log(`Redis ${redis.url} (appendonly yes, appendfsync always), ${REPS} repetitions, medians\n`);
  console.log(
    '| model | params | nodes | partial bytes | Redis bytes / round | leader fan-in (read N partials) ms | combine ms | fenced commit ms | model read per node ms |',
  );
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const model of MODELS) {
    const random = new SeededRandom(1);
    const globalWeights = Float32Array.from({ length: model.params }, () => random.next() - 0.5);
    const update = Float32Array.from({ length: model.params }, () => (random.next() - 0.5) * 0.01);
    const strategy = new FedAvg();
    // One node's partial: the same bytes whatever the number of its participants.
    const nodeRound = strategy.beginRound({ round: 1, globalWeights });
    nodeRound.add({ participantId: 'p', numExamples: 10, update });
    const partialBytes = Buffer.from(encodePartial(nodeRound.partial!()));
    for (const nodes of NODE_COUNTS) {
      const fanIn: number[] = [];
      const combine: number[] = [];
      const commit: number[] = [];
      const modelRead: number[] = [];
      for (let rep = 0; rep < REPS; rep++) {
        const keys = clusterKeys(`bench-${model.params}-${nodes}-${rep}`);
        const term = await client.incr(keys.term);
        const store = new FederationStore(client, new FencedStore(client, keys.term), keys, { name: 'bench', paramCount: model.params });
        const partialKey = (node: number) => `${keys.head}:partial:${node}`;
        for (let node = 0; node < nodes; node++) await client.set(partialKey(node), partialBytes);
        let started = performance.now();
        const read = await Promise.all(Array.from({ length: nodes }, (_, node) => client.getBuffer(partialKey(node))));
        fanIn.push(performance.now() - started);
        started = performance.now();
        const leaderRound = strategy.beginRound({ round: 1, globalWeights });
        for (const bytes of read) leaderRound.addPartial!(decodePartial(new Uint8Array(bytes!), model.params));
        const weights = leaderRound.finish()!;
        combine.push(performance.now() - started);
        const record = {
          round: 1,
          outcome: 'aggregated' as const,
          modelVersion: 1,
          selected: nodes,
          received: nodes,
          dropped: 0,
          rejected: 0,
          declined: 0,
          bytesIn: 0,
          bytesOut: 0,
          startedAt: 0,
          durationMs: 0,
        };
        const globalModel = makeModel(1, weights);
        started = performance.now();
        await store.commitRound(term, record, globalModel, undefined);
        commit.push(performance.now() - started);
        started = performance.now();
        await store.model(1);
        modelRead.push(performance.now() - started);
        await client.del(
          ...Array.from({ length: nodes }, (_, node) => partialKey(node)),
          keys.head,
          keys.history,
          keys.model(1),
          keys.term,
        );
      }
      // Partials written and read once each, the model written once and read by every other node.
      const redisBytes = 2 * nodes * partialBytes.byteLength + model.params * 4 * nodes;
      console.log(
        `| ${model.name} | ${model.params.toLocaleString('en')} | ${nodes} | ${mb(partialBytes.byteLength)} MB | ${mb(redisBytes)} MB | ${median(fanIn).toFixed(0)} | ${median(combine).toFixed(0)} | ${median(commit).toFixed(0)} | ${median(modelRead).toFixed(0)} |`,
      );
    }
  }
} finally {
  client.disconnect();
  await redis.cleanup();
}
