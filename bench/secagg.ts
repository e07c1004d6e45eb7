import os from 'node:os';
import { parseArgs } from 'node:util';
import { randomBytes } from '../core/secagg/bytes.ts';
import { suggestedDegree } from '../core/secagg/graph.ts';
import { recommendedThreshold, type SecAggConfig } from '../core/secagg/protocol.ts';
import { DEFAULT_QUANTIZATION } from '../core/secagg/quantize.ts';
import { runLocalRound } from '../core/secagg/simulate.ts';
import { median } from './stats.ts';

const COMMAND = 'npx tsx bench/secagg.ts';

const USAGE = `Usage: ${COMMAND} [options]

Cost of one secure aggregation round (core/secagg), all clients and the
server in one Node process (WebCrypto: ECDH P-256, HKDF, AES-GCM, AES-256-CTR
mask PRG), for all pairs (SecAgg) and for the SecAgg+ graph with
k = 2⌈log2 n⌉. A fraction of the participants drops after sharing keys and
before sending its masked input, so the server has to reconstruct their keys
and recompute their pairwise masks (the expensive case).

Reported per participant: compute time (key generation, sharing, decryption,
quantisation, masking, unmasking answer; mean over participants, median over
repetitions), payload bytes sent and received (binary fields + 4 bytes per
number), and the expansion sent / plaintext (4 bytes per parameter). Server:
all its steps, including the final reconstruction and unmasking.

  --params N        parameters per update (default 200000)
  --sizes LIST      comma-separated n (default 10,50,100)
  --drop F          fraction dropping before the masked input (default 0.1)
  --reps N          repetitions per configuration (default 3; 1 for n ≥ 100 with all pairs)
  --help            show this text
`;

const mean = (values: Iterable<number>): number => {
  const list = [...values];
  return list.reduce((a, b) => a + b, 0) / list.length;
};

function kb(bytes: number): string {
  return bytes >= 1e6 ? `${(bytes / 1e6).toFixed(2)} MB` : `${(bytes / 1e3).toFixed(1)} kB`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      params: { type: 'string', default: '200000' },
      sizes: { type: 'string', default: '10,50,100' },
      drop: { type: 'string', default: '0.1' },
      reps: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const params = Number(values.params);
  const sizes = values.sizes.split(',').map(Number);
  const dropFraction = Number(values.drop);
  const plaintext = 4 * params;

  const update = new Float32Array(params);
  for (let i = 0; i < params; i++) update[i] = Math.sin(i) * 0.5;

  const rows: string[] = [];
  for (const n of sizes) {
    for (const neighbours of ['all', suggestedDegree(n)] as const) {
      const k = neighbours === 'all' ? n - 1 : neighbours;
      if (neighbours !== 'all' && k >= n - 1) continue; // SecAgg+ degenerates to all pairs
      const reps = values.reps !== undefined ? Number(values.reps) : n >= 100 && neighbours === 'all' ? 1 : 3;
      const threshold = recommendedThreshold(n, neighbours);
      const dropCount = Math.floor(dropFraction * n);
      const clientMs: number[] = [];
      const serverMs: number[] = [];
      let sent = 0;
      let received = 0;
      for (let rep = 0; rep < reps; rep++) {
        const config: SecAggConfig = {
          round: rep,
          participants: n,
          neighbours,
          threshold,
          roundSeed: randomBytes(32),
          vectorLength: params,
          quantization: DEFAULT_QUANTIZATION,
        };
        // drop every (n / dropCount)-th participant, spread over the graph positions
        const dropped = Array.from({ length: dropCount }, (_, i) => 1 + Math.floor((i * n) / Math.max(1, dropCount)));
        const round = await runLocalRound(config, () => update, { dropouts: { beforeMaskedInput: dropped } });
        const survivors = [...round.costs.clientMs.keys()].filter((u) => !dropped.includes(u));
        clientMs.push(mean(survivors.map((u) => round.costs.clientMs.get(u)!)));
        serverMs.push(round.costs.serverMs);
        sent = mean(survivors.map((u) => round.costs.clientBytesSent.get(u)!));
        received = mean(survivors.map((u) => round.costs.clientBytesReceived.get(u)!));
        if (round.result.contributors.length !== n - dropCount) throw new Error('wrong contributor count');
      }
      rows.push(
        `| ${n} | ${neighbours === 'all' ? `all pairs (k = ${k})` : `SecAgg+ k = ${k}`} | ${threshold} | ${dropCount} | ${median(clientMs).toFixed(0)} | ${kb(sent)} | ${(sent / plaintext).toFixed(4)}× | ${kb(received)} | ${median(serverMs).toFixed(0)} | ${reps} |`,
      );
      console.error(rows[rows.length - 1]);
    }
  }
  console.log(
    `\n\`${COMMAND} --params ${params} --sizes ${sizes.join(',')} --drop ${dropFraction}\` — Node ${process.version}, ${os.cpus().length}× ${os.cpus()[0]?.model ?? 'CPU'}; plaintext ${kb(plaintext)} per update\n`,
  );
  console.log('| n | graph | t | dropped | client ms | client sent | sent / plaintext | client received | server ms | reps |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const row of rows) console.log(row);
}

await main();
