import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fromFloat16Bits, toFloat16Bits } from '../../core/compression/float16.ts';
import { quantizeStochastic, dequantize } from '../../core/compression/stochastic-rounding.ts';
import {
  decodeValues,
  encodeValues,
  frameBytes,
  QUANTIZATION_BLOCK,
  rotationFor,
  type DecodeValuesOptions,
} from '../../core/compression/update-codec.ts';
import { ErrorCode, ProtocolError } from '../../core/protocol/errors.ts';
import type { UpdateCompression, UpdateEncodingName } from '../../core/protocol/messages.ts';
import { SecureRandom, SeededRandom } from '../../core/random/prng.ts';
import { FRAME_HEADER_BYTES, FrameKind } from '../../core/wire/frame.ts';

const COUNT = 3000; // not a multiple of the quantisation block nor of the rotation block
const INT4: UpdateCompression = { encoding: 'int4', rotationSeed: 12345 };

function gaussian(n: number, seed: number, scale = 0.01): Float32Array {
  const random = new SeededRandom(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(random.next(), 1e-12);
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random.next());
  }
  return out;
}

function decode(frame: ArrayBuffer | Uint8Array, encoding: UpdateEncodingName, count = COUNT): Float32Array {
  const decoded = decodeValues(frame, { kind: FrameKind.Update, expectedCount: count, allowed: [encoding] });
  return decoded.rotated ? rotationFor(count, INT4.rotationSeed!).unrotate(decoded.values) : decoded.values;
}

function expectCode(fn: () => unknown, code: ErrorCode): void {
  assert.throws(fn, (error: unknown) => error instanceof ProtocolError && error.code === code, `expected ${code}`);
}

function blockMax(values: Float32Array, block: number): number[] {
  const out: number[] = [];
  for (let start = 0; start < values.length; start += block) {
    let max = 0;
    for (let i = start; i < Math.min(values.length, start + block); i++) max = Math.max(max, Math.abs(values[i]!));
    out.push(max);
  }
  return out;
}

describe('float16', () => {
  it('rounds to nearest even, handles subnormals, and saturates instead of overflowing', () => {
    assert.equal(toFloat16Bits(1), 0x3c00);
    assert.equal(toFloat16Bits(-2), 0xc000);
    assert.equal(toFloat16Bits(65504), 0x7bff);
    assert.equal(toFloat16Bits(1e9), 0x7bff);
    assert.equal(toFloat16Bits(-Infinity), 0xfbff);
    assert.equal(toFloat16Bits(2 ** -24), 0x0001); // smallest subnormal
    assert.equal(toFloat16Bits(2 ** -26), 0); // below half of it
    assert.equal(toFloat16Bits(1 + 2 ** -11), 0x3c00); // a tie rounds to the even mantissa
    assert.equal(toFloat16Bits(1 + 3 * 2 ** -11), 0x3c02);
    for (let bits = 0; bits < 0x7c00; bits++) assert.equal(toFloat16Bits(fromFloat16Bits(bits)), bits);
  });
});

