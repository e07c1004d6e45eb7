import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DpFedAvg } from '../../core/aggregation/dp-fedavg.ts';
import { FedAvg } from '../../core/aggregation/fedavg.ts';
import { CoordinateMedian, Krum } from '../../core/aggregation/robust.ts';
import { FedAdam } from '../../core/aggregation/server-optimizers.ts';
import type { Strategy } from '../../core/aggregation/strategy.ts';
import { ErrorFeedback } from '../../core/compression/error-feedback.ts';
import { RoundDecoder } from '../../core/compression/round-decoder.ts';
import { encodeValues, rotationFor } from '../../core/compression/update-codec.ts';
import { ErrorCode, ProtocolError } from '../../core/protocol/errors.ts';
import type { UpdateCompression } from '../../core/protocol/messages.ts';
import { l2Norm, privatizeUpdate, GaussianSampler } from '../../core/privacy/update-privacy.ts';
import { SeededRandom } from '../../core/random/prng.ts';
import { FrameKind } from '../../core/wire/frame.ts';

const COUNT = 2500;
const INT4: UpdateCompression = { encoding: 'int4', rotationSeed: 77 };

function gaussian(n: number, random: SeededRandom, scale = 0.01): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(random.next(), 1e-12);
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random.next());
  }
  return out;
}

function distance(a: Float32Array, b: Float32Array | Float64Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i]! - b[i]!) ** 2;
  return Math.sqrt(sum);
}

/** Runs one round of `strategy` over int4 frames through the coordinator's decoder. */
function aggregateInt4(
  strategy: Strategy,
  global: Float32Array,
  frames: readonly ArrayBuffer[],
): { weights: Float32Array; rotated: boolean } {
  const decoder = new RoundDecoder(global.length, INT4, strategy);
  const aggregator = decoder.beginRound(strategy, { round: 1, globalWeights: global });
  for (const [i, frame] of frames.entries())
    aggregator.add({ participantId: `p${i}`, numExamples: 10 * (i + 1), ...decoder.decode(frame) });
  return { weights: aggregator.finish()!, rotated: decoder.aggregatesRotated };
}

describe('int4 rounds on the coordinator', () => {
  const random = new SeededRandom(5);
  const global = gaussian(COUNT, random, 0.1);
  const updates = [0, 1, 2, 3, 4].map(() => gaussian(COUNT, random));
  const encoded = updates.map((u) => encodeValues(FrameKind.Update, u, INT4, random));
  const frames = encoded.map((e) => e.frame);
  const decodedUpdates = encoded.map((e) => e.decoded);

  /** The same rule fed each update rotated back on its own: the reference result. */
  function perUpdate(strategy: Strategy): Float32Array {
    const aggregator = strategy.beginRound({ round: 1, globalWeights: global });
    for (const [i, u] of decodedUpdates.entries()) aggregator.add({ participantId: `p${i}`, numExamples: 10 * (i + 1), update: u });
    return aggregator.finish()!;
  }

  it('FedAvg and Krum sum rotated updates and rotate back once, with the result of rotating each back', () => {
    for (const strategy of [new FedAvg(), new Krum({ byzantine: 1 })]) {
      const { weights, rotated } = aggregateInt4(strategy, global, frames);
      assert.equal(rotated, true, strategy.name);
      assert.ok(distance(weights, perUpdate(strategy)) < 1e-5 * l2Norm(global), strategy.name);
    }
  });

  it('the coordinate-wise median and FedAdam rotate each update back before the rule sees it', () => {
    for (const strategy of [new CoordinateMedian(), new FedAdam()]) {
      const { weights, rotated } = aggregateInt4(strategy, global, frames);
      assert.equal(rotated, false, strategy.name);
      const reference = strategy instanceof FedAdam ? perUpdate(new FedAdam()) : perUpdate(strategy);
      assert.ok(distance(weights, reference) < 1e-5 * l2Norm(global), strategy.name);
    }
  });

  it('refuses a frame in another encoding than the round asked for', () => {
    const decoder = new RoundDecoder(COUNT, INT4, new FedAvg());
    const int8 = encodeValues(FrameKind.Update, updates[0]!, { encoding: 'int8' }, random).frame;
    assert.throws(
      () => decoder.decode(int8),
      (e: unknown) => e instanceof ProtocolError && e.code === ErrorCode.BadEncoding,
    );
    const plain = new RoundDecoder(COUNT, undefined, new FedAvg());
    assert.throws(
      () => plain.decode(frames[0]),
      (e: unknown) => e instanceof ProtocolError && e.code === ErrorCode.BadEncoding,
    );
  });

  it('central DP-FedAvg in the rotated basis still clips every update to S', () => {
    const clipNorm = 0.05; // below every update's norm (≈ 0.5), so each is clipped
    const dp = () =>
      new DpFedAvg({
        placement: 'central',
        noiseMultiplier: 1e-9,
        clip: { kind: 'fixed', norm: clipNorm },
        sampleRate: 1,
        expectedClients: 5,
        delta: 1e-5,
        uniform: new SeededRandom(1),
      });
    const { weights, rotated } = aggregateInt4(dp(), global, frames);
    assert.equal(rotated, true);
    // The change is the mean of five updates clipped to S: at most S in norm, and the same as clipping each rotated-back update.
    const change = weights.map((w, i) => w - global[i]!);
    assert.ok(l2Norm(change) <= clipNorm * (1 + 1e-4), `change norm ${l2Norm(change)}`);
    assert.ok(distance(weights, perUpdate(dp())) < 1e-3 * clipNorm);
  });
});

