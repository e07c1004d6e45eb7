import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { secAggConfigFor } from '../../coordinator/rounds/secure-round.ts';
import { secAggSettingsForModel } from '../../coordinator/secagg-words-config.ts';
import { secureInput } from '../../core/participant/secure-input.ts';
import { conditionalRoundingBound } from '../../core/privacy/conditional-rounding.ts';
import { planDistributedNoise } from '../../core/privacy/distributed-noise.ts';
import { secureVectorLength, skellamRotation, unrotateSum } from '../../core/privacy/skellam-rotation.ts';
import { clipToNorm } from '../../core/privacy/update-privacy.ts';
import type { UpdatePrivacy } from '../../core/protocol/messages.ts';
import { toBytes } from '../../core/protocol/secagg-wire.ts';
import type { SecureAggregationSettings } from '../../core/protocol/status.ts';
import { SeededRandom } from '../../core/random/prng.ts';
import { sha256 } from '../../core/secagg/bytes.ts';
import { maxParticipantsForWords, quantizationRangeForValueBits, signedWord, VALUE_BITS, wordBitsFor } from '../../core/secagg/modulus.ts';
import {
  recommendedThreshold,
  SecAggClient,
  validateConfig,
  type ForwardedSharesMessage,
  type KeyDirectoryMessage,
  type SecAggConfig,
  type UnmaskRequestMessage,
} from '../../core/secagg/protocol.ts';
import { quantizationStep } from '../../core/secagg/quantize.ts';
import { clipRangeFloor } from '../../core/secagg/rotated-clip-range.ts';
import { runLocalRound } from '../../core/secagg/simulate.ts';
import { checkDecodedSum } from '../../core/secagg/sum-range.ts';
import { SecureHarness } from '../helpers/secure-harness.ts';
import { distributedClientDp } from '../helpers/client-dp-flags.ts';

/**
 * int4 under secure aggregation, rotated (docs/secagg-compression.md): real
 * SecAgg rounds (core/secagg/simulate.ts) whose inputs the participant's own
 * code prepares (core/participant/secure-input.ts), decoded and rotated back
 * as the coordinator does (core/privacy/skellam-rotation.ts).
 */

/** Not a multiple of the 1024-value block: the rotation pads to 3072. */
const D = 3000;
const N = 5;
const CLIP = 1;
const R = quantizationRangeForValueBits(VALUE_BITS.int4);
const WORD_BITS = wordBitsFor(R, N);
const privacy: UpdatePrivacy = { clipNorm: CLIP, noiseStd: 0 };
/** The clip range int4 derives under the rotation, and the smallest that never clamps an unrotated update (c = C). */
const ROTATED_C = clipRangeFloor({ clipNorm: CLIP, noiseStd: 0, participants: N, dimension: D, rotated: true });
const UNROTATED_C = clipRangeFloor({ clipNorm: CLIP, noiseStd: 0, participants: N, dimension: D, rotated: false });

/** Updates with most of their norm on one coordinate each (larger than L2 norm C: the participant clips them). */
function spikyUpdates(): Map<number, Float32Array> {
  const updates = new Map<number, Float32Array>();
  for (let u = 1; u <= N; u++) {
    const r = new SeededRandom(500 + u);
    const x = Float32Array.from({ length: D }, () => 0.02 * (2 * r.next() - 1));
    x[17 * u] = u % 2 === 0 ? 1.5 : -1.5;
    updates.set(u, x);
  }
  return updates;
}

async function int4Config(clipRange: number, rotated: boolean, label = 'int4 rotation'): Promise<SecAggConfig> {
  return {
    round: 1,
    participants: N,
    neighbours: 'all',
    threshold: recommendedThreshold(N, 'all'),
    roundSeed: await sha256(new TextEncoder().encode(label)),
    vectorLength: secureVectorLength(D, privacy, rotated),
    quantization: { clipRange, quantizationRange: R },
    wordBits: WORD_BITS,
    ...(rotated ? { rotated: true } : {}),
  };
}

/** One real SecAgg round, each input prepared by the participant's secure encoding. */
async function round(config: SecAggConfig, updates: Map<number, Float32Array>, roundPrivacy: UpdatePrivacy = privacy) {
  const prepared = new Map([...updates].map(([u, x]) => [u, secureInput(x, roundPrivacy, config)]));
  return runLocalRound(config, (u) => prepared.get(u)!.input, { maskOptions: (u) => prepared.get(u)!.options });
}

/** The plain sum of the updates clipped to C: what a float32 round would aggregate. */
function clippedSum(updates: Map<number, Float32Array>): Float64Array {
  const sum = new Float64Array(D);
  for (const x of updates.values()) {
    const clipped = new Float32Array(x);
    clipToNorm(clipped, CLIP);
    for (let i = 0; i < D; i++) sum[i]! += clipped[i]!;
  }
  return sum;
}