describe('update encodings: round-trip error bounds', () => {
  const values = gaussian(COUNT, 1);
  values[17] = 0.5; // an outlier: int8 pays for it in its block only, int4 spreads it by the rotation

  it('float32 is exact and float16 is within half an ulp of binary16', () => {
    assert.deepEqual(decode(encodeValues(FrameKind.Update, values, { encoding: 'float32' }, new SecureRandom()).frame, 'float32'), values);
    const back = decode(encodeValues(FrameKind.Update, values, { encoding: 'float16' }, new SecureRandom()).frame, 'float16');
    for (let i = 0; i < COUNT; i++) {
      const v = values[i]!;
      // binary16: 11 significant bits; below 2^-14 the spacing is 2^-24.
      const bound = Math.max(Math.abs(v) * 2 ** -11, 2 ** -25);
      assert.ok(Math.abs(back[i]! - v) <= bound, `value ${i}: ${back[i]} vs ${v}`);
    }
  });

  it('int8 is within one quantisation step of each value (step = block max / 127)', () => {
    const encoded = encodeValues(FrameKind.Update, values, { encoding: 'int8' }, new SecureRandom());
    assert.equal(encoded.frame.byteLength, frameBytes('int8', COUNT));
    assert.equal(encoded.frame.byteLength, FRAME_HEADER_BYTES + 4 * Math.ceil(COUNT / QUANTIZATION_BLOCK) + COUNT);
    const back = decode(encoded.frame, 'int8');
    assert.deepEqual(back, encoded.decoded);
    const maxima = blockMax(values, QUANTIZATION_BLOCK);
    for (let i = 0; i < COUNT; i++) {
      const step = maxima[Math.floor(i / QUANTIZATION_BLOCK)]! / 127;
      assert.ok(Math.abs(back[i]! - values[i]!) <= step * (1 + 1e-6), `value ${i}`);
    }
  });

  it('int4 rotates, is within one step in the rotated basis, and its error norm is far below the outlier-dominated unrotated one', () => {
    const encoded = encodeValues(FrameKind.Update, values, INT4, new SecureRandom());
    const rotation = rotationFor(COUNT, INT4.rotationSeed!);
    assert.equal(rotation.rotatedLength, 3072);
    assert.equal(encoded.frame.byteLength, FRAME_HEADER_BYTES + 4 * (3072 / QUANTIZATION_BLOCK) + 3072 / 2);
    const decoded = decodeValues(encoded.frame, { kind: FrameKind.Update, expectedCount: COUNT, allowed: ['int4'] });
    assert.equal(decoded.rotated, true);
    const rotated = rotation.rotate(values);
    const maxima = blockMax(rotated, QUANTIZATION_BLOCK);
    for (let i = 0; i < rotated.length; i++) {
      const step = maxima[Math.floor(i / QUANTIZATION_BLOCK)]! / 7;
      assert.ok(Math.abs(decoded.values[i]! - rotated[i]!) <= step * (1 + 1e-5), `rotated value ${i}`);
    }
    const back = rotation.unrotate(decoded.values);
    assert.deepEqual(back, encoded.decoded);
    // Without the rotation, the outlier's block would have a step of 0.5/7 ≈ 0.07 for its 255 neighbours of σ = 0.01.
    const error = Math.hypot(...back.map((v, i) => v - values[i]!));
    const norm = Math.hypot(...values);
    assert.ok(error < 0.35 * norm, `relative error ${error / norm}`);
  });

  it('the rotation is its own inverse (H·D, up to float rounding)', () => {
    const rotation = rotationFor(COUNT, 99);
    const back = rotation.unrotate(rotation.rotate(values));
    const largest = Math.max(...values.map(Math.abs));
    for (let i = 0; i < COUNT; i++) assert.ok(Math.abs(back[i]! - values[i]!) <= 1e-6 * largest, `value ${i}`);
    // Norm preserving, so norm-based defences and clipping see the same norms in either basis.
    const norm = (v: Float32Array) => Math.hypot(...v);
    assert.ok(Math.abs(norm(rotation.rotate(values)) - norm(values)) < 1e-5 * norm(values), 'norm kept');
  });
});

describe('stochastic rounding', () => {
  it('is unbiased: the mean of many draws converges to the value', () => {
    // Values at awkward fractions of the step, one block (the block max, 1, sets step 1/127 for int8 and 1/7 for int4).
    const values = Float32Array.from([1, 0.3, -0.77, 0.011, -0.5001, 0.999, 0.0001, -0.123456]);
    const draws = 20000;
    const random = new SecureRandom();
    for (const maxCode of [127, 7]) {
      const sums = new Float64Array(values.length);
      for (let d = 0; d < draws; d++) {
        const q = quantizeStochastic(values, maxCode, values.length, random);
        const back = dequantize(q, values.length, new Float32Array(values.length));
        for (let i = 0; i < values.length; i++) sums[i]! += back[i]!;
      }
      const step = 1 / maxCode;
      for (let i = 0; i < values.length; i++) {
        const mean = sums[i]! / draws;
        // The rounding error is at most one step with variance ≤ step²/4: 5 standard errors of the mean.
        const tolerance = (5 * step) / 2 / Math.sqrt(draws);
        assert.ok(Math.abs(mean - values[i]!) < tolerance, `maxCode ${maxCode}, value ${values[i]}: mean ${mean}`);
      }
    }
  });

  it('is not round-to-nearest: a value a quarter step above a code rounds up about a quarter of the time', () => {
    const values = Float32Array.from([1, 0.25 / 7]);
    let up = 0;
    const random = new SecureRandom();
    for (let d = 0; d < 4000; d++) if (quantizeStochastic(values, 7, 2, random).codes[1] === 1) up++;
    assert.ok(up > 850 && up < 1150, `rounded up ${up} of 4000 times`);
  });
});