describe('client-side error feedback', () => {
  it('makes the sum of what the coordinator decodes track the sum of the released updates', () => {
    const random = new SeededRandom(9);
    const rounds = 60;
    for (const compression of [{ encoding: 'int8' }, INT4] as const) {
      const withFeedback = new ErrorFeedback();
      const released = new Float64Array(COUNT);
      const decodedWith = new Float64Array(COUNT);
      const decodedWithout = new Float64Array(COUNT);
      for (let r = 0; r < rounds; r++) {
        const update = gaussian(COUNT, random);
        for (let i = 0; i < COUNT; i++) released[i]! += update[i]!;
        const pending = withFeedback.encode(update, compression, random);
        pending.commit();
        const plain = encodeValues(FrameKind.Update, update, compression, random).decoded;
        for (let i = 0; i < COUNT; i++) {
          decodedWith[i]! += pending.decoded[i]!;
          decodedWithout[i]! += plain[i]!;
        }
      }
      const releasedNorm = Math.sqrt(released.reduce((s, v) => s + v * v, 0));
      const errorWith = distance(Float32Array.from(decodedWith), released);
      const errorWithout = distance(Float32Array.from(decodedWithout), released);
      // With feedback the error of the sum is the last residual alone (one round's error), not sixty rounds' worth.
      assert.ok(Math.abs(errorWith - l2Norm(withFeedback.carried!)) < 1e-3 * releasedNorm, compression.encoding);
      assert.ok(errorWith < errorWithout / 4, `${compression.encoding}: with ${errorWith}, without ${errorWithout}`);
    }
  });

  it('keeps no residual for float32 and none until an update is accepted (commit)', () => {
    const feedback = new ErrorFeedback();
    const update = gaussian(COUNT, new SeededRandom(2));
    feedback.encode(update, { encoding: 'int8' }, new SeededRandom(3));
    assert.equal(feedback.carried, undefined);
    feedback.encode(update, { encoding: 'int8' }, new SeededRandom(3)).commit();
    assert.ok(feedback.carried);
    feedback.encode(update, { encoding: 'float32' }, new SeededRandom(3)).commit();
    assert.equal(feedback.carried, undefined);
  });

  it('with DP the residual stays the compression error of the released update: every round, far below the clip norm', () => {
    // ErrorFeedback.encode sees only the released (clipped and noised) update, so what it carries is a function of
    // released values; what this checks is that the carried part stays small round after round under the clip,
    // so the compensated update it adds to the next release adds no data-dependent signal of note.
    const clipNorm = 0.1;
    const direction = gaussian(COUNT, new SeededRandom(4));
    const privacy = { clipNorm, noiseStd: 0.01 };
    const feedback = new ErrorFeedback();
    for (let round = 0; round < 5; round++) {
      const raw = direction.map((v) => v * 2 ** (2 + round));
      privatizeUpdate(raw, privacy, new GaussianSampler(new SeededRandom(100 + round)));
      feedback.encode(raw, { encoding: 'int8' }, new SeededRandom(200 + round)).commit();
      assert.ok(l2Norm(feedback.carried!) < clipNorm / 10, `round ${round}: residual ${l2Norm(feedback.carried!)}`);
    }
  });
});

describe('rotation per round', () => {
  it('depends on the seed: another round, another rotation', () => {
    const x = gaussian(COUNT, new SeededRandom(1));
    assert.notDeepEqual(rotationFor(COUNT, 1).rotate(x), rotationFor(COUNT, 2).rotate(x));
  });
});