function rmsError(sum: Float64Array, truth: Float64Array): number {
  let squares = 0;
  for (let i = 0; i < D; i++) squares += (sum[i]! - truth[i]!) ** 2;
  return Math.sqrt(squares / D);
}

const norm = (x: ArrayLike<number>) => Math.sqrt(Array.from(x).reduce((s, v) => s + v * v, 0));

describe('int4 under secure aggregation, rotated with the round seed', () => {
  it('derives a clip range far below C from the rotated coordinate bound', () => {
    // C·√(2 ln(4nd'/p)/B) with n = 5, d' = 3072, B = 1024, p = 1e-9: about 0.25·C, where unrotated needs C.
    assert.equal(UNROTATED_C, CLIP);
    assert.ok(ROTATED_C > 0.24 && ROTATED_C < 0.26, `${ROTATED_C}`);
    // A small model gets a small block: the bound is then capped at C (a rotated coordinate never exceeds the norm).
    assert.equal(clipRangeFloor({ clipNorm: CLIP, noiseStd: 0, participants: N, dimension: 20, rotated: true }), CLIP);
  });

  it('decodes, rotated back once, a sum much closer to the clipped sum than unrotated int4 at the same bits', async () => {
    const updates = spikyUpdates();
    const truth = clippedSum(updates);
    const config = await int4Config(ROTATED_C, true);
    assert.equal(config.vectorLength, 3072);
    const rotated = await round(config, updates);
    // The coordinator checks the sum still rotated, with the rotated bound, then rotates it back and cuts it to d.
    const check = checkDecodedSum(rotated.result.sum, { quantization: config.quantization, contributors: N, privacy, rotationBlock: 1024 });
    assert.ok(check.ok, check.ok ? '' : check.reason);
    const back = unrotateSum(rotated.result, skellamRotation(config.roundSeed, D));
    assert.equal(back.sum.length, D);
    const rotatedError = rmsError(back.sum, truth);

    // The same bits unrotated: with c = C (the smallest that never clamps an unrotated clipped update) and with
    // the default c = max(8, C) that secure int4 used before.
    const tight = rmsError((await round(await int4Config(UNROTATED_C, false), updates)).result.sum, truth);
    const defaultRange = rmsError((await round(await int4Config(8, false), updates)).result.sum, truth);
    console.log(
      `int4 RMS error per coordinate: rotated ${rotatedError.toExponential(2)}, unrotated c = C ${tight.toExponential(2)}, c = 8 ${defaultRange.toExponential(2)}`,
    );
    // Measured about 0.46× and 0.15× (the step is 4× and 32× finer; values far below an unrotated step round with less variance).
    assert.ok(rotatedError < 0.6 * tight, `rotated ${rotatedError} vs unrotated ${tight}`);
    assert.ok(rotatedError < 0.25 * defaultRange, `rotated ${rotatedError} vs unrotated c = 8 ${defaultRange}`);
    // And the spikes come through: each is off by little more than the quantisation noise.
    for (let u = 1; u <= N; u++) assert.ok(Math.abs(back.sum[17 * u]! - truth[17 * u]!) < 6 * rotatedError, `spike of ${u}`);
  });

  it('refuses, as a participant, a round whose secure vector is not the rotation’s padded length', async () => {
    const x = spikyUpdates().get(1)!;
    const unpadded = { ...(await int4Config(ROTATED_C, true)), vectorLength: D };
    assert.throws(() => secureInput(x, privacy, unpadded), /secure vector has 3000 values, not the 3072/);
    assert.throws(() => secureInput(x, undefined, unpadded), /secure vector has 3000 values, not the 3072/);
    // Without `rotated` the update goes as it is, at the model's length.
    assert.equal(secureInput(x, privacy, await int4Config(ROTATED_C, false)).input.length, D);
  });

  it('refuses garbage in the sum that only the rotated bound catches', async () => {
    // The operator kept c = C: the rotation then tightens the range check, not the step.
    const config = await int4Config(CLIP, true);
    const honest = await round(config, spikyUpdates());
    const inputs = { quantization: config.quantization, contributors: N, privacy, rotationBlock: 1024 };
    const check = checkDecodedSum(honest.result.sum, inputs);
    assert.ok(check.ok, check.ok ? '' : check.reason);
    const loose = checkDecodedSum(honest.result.sum, { ...inputs, rotationBlock: undefined });
    assert.ok(check.bounds.coordinate < 0.4 * loose.bounds.coordinate, `${check.bounds.coordinate} vs ${loose.bounds.coordinate}`);
    const garbage = Float64Array.from(honest.result.sum);
    garbage[40] = (check.bounds.coordinate + loose.bounds.coordinate) / 2;
    assert.equal(checkDecodedSum(garbage, inputs).ok, false);
    assert.equal(checkDecodedSum(garbage, { ...inputs, rotationBlock: undefined }).ok, true);
  });

  it('keeps the sensitivity under client DP: the quantised vector is clipped to C, and clamping only shrinks it', async () => {
    const config = await int4Config(ROTATED_C, true);
    const rotation = skellamRotation(config.roundSeed, D);
    // A participant aligned with the round's signs: all of its norm on one rotated coordinate, 4× the clip range.
    const aligned = new Float32Array(config.vectorLength);
    aligned[3] = 50;
    const x = rotation.unrotate(aligned);
    const prepared = secureInput(x, privacy, config);
    assert.equal(prepared.clipped(), true);
    assert.ok(norm(prepared.input) <= CLIP * (1 + 1e-6), `‖input‖ ${norm(prepared.input)}`);
    assert.ok(Math.abs(prepared.input[3]!) > 3.9 * ROTATED_C, 'the rotated coordinate is beyond c: clamping bites');

    // Skellam (distributed DP on the integers): conditional rounding holds the encoded norm to the bound the accountant charges,
    // with the tight int4 clip range and a coordinate clamped.
    const step = quantizationStep(config.quantization);
    const plan = planDistributedNoise({
      clipNorm: CLIP,
      noiseMultiplier: 1,
      dimension: config.vectorLength,
      step,
      expectedContributors: N,
      toleratedDropouts: 0,
    });
    const skellam = secureInput(x, { ...privacy, skellamVariance: plan.participantVariance }, config);
    const encoded = skellam.options.encode!(skellam.input);
    const integers = Array.from(encoded, (w) => signedWord(w, 32));
    assert.equal(integers[3], R / 2, 'clamped to c');
    assert.ok(norm(integers) <= conditionalRoundingBound(CLIP, step, config.vectorLength), `‖z‖ ${norm(integers)}`);
  });
});

