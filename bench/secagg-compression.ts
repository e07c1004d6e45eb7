import os from 'node:os';
import { parseArgs } from 'node:util';
import { secureInput } from '../core/participant/secure-input.ts';
import { secureVectorLength, skellamRotation, unrotateSum } from '../core/privacy/skellam-rotation.ts';
import { clipToNorm } from '../core/privacy/update-privacy.ts';
import type { UpdatePrivacy } from '../core/protocol/messages.ts';
import { SeededRandom } from '../core/random/prng.ts';
import { randomBytes } from '../core/secagg/bytes.ts';
import { suggestedDegree } from '../core/secagg/graph.ts';
import { quantizationRangeForValueBits, VALUE_BITS, wordBitsFor } from '../core/secagg/modulus.ts';
import { recommendedThreshold, type SecAggConfig } from '../core/secagg/protocol.ts';
import { DEFAULT_QUANTIZATION } from '../core/secagg/quantize.ts';
import { clipRangeFloor } from '../core/secagg/rotated-clip-range.ts';
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

A second table measures int4's error with and without the random rotation
(docs/secagg-compression.md): updates with a few large coordinates, clipped to
L2 norm C = 1 (and dense updates of the same norm), summed unrotated with c = 8 (the default before the rotation)
and c = C (the smallest c that never clamps them), and rotated with the
derived c = C·√(2 ln(4nd'/p)/B); the error is the decoded sum (rotated back)
against the plain sum of the clipped updates, per coordinate.

  --params N        parameters per update (default 101770: the demo MLP)
  --sizes LIST      comma-separated n (default 10,50,100)
  --drop F          fraction dropping before the masked input (default 0.1)
  --error-sizes LIST  comma-separated n of the int4 error table (default 10,50)
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
  readonly result: Awaited<ReturnType<typeof runLocalRound>>['result'];
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
    result: round.result,
  };
}

/** C of the error table's updates. */
const CLIP_NORM = 1;

/** How the error table's updates spread their norm. */
type Profile = 'dense' | 'spiky';

/**
 * An update clipped to L2 norm C: 'dense' spreads its norm over every
 * coordinate (bell-shaped, norm 2C before clipping); 'spiky' puts most of it
 * on 20 large coordinates (the heavy tail the rotation is for).
 */
function clippedUpdate(params: number, u: number, profile: Profile): Float32Array {
  const random = new SeededRandom(7919 * u);
  const scale = profile === 'dense' ? (2 * CLIP_NORM) / Math.sqrt(params / 4) : 0.004;
  const x = Float32Array.from({ length: params }, () => scale * (random.next() + random.next() + random.next() - 1.5));
  if (profile === 'spiky')
    for (let k = 0; k < 20; k++) x[Math.floor(random.next() * params)] = (random.next() < 0.5 ? -1 : 1) * (0.1 + 0.4 * random.next());
  clipToNorm(x, CLIP_NORM);
  return x;
}

interface ErrorRow {
  readonly profile: Profile;
  readonly variant: string;
  readonly clipRange: number;
  readonly sent: number;
  readonly rms: number;
  readonly worst: number;
}

