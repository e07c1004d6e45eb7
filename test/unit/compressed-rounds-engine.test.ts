import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeValues, encodeValues } from '../../core/compression/update-codec.ts';
import { ErrorCode } from '../../core/protocol/errors.ts';
import { SeededRandom } from '../../core/random/prng.ts';
import { encodeFrame, FrameKind } from '../../core/wire/frame.ts';
import { EngineHarness } from '../helpers/engine-harness.ts';

const DIM = 1500;

function values(seed: number): Float32Array {
  const random = new SeededRandom(seed);
  return Float32Array.from({ length: DIM }, () => (random.next() - 0.5) * 0.02);
}

describe('compressed updates in plain rounds', () => {
  it('int4: the round asks for it with a fresh rotation seed, decodes through the round decoder and refuses float32 frames', async () => {
    const h = new EngineHarness({ minClients: 3, clientsPerRound: 3, updateEncoding: 'int4' }, DIM);
    const [a, b, c] = [h.join(), h.join(), h.join()];
    h.engine.start();
    await h.settle();
    const compression = h.starts[0]!.message.config.compression;
    assert.equal(compression?.encoding, 'int4');
    assert.ok(Number.isInteger(compression.rotationSeed));
    const random = new SeededRandom(1);
    const ua = encodeValues(FrameKind.Update, values(1), compression, random);
    const ub = encodeValues(FrameKind.Update, values(2), compression, random);
    assert.ok(h.engine.submitUpdate(a, h.update(1, [], { update: new Uint8Array(ua.frame), numExamples: 10 })).ok);
    const refused = h.engine.submitUpdate(c, h.update(1, Array.from(values(3))));
    assert.equal(refused.ok ? undefined : refused.error.code, ErrorCode.BadEncoding);
    assert.ok(h.engine.submitUpdate(b, h.update(1, [], { update: new Uint8Array(ub.frame), numExamples: 30 })).ok);
    await h.settle();
    assert.equal(h.ends[0]?.outcome, 'aggregated');
    // FedAvg of what the participants' frames decode to, by example count: the rotated sum rotated back once.
    const weights = h.engine.globalModel.weights;
    for (let i = 0; i < DIM; i++) {
      const expected = (10 * ua.decoded[i]! + 30 * ub.decoded[i]!) / 40;
      assert.ok(Math.abs(weights[i]! - expected) < 1e-6, `weight ${i}: ${weights[i]} vs ${expected}`);
    }
    const record = h.engine.status().history[0]!;
    assert.equal(record.rejectionReasons?.[ErrorCode.BadEncoding], 1);
    assert.equal(record.bytesIn, ua.frame.byteLength + ub.frame.byteLength);
    // Bytes by encoding: what the two accepted updates and three model frames would have been as float32.
    assert.deepEqual(record.encoding, {
      update: 'int4',
      model: 'float32',
      bytesInFloat32: 2 * (16 + 4 * DIM),
      bytesOutFloat32: 3 * (16 + 4 * DIM),
    });
    await h.settle();
    const next = h.starts.find((s) => s.message.round === 2)!.message.config.compression;
    assert.notEqual(next?.rotationSeed, compression.rotationSeed, 'a new rotation every round');
  });

  it('float32 rounds carry no compression and refuse compressed frames', async () => {
    const h = new EngineHarness({ minClients: 2, clientsPerRound: 2 }, DIM);
    const [a, b] = [h.join(), h.join()];
    h.engine.start();
    await h.settle();
    assert.equal(h.starts[0]!.message.config.compression, undefined);
    const int8 = encodeValues(FrameKind.Update, values(1), { encoding: 'int8' }, new SeededRandom(1)).frame;
    const refused = h.engine.submitUpdate(a, h.update(1, [], { update: new Uint8Array(int8) }));
    assert.equal(refused.ok ? undefined : refused.error.code, ErrorCode.BadEncoding);
    assert.ok(h.engine.submitUpdate(b, h.update(1, Array.from(values(5)))).ok);
    await h.settle();
    const record = h.engine.status().history[0]!;
    assert.equal(record.received, 1);
    assert.equal(record.encoding, undefined, 'float32 traffic needs no comparison');
  });

  it('--model-encoding float16 sends the model as float16 frames; the model itself stays float32', async () => {
    const h = new EngineHarness({ minClients: 1, clientsPerRound: 1, modelEncoding: 'float16' }, DIM);
    const a = h.join();
    h.engine.start();
    await h.settle();
    const frame = h.starts[0]!.message.model.weights;
    assert.equal(frame.byteLength, 16 + 2 * DIM);
    assert.ok(h.engine.submitUpdate(a, h.update(1, [], { update: new Uint8Array(encodeFrame(FrameKind.Update, values(4))) })).ok);
    await h.settle();
    const model = h.engine.globalModel;
    const sent = h.starts.find((s) => s.message.round === 2)!.message.model.weights;
    const decoded = decodeValues(sent, { kind: FrameKind.Weights, expectedCount: DIM, allowed: ['float16'] }).values;
    for (let i = 0; i < DIM; i++) assert.ok(Math.abs(decoded[i]! - model.weights[i]!) <= Math.abs(model.weights[i]!) * 2 ** -11 + 2 ** -25);
    const record = h.engine.status().history[0]!;
    assert.equal(record.bytesOut, 16 + 2 * DIM);
    assert.deepEqual(record.encoding, { update: 'float32', model: 'float16', bytesInFloat32: 16 + 4 * DIM, bytesOutFloat32: 16 + 4 * DIM });
  });
});