describe('--update-encoding int4 --secure-aggregation: the rotated round the coordinator configures', () => {
  const SECURE = [
    '--secure-aggregation',
    '--min-clients',
    '3',
    '--clients-per-round',
    '10',
    '--min-updates',
    '3',
    '--update-encoding',
    'int4',
  ];
  const parse = (...flags: string[]) => parseConfig(flags, {}) as CoordinatorConfig;
  const MLP = 101_770;

  it('rotates int4 (not int8) and announces it with the round, at the padded length', () => {
    const secure = parse(...SECURE).settings.secureAggregation!;
    assert.equal(secure.rotated, true);
    assert.equal(parse(...SECURE, '--update-encoding', 'int8').settings.secureAggregation!.rotated, undefined);
    const config = secAggConfigFor(1, 10, secureVectorLength(MLP, undefined, secure.rotated), secure);
    assert.equal(config.rotated, true);
    assert.equal(config.vectorLength, 102_400);
    validateConfig(config);
  });

  it('derives c from the clip norm once the model is known, keeps a given --secagg-clip-range, and sizes no wider words', () => {
    const config = parse(...SECURE, '--clip-norm', '1');
    const before = config.settings.secureAggregation!;
    assert.equal(before.derivedClipRange, true);
    const secure = secAggSettingsForModel(config, MLP).secureAggregation!;
    // n = 18 (what 9-bit words hold), d' = 102,400, B = 1024: 0.267·C, where unrotated int4 used max(8, C) = 8.
    assert.ok(secure.clipRange > 0.26 && secure.clipRange < 0.275, `c = ${secure.clipRange}`);
    assert.equal(secure.clipRange, clipRangeFloor({ clipNorm: 1, noiseStd: 0, participants: 18, dimension: MLP, rotated: true }));
    assert.deepEqual([secure.wordBits, secure.maxParticipants], [before.wordBits, before.maxParticipants]);
    const given = parse(...SECURE, '--clip-norm', '1', '--secagg-clip-range', '2');
    assert.equal(given.settings.secureAggregation!.derivedClipRange, undefined);
    assert.equal(secAggSettingsForModel(given, MLP).secureAggregation!.clipRange, 2);
    // No L2 clip, no bound to derive c from: the default stays.
    assert.equal(secAggSettingsForModel(parse(...SECURE), MLP).secureAggregation!.clipRange, 8);
  });

  it('holds a Gaussian share on top of the rotated bound, and refuses a given c below that', () => {
    const distributed = [...distributedClientDp(10), ...['--admin-token', 'int4-rotation-admin']];
    // Gaussian shares by name: Skellam is the default of --client-dp distributed with --secure-aggregation.
    const gaussian = [...distributed, '--distributed-noise', 'gaussian'];
    const derived = secAggSettingsForModel(parse(...SECURE, ...gaussian), MLP).secureAggregation!;
    // σ = zC/√m = 0.316, its tail over n·d' draws ≈ 8.6σ, on top of 0.27·C: c ≈ 2.99 (unrotated: 1 + 8.5σ ≈ 3.7).
    assert.ok(derived.clipRange > 2.9 && derived.clipRange < 3.1, `c = ${derived.clipRange}`);
    assert.throws(
      () => secAggSettingsForModel(parse(...SECURE, ...gaussian, '--secagg-clip-range', '2.5'), MLP),
      /--secagg-clip-range 2\.5 cannot hold the noise share .* at least 2\.9/,
    );
    // Skellam: the integers carry the noise, c is the rotated bound alone; the words widen for the noise, but the documented n
    // stays the 18 that c was derived for.
    const skellam = secAggSettingsForModel(parse(...SECURE, ...distributed, '--distributed-noise', 'skellam', '--min-updates', '10'), MLP);
    const words = skellam.secureAggregation!;
    assert.ok(words.clipRange > 0.26 && words.clipRange < 0.275, `c = ${words.clipRange}`);
    assert.ok(words.wordBits! > 9, `b = ${words.wordBits}`);
    assert.equal(words.maxParticipants, 18);
  });
});