/** One int4 round of clipped spiky updates: bytes sent and the decoded sum's error in the model's basis. */
async function int4Error(
  base: Omit<SecAggConfig, 'roundSeed' | 'quantization' | 'vectorLength'>,
  params: number,
  dropped: readonly number[],
  clipRange: number,
  rotated: boolean,
  profile: Profile,
): Promise<Omit<ErrorRow, 'variant' | 'profile'>> {
  const privacy: UpdatePrivacy = { clipNorm: CLIP_NORM, noiseStd: 0 };
  const quantizationRange = quantizationRangeForValueBits(VALUE_BITS.int4);
  const config: SecAggConfig = {
    ...base,
    roundSeed: randomBytes(32),
    vectorLength: secureVectorLength(params, privacy, rotated),
    quantization: { clipRange, quantizationRange },
    ...(rotated ? { rotated: true } : {}),
  };
  const updates = new Map<number, Float32Array>();
  for (let u = 1; u <= config.participants; u++) updates.set(u, clippedUpdate(params, u, profile));
  // The participant's own encoding (clip, then rotate where the round says so); the updates are already clipped.
  const measured = await measure(config, (u) => secureInput(updates.get(u)!, privacy, config).input, dropped);
  const sum = rotated ? unrotateSum(measured.result, skellamRotation(config.roundSeed, params)).sum : measured.result.sum;
  let squares = 0;
  let worst = 0;
  for (let i = 0; i < params; i++) {
    let plain = 0;
    for (const u of measured.result.contributors) plain += updates.get(u)![i]!;
    const error = Math.abs(sum[i]! - plain);
    squares += error * error;
    worst = Math.max(worst, error);
  }
  return { clipRange, sent: measured.sent, rms: Math.sqrt(squares / params), worst };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      params: { type: 'string', default: '101770' },
      sizes: { type: 'string', default: '10,50,100' },
      drop: { type: 'string', default: '0.1' },
      'error-sizes': { type: 'string', default: '10,50' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const params = Number(values.params);
  const sizes = values.sizes.split(',').map(Number);
  const errorSizes = values['error-sizes'].split(',').map(Number);
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
  const errorRows: string[] = [];
  for (const n of errorSizes) {
    const dropCount = Math.floor(dropFraction * n);
    const dropped = Array.from({ length: dropCount }, (_, i) => 1 + Math.floor((i * n) / Math.max(1, dropCount)));
    const wordBits = wordBitsFor(quantizationRangeForValueBits(VALUE_BITS.int4), n);
    const base = { round: n, participants: n, neighbours: 'all' as const, threshold: recommendedThreshold(n, 'all'), wordBits };
    const derived = clipRangeFloor({ clipNorm: CLIP_NORM, noiseStd: 0, participants: n, dimension: params, rotated: true });
    for (const profile of ['dense', 'spiky'] as const) {
      const variants: ErrorRow[] = [
        { profile, variant: 'unrotated, c = 8 (default before)', ...(await int4Error(base, params, dropped, clipRange, false, profile)) },
        { profile, variant: 'unrotated, c = C', ...(await int4Error(base, params, dropped, CLIP_NORM, false, profile)) },
        { profile, variant: 'rotated, derived c', ...(await int4Error(base, params, dropped, derived, true, profile)) },
      ];
      for (const row of variants) {
        errorRows.push(
          `| ${n} | ${wordBits} | ${profile} | ${row.variant} | ${row.clipRange.toPrecision(3)} | ${kb(row.sent)} | ${row.rms.toExponential(2)} | ${(row.rms / variants[0]!.rms).toFixed(3)}× | ${(row.rms / variants[1]!.rms).toFixed(3)}× | ${row.worst.toExponential(2)} |`,
        );
        console.error(errorRows[errorRows.length - 1]);
      }
    }
  }
  console.log(
    `\n\`${COMMAND} --params ${params} --sizes ${sizes.join(',')} --drop ${dropFraction} --error-sizes ${errorSizes.join(',')}\` — Node ${process.version}, ${os.cpus().length}× ${os.cpus()[0]?.model ?? 'CPU'}; plaintext ${kb(4 * params)} per float32 update\n`,
  );
  console.log(
    '| n | graph | encoding | word bits b | sent, 32-bit words | sent, b-bit words | sent ratio | received, 32-bit | received, b-bit | sent + received ratio |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const row of rows) console.log(row);
  console.log(
    `\nint4, all pairs, updates clipped to L2 norm C = ${CLIP_NORM} (dense, or with 20 large coordinates); error = decoded sum (rotated back) − plain sum of the clipped updates, per coordinate\n`,
  );
  console.log('| n | word bits b | updates | int4 | c | sent | RMS error | vs c = 8 | vs c = C | largest error |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const row of errorRows) console.log(row);
}

await main();
