import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, ProtocolError } from '../../core/protocol/errors.ts';
import { decodeFrame, encodeFrame, FRAME_HEADER_BYTES, FrameKind } from '../../core/wire/frame.ts';

function expectCode(fn: () => unknown, code: ErrorCode): void {
  assert.throws(fn, (error: unknown) => error instanceof ProtocolError && error.code === code);
}

describe('wire frame', () => {
  const values = Float32Array.from([0, 1.5, -2.25, 3.4028234663852886e38, 1e-45, -0]);

  it('round-trips values exactly', () => {
    const frame = encodeFrame(FrameKind.Update, values);
    assert.equal(frame.byteLength, FRAME_HEADER_BYTES + 4 * values.length);
    const back = decodeFrame(frame, { kind: FrameKind.Update, expectedCount: values.length });
    assert.deepEqual(Array.from(back), Array.from(values));
  });

  it('writes the documented little-endian header', () => {
    const bytes = new Uint8Array(encodeFrame(FrameKind.Weights, Float32Array.from([1])));
    assert.deepEqual(Array.from(bytes.subarray(0, 16)), [0x46, 0x4c, 0x57, 0x54, 1, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(Array.from(bytes.subarray(16)), [0, 0, 0x80, 0x3f]); // 1.0f little-endian
  });

  it('decodes from an unaligned Node Buffer view by copying', () => {
    const frame = new Uint8Array(encodeFrame(FrameKind.Update, values));
    const padded = Buffer.alloc(frame.length + 3);
    padded.set(frame, 3);
    const view = padded.subarray(3);
    const back = decodeFrame(view, { kind: FrameKind.Update, expectedCount: values.length });
    assert.deepEqual(Array.from(back), Array.from(values));
    padded.fill(0);
    assert.equal(back[1], 1.5);
  });

  it('rejects malformed frames with stable codes', () => {
    const good = new Uint8Array(encodeFrame(FrameKind.Update, values));
    const opts = { kind: FrameKind.Update, expectedCount: values.length };
    expectCode(() => decodeFrame('not binary', opts), ErrorCode.BadFrame);
    expectCode(() => decodeFrame(good.subarray(0, 8), opts), ErrorCode.BadFrame);
    const badMagic = good.slice();
    badMagic[0] = 0;
    expectCode(() => decodeFrame(badMagic, opts), ErrorCode.BadFrame);
    const badVersion = good.slice();
    badVersion[4] = 9;
    expectCode(() => decodeFrame(badVersion, opts), ErrorCode.BadFrame);
    expectCode(() => decodeFrame(good, { ...opts, kind: FrameKind.Weights }), ErrorCode.BadFrame);
    const reserved = good.slice();
    reserved[13] = 1;
    expectCode(() => decodeFrame(reserved, opts), ErrorCode.BadFrame);
    expectCode(() => decodeFrame(good, { ...opts, expectedCount: values.length + 1 }), ErrorCode.WrongLength);
    expectCode(() => decodeFrame(good.subarray(0, good.length - 4), opts), ErrorCode.WrongLength);
  });

  it('rejects NaN and infinities', () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const frame = encodeFrame(FrameKind.Update, Float32Array.from([1, bad, 2]));
      expectCode(() => decodeFrame(frame, { kind: FrameKind.Update, expectedCount: 3 }), ErrorCode.NonFinite);
    }
  });
});