describe('a secure int4 round through the round engine', () => {
  it('announces the rotation, takes the padded rotated inputs, and aggregates their sum rotated back once', async () => {
    const n = 3;
    const wordBits = wordBitsFor(R, n);
    const secure: SecureAggregationSettings = {
      neighbours: 'all',
      clipRange: ROTATED_C,
      quantizationRange: R,
      wordBits,
      maxParticipants: maxParticipantsForWords(R, wordBits),
      rotated: true,
      stepTimeoutMs: 1000,
    };
    const fit = { epochs: 1, batchSize: 8, learningRate: 0.1, privacy };
    const h = new SecureHarness({ minClients: n, clientsPerRound: n, rounds: 1, secureAggregation: secure, fit }, D);
    for (let i = 0; i < n; i++) h.join();
    h.engine.start();
    await h.settle();
    const updates = spikyUpdates();
    const clients = new Map<string, { client: SecAggClient; config: SecAggConfig; update: Float32Array }>();
    for (const { participantId, message } of h.starts) {
      const { config: wire, index } = message.secagg!;
      const config = { ...wire, roundSeed: toBytes(wire.roundSeed) };
      assert.equal(config.rotated, true);
      assert.equal(config.vectorLength, 3072);
      // Every participant spikes coordinate 0 the same way: the evaluator reads the new model's first weight.
      const update = new Float32Array(updates.get(index)!);
      update[0] = 1.5;
      clients.set(participantId, { client: await SecAggClient.create(config, index), config, update });
    }
    for (const [id, { client }] of clients) assert.ok((await h.engine.submitSecAgg(id, 'advertise', client.advertise())).ok);
    await h.until(() => h.sent('secagg:keys').size === n, 'the key directory');
    for (const [id, directory] of h.sent('secagg:keys'))
      assert.ok((await h.engine.submitSecAgg(id, 'shares', await clients.get(id)!.client.shareKeys(directory as KeyDirectoryMessage))).ok);
    await h.until(() => h.sent('secagg:forwarded').size === n, 'the forwarded shares');
    for (const [id, forwarded] of h.sent('secagg:forwarded')) {
      const { client, config, update } = clients.get(id)!;
      const prepared = secureInput(update, h.starts.find((s) => s.participantId === id)!.message.config.privacy, config);
      const masked = await client.maskInput(forwarded as ForwardedSharesMessage, prepared.input, prepared.options);
      const sent = await h.engine.submitSecAgg(id, 'masked', masked);
      assert.ok(sent.ok, JSON.stringify(sent));
    }
    await h.until(() => h.sent('secagg:unmask-request').size === n, 'the unmasking request');
    for (const [id, request] of h.sent('secagg:unmask-request'))
      assert.ok((await h.engine.submitSecAgg(id, 'unmask', await clients.get(id)!.client.unmask(request as UnmaskRequestMessage))).ok);
    await h.until(() => h.engine.status().history.length === 1, 'the round to close');

    const record = h.engine.status().history[0]!;
    assert.equal(record.outcome, 'aggregated', record.reason);
    // The mean of the clipped first coordinates, back in the model's basis (still rotated it would be near 0).
    let expected = 0;
    for (const { update } of clients.values()) {
      const clipped = new Float32Array(update);
      clipToNorm(clipped, CLIP);
      expected += clipped[0]! / n;
    }
    assert.ok(expected > 0.6, `expected ${expected}`);
    assert.ok(Math.abs(record.metrics!.accuracy - expected) < 0.1, `first weight ${record.metrics!.accuracy}, expected ${expected}`);
  });
});