describe('compressed frames: every malformed case is refused', () => {
  const values = gaussian(COUNT, 2);
  const opts = (encoding: UpdateEncodingName): DecodeValuesOptions => ({
    kind: FrameKind.Update,
    expectedCount: COUNT,
    allowed: [encoding],
  });
  const frameOf = (compression: UpdateCompression) =>
    new Uint8Array(encodeValues(FrameKind.Update, values, compression, new SeededRandom(3)).frame);
  const mutate = (frame: Uint8Array, change: (view: DataView, bytes: Uint8Array) => void) => {
    const copy = frame.slice();
    change(new DataView(copy.buffer), copy);
    return copy;
  };
  const scalesOffset = FRAME_HEADER_BYTES;

  it('refuses an encoding the round did not ask for, and an unknown dtype', () => {
    expectCode(() => decodeValues(frameOf({ encoding: 'int8' }), opts('float32')), ErrorCode.BadEncoding);
    expectCode(() => decodeValues(frameOf({ encoding: 'float32' }), opts('int8')), ErrorCode.BadEncoding);
    expectCode(() => decodeValues(frameOf(INT4), opts('int8')), ErrorCode.BadEncoding);
    expectCode(
      () =>
        decodeValues(
          mutate(frameOf({ encoding: 'int8' }), (v) => v.setUint8(7, 9)),
          opts('int8'),
        ),
      ErrorCode.BadFrame,
    );
  });

  for (const encoding of ['float16', 'int8', 'int4'] as const) {
    const compression: UpdateCompression = encoding === 'int4' ? INT4 : { encoding };
    it(`${encoding}: refuses a wrong count, a truncated or padded body, and a wrong kind`, () => {
      const good = frameOf(compression);
      assert.ok(decodeValues(good, opts(encoding)));
      expectCode(() => decodeValues(good, { ...opts(encoding), expectedCount: COUNT + 1 }), ErrorCode.WrongLength);
      expectCode(() => decodeValues(good.subarray(0, good.length - 1), opts(encoding)), ErrorCode.WrongLength);
      const longer = new Uint8Array(good.length + 1);
      longer.set(good);
      expectCode(() => decodeValues(longer, opts(encoding)), ErrorCode.WrongLength);
      expectCode(
        () =>
          decodeValues(
            mutate(good, (v) => v.setUint32(8, COUNT - 1, true)),
            opts(encoding),
          ),
        ErrorCode.WrongLength,
      );
      expectCode(() => decodeValues(good, { ...opts(encoding), kind: FrameKind.Weights }), ErrorCode.BadFrame);
    });
  }

  it('float16: refuses a non-zero reserved field, infinities and NaNs', () => {
    const good = frameOf({ encoding: 'float16' });
    expectCode(
      () =>
        decodeValues(
          mutate(good, (v) => v.setUint32(12, 1, true)),
          opts('float16'),
        ),
      ErrorCode.BadFrame,
    );
    expectCode(
      () =>
        decodeValues(
          mutate(good, (v) => v.setUint16(16 + 2 * 5, 0x7c00, true)),
          opts('float16'),
        ),
      ErrorCode.NonFinite,
    );
    expectCode(
      () =>
        decodeValues(
          mutate(good, (v) => v.setUint16(16 + 2 * 9, 0xfe00, true)),
          opts('float16'),
        ),
      ErrorCode.NonFinite,
    );
  });

  for (const encoding of ['int8', 'int4'] as const) {
    const compression: UpdateCompression = encoding === 'int4' ? INT4 : { encoding };
    it(`${encoding}: refuses bad block sizes, bad scales and out-of-range codes`, () => {
      const good = frameOf(compression);
      const blocks = Math.ceil((encoding === 'int4' ? 3072 : COUNT) / QUANTIZATION_BLOCK);
      const codes = scalesOffset + 4 * blocks;
      // Block size 0 or above the limit; another valid one makes the byte length wrong.
      expectCode(
        () =>
          decodeValues(
            mutate(good, (v) => v.setUint32(12, 0, true)),
            opts(encoding),
          ),
        ErrorCode.BadEncoding,
      );
      expectCode(
        () =>
          decodeValues(
            mutate(good, (v) => v.setUint32(12, 65537, true)),
            opts(encoding),
          ),
        ErrorCode.BadEncoding,
      );
      expectCode(
        () =>
          decodeValues(
            mutate(good, (v) => v.setUint32(12, 128, true)),
            opts(encoding),
          ),
        ErrorCode.WrongLength,
      );
      for (const scale of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -1e-3]) {
        expectCode(
          () =>
            decodeValues(
              mutate(good, (v) => v.setFloat32(scalesOffset + 4, scale, true)),
              opts(encoding),
            ),
          ErrorCode.BadEncoding,
        );
      }
      // A finite scale whose product overflows float32.
      expectCode(
        () =>
          decodeValues(
            mutate(good, (v, b) => {
              v.setFloat32(scalesOffset, 3e38, true);
              b[codes] = encoding === 'int8' ? 100 : 0x77;
            }),
            opts(encoding),
          ),
        ErrorCode.NonFinite,
      );
      // The one code a symmetric quantiser never writes: -128 (int8) or -8 (a nibble 0x8).
      expectCode(
        () =>
          decodeValues(
            mutate(good, (_v, b) => (b[codes + 7] = 0x80)),
            opts(encoding),
          ),
        ErrorCode.BadEncoding,
      );
      if (encoding === 'int4') {
        expectCode(
          () =>
            decodeValues(
              mutate(good, (_v, b) => (b[codes + 8] = (b[codes + 8]! & 0x0f) | 0x80)),
              opts(encoding),
            ),
          ErrorCode.BadEncoding,
        );
      }
    });
  }

  it('int4: refuses a non-zero padding nibble after an odd number of codes', () => {
    const count = 3; // rotation block 4: four codes, even; use int4 on a 1-value model (rotation block 1: one code, odd)
    const one = new Uint8Array(encodeValues(FrameKind.Update, Float32Array.from([0.5]), INT4, new SeededRandom(1)).frame);
    assert.equal(one.length, FRAME_HEADER_BYTES + 4 + 1);
    const back = decodeValues(one, { kind: FrameKind.Update, expectedCount: 1, allowed: ['int4'] });
    assert.equal(back.values.length, 1);
    const bad = one.slice();
    bad[bad.length - 1] = bad[bad.length - 1]! | 0x10;
    expectCode(() => decodeValues(bad, { kind: FrameKind.Update, expectedCount: 1, allowed: ['int4'] }), ErrorCode.BadEncoding);
    assert.equal(rotationFor(count, 1).rotatedLength, 4);
  });
});

describe('docs/protocol.md §5.3', () => {
  it('the int8 example frame decodes to 1.0 and -63 steps of 1/127', () => {
    const hex = '46 4c 57 54 01 00 02 03 02 00 00 00 00 01 00 00 04 02 01 3c 7f c1';
    const bytes = Uint8Array.from(hex.split(' ').map((h) => Number.parseInt(h, 16)));
    const { values } = decodeValues(bytes, { kind: FrameKind.Update, expectedCount: 2, allowed: ['int8'] });
    const scale = Math.fround(1 / 127);
    assert.deepEqual(Array.from(values), [Math.fround(127 * scale), Math.fround(-63 * scale)]);
    assert.ok(Math.abs(values[0]! - 1) < 1e-6);
  });
});
