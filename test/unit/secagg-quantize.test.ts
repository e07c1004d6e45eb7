import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SecAggError } from '../../core/secagg/errors.ts';
import {
  addInto,
  DEFAULT_QUANTIZATION,
  dequantizeSum,
  maxParticipants,
  quantizationStep,
  quantize,
  sumErrorBound,
  validateQuantization,
  type QuantizationConfig,
} from '../../core/secagg/quantize.ts';
import { SeededRandom } from '../../core/random/prng.ts';

const invalid = (e: unknown): boolean => e instanceof SecAggError && e.code === 'invalid-config';

function randomVector(length: number, spread: number, seed: number): Float32Array {
  const r = new SeededRandom(seed);
  return Float32Array.from({ length }, () => (2 * r.next() - 1) * spread);
}

describe('quantisation into Z_2^32', () => {
  const config: QuantizationConfig = { clipRange: 1, quantizationRange: 2 ** 16 };
  const step = quantizationStep(config);

  it('one coordinate: |Δ·z − clip(x)| < Δ, and values outside [−c, c] clip to ±c exactly', () => {
    const x = randomVector(50_000, 1.5, 1);
    x[0] = 1;
    x[1] = -1;
    x[2] = 0;
    x[3] = Infinity;
    x[4] = -Infinity;
    const back = dequantizeSum(quantize(x, config), 1, config);
    for (let i = 0; i < x.length; i++) {
      const clipped = Math.max(-1, Math.min(1, x[i]!));
      assert.ok(Math.abs(back[i]! - clipped) < step, `coordinate ${i}: ${x[i]} → ${back[i]}`);
    }
    assert.deepEqual([...back.subarray(0, 5)], [1, -1, 0, 1, -1]);
  });

  it('stochastic rounding is unbiased: the mean of many encodings converges to x', () => {
    const x = new Float32Array(20_000).fill(0.25 + 0.3 * step); // 0.3 of a step above the grid point 0.25 = 2^13·Δ
    const mean = dequantizeSum(quantize(x, config), 1, config).reduce((a, b) => a + b, 0) / x.length;
    // per-coordinate sd ≤ Δ/2; the mean of 20k: sd ≤ Δ/283; allow 6 sd
    assert.ok(Math.abs(mean - x[0]!) < (6 * step) / Math.sqrt(x.length), `mean ${mean} vs ${x[0]}`);
  });

  it('the sum of n encodings decodes within n·Δ of the sum of the clipped inputs', () => {
    const n = 40;
    const length = 10_000;
    const sum = new Uint32Array(length);
    const exact = new Float64Array(length);
    for (let u = 0; u < n; u++) {
      const x = randomVector(length, 1.2, 100 + u);
      addInto(sum, quantize(x, config));
      for (let i = 0; i < length; i++) exact[i]! += Math.max(-1, Math.min(1, x[i]!));
    }
    const decoded = dequantizeSum(sum, n, config);
    const bound = sumErrorBound(config, n);
    assert.equal(bound, n * step);
    let worst = 0;
    for (let i = 0; i < length; i++) worst = Math.max(worst, Math.abs(decoded[i]! - exact[i]!));
    assert.ok(worst < bound, `worst ${worst} ≥ bound ${bound}`);
    // typical error is far smaller: sd ≤ √n·Δ/2
    assert.ok(worst < 6 * Math.sqrt(n) * (step / 2), `worst ${worst}`);
  });

  it('maxParticipants: the largest n with n·R/2 ≤ 2^31 − 1 (1023 for R = 2^22)', () => {
    assert.equal(maxParticipants(DEFAULT_QUANTIZATION), 1023);
    assert.equal(maxParticipants({ clipRange: 1, quantizationRange: 2 ** 16 }), 65535);
    assert.equal(maxParticipants({ clipRange: 1, quantizationRange: 2 ** 31 }), 1);
    for (const r of [2, 6, 2 ** 10, 2 ** 22, 3_000_000, 2 ** 30]) {
      const max = maxParticipants({ clipRange: 1, quantizationRange: r });
      assert.ok((max * r) / 2 <= 2 ** 31 - 1 && ((max + 1) * r) / 2 > 2 ** 31 - 1, `R = ${r}`);
    }
  });

  it('no wrap at n = maxParticipants even when every input sits at +c or −c; n + 1 is refused', () => {
    const q: QuantizationConfig = { clipRange: 2, quantizationRange: 2 ** 22 };
    const max = maxParticipants(q);
    const top = quantize(new Float32Array([2, -2, 5, -5]), q);
    const sum = new Uint32Array(4);
    for (let u = 0; u < max; u++) addInto(sum, top);
    assert.deepEqual([...dequantizeSum(sum, max, q)], [2 * max, -2 * max, 2 * max, -2 * max]);
    assert.throws(() => dequantizeSum(sum, max + 1, q), invalid);
    assert.throws(() => sumErrorBound(q, max + 1), invalid);
  });

  it('refuses unusable configurations and NaN', () => {
    for (const bad of [
      { clipRange: 0, quantizationRange: 2 ** 16 },
      { clipRange: -1, quantizationRange: 2 ** 16 },
      { clipRange: NaN, quantizationRange: 2 ** 16 },
      { clipRange: Infinity, quantizationRange: 2 ** 16 },
      { clipRange: 1, quantizationRange: 2 ** 16 + 1 },
      { clipRange: 1, quantizationRange: 0 },
      { clipRange: 1, quantizationRange: 2 ** 32 },
      { clipRange: 1, quantizationRange: 1.5 },
    ]) {
      assert.throws(() => validateQuantization(bad), invalid, JSON.stringify(bad));
    }
    assert.throws(() => quantize(new Float32Array([0, NaN]), config), RangeError);
  });

  it('the encoding is two’s complement: small negatives sit just below 2^32', () => {
    const z = quantize(new Float32Array([-step, step, 0]), config);
    assert.deepEqual([...z], [0xffffffff, 1, 0]);
  });
});
