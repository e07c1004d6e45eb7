import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, ProtocolError } from '../../core/protocol/errors.ts';
import { l2Norm } from '../../core/privacy/update-privacy.ts';
import { decodeFrame, encodeFrame, FrameKind } from '../../core/wire/frame.ts';
import { decodeUpdate } from '../../core/compression/update-decode.ts';

/** The plain sequential sum, the reference. */
function naiveNorm(values: Float32Array): number {
  let sum = 0;
  for (const v of values) sum += v * v;
  return Math.sqrt(sum);
}

const frameOf = (values: number[]) => encodeFrame(FrameKind.Update, Float32Array.from(values));
const codeOf = (fn: () => unknown): { code: string; message: string } => {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ProtocolError);
    return { code: error.code, message: error.message };
  }
  return assert.fail('expected a ProtocolError');
};

describe('l2Norm', () => {
  it('equals the sequential sum for every length modulo 4, the empty vector included', () => {
    for (let n = 0; n <= 11; n++) {
      const values = Float32Array.from({ length: n }, (_, i) => Math.sin(i + 1) * 3);
      const expected = naiveNorm(values);
      assert.ok(Math.abs(l2Norm(values) - expected) <= 1e-12 * Math.max(1, expected), `n = ${n}`);
    }
    assert.equal(l2Norm(Float32Array.from([3, 4])), 5);
  });

  it('is not finite exactly when a value is NaN or infinite, wherever it sits; finite at float32 extremes', () => {
    for (let n = 1; n <= 9; n++) {
      for (let at = 0; at < n; at++) {
        for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
          const values = new Float32Array(n).fill(0.5);
          values[at] = bad;
          assert.equal(Number.isFinite(l2Norm(values)), false, `n = ${n}, value ${at} = ${bad}`);
        }
      }
    }
    // Every value at float32's largest finite magnitude: the float64 sum of squares does not overflow.
    const largest = new Float32Array(1000).fill(3.4028234663852886e38);
    assert.ok(Number.isFinite(l2Norm(largest)));
  });
});

describe('decodeUpdate', () => {
  it('returns the values and their norm', () => {
    const values = Array.from({ length: 1001 }, (_, i) => Math.cos(i) * 1e-3);
    const decoded = decodeUpdate(frameOf(values), values.length);
    assert.deepEqual(decoded.update, decodeFrame(frameOf(values), { kind: FrameKind.Update, expectedCount: values.length }));
    assert.ok(Math.abs(decoded.norm - naiveNorm(Float32Array.from(values))) < 1e-15);
  });

  it('refuses a non-finite value with the same NON_FINITE answer as decodeFrame, naming the first bad index', () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      const values = [0.1, 0.2, 0.3, bad, 0.5, bad];
      const ours = codeOf(() => decodeUpdate(frameOf(values), values.length));
      const reference = codeOf(() => decodeFrame(frameOf(values), { kind: FrameKind.Update, expectedCount: values.length }));
      assert.deepEqual(ours, reference);
      assert.equal(ours.code, ErrorCode.NonFinite);
      assert.match(ours.message, /^value 3 is /);
    }
  });

  it('keeps every frame check: kind, length, header', () => {
    assert.equal(codeOf(() => decodeUpdate(encodeFrame(FrameKind.Weights, new Float32Array(4)), 4)).code, ErrorCode.BadFrame);
    assert.equal(codeOf(() => decodeUpdate(frameOf([1, 2, 3]), 4)).code, ErrorCode.WrongLength);
    assert.equal(codeOf(() => decodeUpdate(new Uint8Array(8), 4)).code, ErrorCode.BadFrame);
    assert.equal(codeOf(() => decodeUpdate('not binary', 4)).code, ErrorCode.BadFrame);
  });
});
