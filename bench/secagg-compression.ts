import os from 'node:os';
import { parseArgs } from 'node:util';
import { randomBytes } from '../core/secagg/bytes.ts';
import { suggestedDegree } from '../core/secagg/graph.ts';
import { quantizationRangeForValueBits, VALUE_BITS, wordBitsFor } from '../core/secagg/modulus.ts';
import { recommendedThreshold, type SecAggConfig } from '../core/secagg/protocol.ts';
import { DEFAULT_QUANTIZATION } from '../core/secagg/quantize.ts';
import { runLocalRound } from '../core/secagg/simulate.ts';

const COMMAND = 'npx tsx bench/secagg-compression.ts';

const USAGE = `Usage: ${COMMAND} [options]

Bytes per participant per secure aggregation round (core/secagg, all clients
and the server in one Node process): 32-bit masked words (--update-encoding
float32, R = 2^22) against packed b-bit words (int8 / int4: R = 2^v − 2,
b = the smallest width that holds n participants, core/secagg/modulus.ts).
Every byte counted is a real message of the round (binary fields + 4 bytes
per number), the masked input as it travels (packed). A fraction drops before
its masked input, so unmasking has to rebuild their keys. Each round's
decoded sum is checked against the plaintext sum within its error bound.

  --params N        parameters per update (default 101770: the demo MLP)
  --sizes LIST      comma-separated n (default 10,50,100)
  --drop F          fraction dropping before the masked input (default 0.1)
  --help            show this text
`;

const mean = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0) / values.length;

function kb(bytes: number): string {
  return bytes >= 1e6 ? `${(bytes / 1e6).toFixed(3)} MB` : `${(bytes / 1e3).toFixed(1)} kB`;
}

interface Measured {
  readonly sent: number;
  readonly received: number;
  readonly wordBits: number;
}

async function measure(config: SecAggConfig, update: (u: number) => Float32Array, dropped: readonly number[]): Promise<Measured> {
  const round = await runLocalRound(config, update, { dropouts: { beforeMaskedInput: dropped } });
  const survivors = round.result.contributors;
  if (survivors.length !== config.participants - dropped.length) throw new Error('wrong contributor count');
  // The decoded sum must be the plaintext sum (the updates stay inside the clip range) within the bound.
  const expected = new Float64Array(config.vectorLength);
  for (const u of survivors) {
    const x = update(u);
    for (let i = 0; i < x.length; i++) expected[i]! += x[i]!;
  }
  for (let i = 0; i < expected.length; i++) {
    if (!(Math.abs(round.result.sum[i]! - expected[i]!) < round.result.errorBound))
      throw new Error(`coordinate ${i}: decoded ${round.result.sum[i]}, plaintext ${expected[i]}`);
  }
  return {
    sent: mean(survivors.map((u) => round.costs.clientBytesSent.get(u)!)),
    received: mean(survivors.map((u) => round.costs.clientBytesReceived.get(u)!)),
    wordBits: config.wordBits ?? 32,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      params: { type: 'string', default: '101770' },
      sizes: { type: 'string', default: '10,50,100' },
      drop: { type: 'string', default: '0.1' },
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
  const clipRange = DEFAULT_QUANTIZATION.clipRange;
  // Updates well inside ±c, different per participant.
  const update = (u: number): Float32Array => Float32Array.from({ length: params }, (_, i) => 0.5 * Math.sin(i * 0.37 + u));

  const rows: string[] = [];
  for (const n of sizes) {
    for (const neighbours of ['all', suggestedDegree(n)] as const) {
      const k = neighbours === 'all' ? n - 1 : neighbours;
      if (neighbours !== 'all' && k >= n - 1) continue;
      const dropCount = Math.floor(dropFraction * n);
      const dropped = Array.from({ length: dropCount }, (_, i) => 1 + Math.floor((i * n) / Math.max(1, dropCount)));
      const base = {
        round: n,
        participants: n,
        neighbours,
        threshold: recommendedThreshold(n, neighbours),
        vectorLength: params,
      };
      const wide = await measure({ ...base, roundSeed: randomBytes(32), quantization: DEFAULT_QUANTIZATION }, update, dropped);
      for (const encoding of ['int8', 'int4'] as const) {
        const quantizationRange = quantizationRangeForValueBits(VALUE_BITS[encoding]);
        const narrow = await measure(
          {
            ...base,
            roundSeed: randomBytes(32),
            quantization: { clipRange, quantizationRange },
            wordBits: wordBitsFor(quantizationRange, n),
          },
          update,
          dropped,
        );
        const graph = neighbours === 'all' ? `all pairs (k = ${k})` : `SecAgg+ k = ${k}`;
        rows.push(
          `| ${n} | ${graph} | ${encoding} | ${narrow.wordBits} | ${kb(wide.sent)} | ${kb(narrow.sent)} | **${(narrow.sent / wide.sent).toFixed(3)}×** | ${kb(wide.received)} | ${kb(narrow.received)} | ${((narrow.sent + narrow.received) / (wide.sent + wide.received)).toFixed(3)}× |`,
        );
        console.error(rows[rows.length - 1]);
      }
    }
  }
  console.log(
    `\n\`${COMMAND} --params ${params} --sizes ${sizes.join(',')} --drop ${dropFraction}\` — Node ${process.version}, ${os.cpus().length}× ${os.cpus()[0]?.model ?? 'CPU'}; plaintext ${kb(4 * params)} per float32 update\n`,
  );
  console.log(
    '| n | graph | encoding | word bits b | sent, 32-bit words | sent, b-bit words | sent ratio | received, 32-bit | received, b-bit | sent + received ratio |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const row of rows) console.log(row);
}

await main();
