import { DEFAULT_ROTATION_BLOCK, RandomRotation } from '../math/hadamard.ts';
import { ErrorCode, ProtocolError } from '../protocol/errors.ts';
import type { UpdateCompression, UpdateEncodingName } from '../protocol/messages.ts';
import type { UniformSource } from '../random/prng.ts';
import {
  checkFrameLength,
  encodeFrame,
  firstNonFinite,
  FRAME_HEADER_BYTES,
  FrameDtype,
  readFloat32Body,
  readFrameHeader,
  writeFrameHeader,
  type FrameHeader,
  type FrameKind,
} from '../wire/frame.ts';
import { fromFloat16Bits, isFloat16NonFinite, toFloat16Bits } from './float16.ts';
import { dequantize, quantizeStochastic, type QuantizedBlocks } from './stochastic-rounding.ts';

/**
 * Encoding and decoding of frames in every encoding (docs/protocol.md §5.3):
 * float32, float16, and int8 / int4 with per-block float32 scales and
 * unbiased stochastic rounding; int4 after the round's seeded Hadamard
 * rotation. Both the participant's encoder and the coordinator's decoder are
 * here, so the two cannot drift apart, and the decoder refuses anything the
 * encoder would not have written.
 */

/** Values per scale for int8 and int4: 256 values share one float32 scale (0.125 bit per value). */
export const QUANTIZATION_BLOCK = 256;
/** The largest block size a decoder accepts. */
export const MAX_QUANTIZATION_BLOCK = 65536;

const DTYPE: Record<UpdateEncodingName, FrameDtype> = {
  float32: FrameDtype.Float32,
  float16: FrameDtype.Float16,
  int8: FrameDtype.Int8,
  int4: FrameDtype.Int4,
};
const ENCODING_OF_DTYPE: ReadonlyMap<number, UpdateEncodingName> = new Map(
  Object.entries(DTYPE).map(([name, dtype]) => [dtype, name as UpdateEncodingName]),
);
/** The largest code of a quantised encoding: codes are symmetric, −128 and −8 are never written. */
const MAX_CODE = { int8: 127, int4: 7 } as const;

/**
 * The int4 rotation for a model of `count` values: blocks of 1024 (or the
 * next power of two of a smaller model, so a tiny model is not padded to 1024).
 */
export function rotationFor(count: number, seed: number): RandomRotation {
  return new RandomRotation(seed >>> 0, count, rotationBlock(count));
}

/** The rotation's block B for a model of `count` values: 1024, or the next power of two of a smaller model. */
export function rotationBlock(count: number): number {
  return Math.min(DEFAULT_ROTATION_BLOCK, 2 ** Math.ceil(Math.log2(Math.max(1, count))));
}

/** The length of `rotationFor(count, seed)`'s output, for any seed: `count` padded to a multiple of its block. */
export function rotatedLengthFor(count: number): number {
  const block = rotationBlock(count);
  return Math.ceil(count / block) * block;
}

/** How many values an encoding's body carries for a model of `count` values (int4: the rotated length). */
export function encodedLength(encoding: UpdateEncodingName, count: number): number {
  return encoding === 'int4' ? rotatedLengthFor(count) : count;
}

/** The exact frame size of `count` values in `encoding` (docs/protocol.md §5.3). */
export function frameBytes(encoding: UpdateEncodingName, count: number, blockSize = QUANTIZATION_BLOCK): number {
  switch (encoding) {
    case 'float32':
      return FRAME_HEADER_BYTES + 4 * count;
    case 'float16':
      return FRAME_HEADER_BYTES + 2 * count;
    case 'int8':
    case 'int4': {
      const length = encodedLength(encoding, count);
      const scales = 4 * Math.ceil(length / blockSize);
      return FRAME_HEADER_BYTES + scales + (encoding === 'int8' ? length : Math.ceil(length / 2));
    }
    default:
      throw new Error(`unknown encoding ${encoding satisfies never as string}`);
  }
}

/** An encoded frame and the values the receiver will decode from it (in the model's coordinates: error feedback needs them). */
export interface EncodedFrame {
  readonly frame: ArrayBuffer;
  readonly decoded: Float32Array;
}

/**
 * Encodes `values` (a model's worth) as a frame in `compression.encoding`.
 * `random` supplies the stochastic rounding (SecureRandom in participants).
 * int4 needs `compression.rotationSeed`.
 */
export function encodeValues(kind: FrameKind, values: Float32Array, compression: UpdateCompression, random: UniformSource): EncodedFrame {
  const { encoding } = compression;
  switch (encoding) {
    case 'float32':
      return { frame: encodeFrame(kind, values), decoded: values };
    case 'float16':
      return encodeFloat16(kind, values);
    case 'int8':
    case 'int4': {
      const rotation = encoding === 'int4' ? rotationFor(values.length, requireSeed(compression)) : undefined;
      const input = rotation ? rotation.rotate(values) : values;
      const blocks = quantizeStochastic(input, MAX_CODE[encoding], QUANTIZATION_BLOCK, random);
      const frame = new ArrayBuffer(frameBytes(encoding, values.length));
      writeFrameHeader(frame, kind, DTYPE[encoding], values.length, QUANTIZATION_BLOCK);
      writeQuantizedBody(frame, encoding, blocks);
      const dequantized = dequantize(blocks, QUANTIZATION_BLOCK, new Float32Array(input.length));
      return { frame, decoded: rotation ? rotation.unrotate(dequantized) : dequantized };
    }
    default:
      throw new Error(`unknown encoding ${encoding satisfies never as string}`);
  }
}

/** A float16 frame (round to nearest even) and the values it decodes to. */
export function encodeFloat16(kind: FrameKind, values: Float32Array): EncodedFrame {
  const frame = new ArrayBuffer(frameBytes('float16', values.length));
  const view = writeFrameHeader(frame, kind, FrameDtype.Float16, values.length, 0);
  const decoded = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const bits = toFloat16Bits(values[i]!);
    view.setUint16(FRAME_HEADER_BYTES + 2 * i, bits, true);
    decoded[i] = fromFloat16Bits(bits);
  }
  return { frame, decoded };
}

function requireSeed(compression: UpdateCompression): number {
  const seed = compression.rotationSeed;
  if (seed === undefined || !Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`int4 needs a uint32 rotationSeed, got ${seed}`);
  }
  return seed;
}

function writeQuantizedBody(frame: ArrayBuffer, encoding: 'int8' | 'int4', blocks: QuantizedBlocks): void {
  const view = new DataView(frame);
  let offset = FRAME_HEADER_BYTES;
  for (let b = 0; b < blocks.scales.length; b++, offset += 4) view.setFloat32(offset, blocks.scales[b]!, true);
  const out = new Uint8Array(frame, offset);
  const codes = blocks.codes;
  if (encoding === 'int8') {
    out.set(new Uint8Array(codes.buffer, codes.byteOffset, codes.length));
    return;
  }
  // Two's-complement nibbles, the even-indexed value in the low nibble.
  for (let i = 0; i < codes.length; i += 2) {
    const low = codes[i]! & 0x0f;
    const high = i + 1 < codes.length ? codes[i + 1]! & 0x0f : 0;
    out[i >> 1] = low | (high << 4);
  }
}

export interface DecodeValuesOptions {
  readonly kind: FrameKind;
  /** The receiver's model size. */
  readonly expectedCount: number;
  /** The encodings this receiver accepts (the round's one, for an update); another gets BAD_ENCODING. */
  readonly allowed: readonly UpdateEncodingName[];
  /** Refuse NaN and ±Infinity in a float32 or int8/int4 body (default true; float16 always does). False: the caller checks. */
  readonly requireFinite?: boolean;
}

/**
 * A decoded frame. `values` are in the model's coordinates, except for int4,
 * whose values stay rotated (`rotated: true`, `rotatedLength` of them): the
 * coordinator sums rotated updates and rotates back once per aggregate
 * (./round-decoder.ts), or calls `rotation.unrotate` itself.
 */
export type DecodedFrame =
  | { readonly encoding: Exclude<UpdateEncodingName, 'int4'>; readonly rotated: false; readonly values: Float32Array }
  | { readonly encoding: 'int4'; readonly rotated: true; readonly values: Float32Array };

/**
 * Decodes and validates a frame in any encoding. Throws ProtocolError:
 * BAD_FRAME (header), BAD_ENCODING (an encoding the receiver does not
 * accept, a bad block size, a negative or non-finite scale, a code out of
 * range, a non-zero padding nibble), WRONG_LENGTH (count, byte length) or
 * NON_FINITE (a value that is not finite), in the order of docs/protocol.md §5.1.
 * The float32 values may share memory with `data`, as decodeFrame's do.
 */
export function decodeValues(data: unknown, options: DecodeValuesOptions): DecodedFrame {
  const header = readFrameHeader(data, options.kind);
  const encoding = ENCODING_OF_DTYPE.get(header.dtype);
  if (encoding === undefined) throw new ProtocolError(ErrorCode.BadFrame, `unsupported dtype ${header.dtype}`);
  if (!options.allowed.includes(encoding)) {
    throw new ProtocolError(ErrorCode.BadEncoding, `the frame is ${encoding}, this receiver accepts ${options.allowed.join(' or ')}`);
  }
  switch (encoding) {
    case 'float32':
    case 'float16': {
      if (header.parameter !== 0) throw new ProtocolError(ErrorCode.BadFrame, 'reserved header field is not zero');
      const values =
        encoding === 'float32'
          ? readFloat32Body(header, { kind: options.kind, expectedCount: options.expectedCount, requireFinite: options.requireFinite })
          : readFloat16Body(header, options.expectedCount);
      return { encoding, rotated: false, values };
    }
    case 'int8':
      return {
        encoding,
        rotated: false,
        values: readQuantizedBody(header, encoding, options.expectedCount, options.requireFinite ?? true),
      };
    case 'int4':
      return { encoding, rotated: true, values: readQuantizedBody(header, encoding, options.expectedCount, options.requireFinite ?? true) };
    default:
      throw new Error(`unknown encoding ${encoding satisfies never as string}`);
  }
}

function readFloat16Body(header: FrameHeader, expectedCount: number): Float32Array {
  checkFrameLength(header, expectedCount, 2 * header.count);
  const { view, count } = header;
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const bits = view.getUint16(FRAME_HEADER_BYTES + 2 * i, true);
    if (isFloat16NonFinite(bits)) throw new ProtocolError(ErrorCode.NonFinite, `value ${i} is ${fromFloat16Bits(bits)}`);
    values[i] = fromFloat16Bits(bits);
  }
  return values;
}

function readQuantizedBody(header: FrameHeader, encoding: 'int8' | 'int4', expectedCount: number, requireFinite: boolean): Float32Array {
  const blockSize = header.parameter;
  if (!(blockSize >= 1 && blockSize <= MAX_QUANTIZATION_BLOCK)) {
    throw new ProtocolError(ErrorCode.BadEncoding, `block size ${blockSize} is outside 1..${MAX_QUANTIZATION_BLOCK}`);
  }
  checkFrameLength(header, expectedCount, frameBytes(encoding, header.count, blockSize) - FRAME_HEADER_BYTES);
  const length = encodedLength(encoding, header.count);
  const blocks = Math.ceil(length / blockSize);
  const { view, bytes } = header;
  const scales = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    const scale = view.getFloat32(FRAME_HEADER_BYTES + 4 * b, true);
    // Written as max|x|/L: never negative, never NaN or infinite.
    if (!(scale >= 0 && scale <= 3.4028234663852886e38)) throw new ProtocolError(ErrorCode.BadEncoding, `block ${b}'s scale is ${scale}`);
    scales[b] = scale;
  }
  const codeBytes = bytes.subarray(FRAME_HEADER_BYTES + 4 * blocks);
  const codes = new Int8Array(length);
  const maxCode = MAX_CODE[encoding];
  if (encoding === 'int8') {
    for (let i = 0; i < length; i++) {
      const code = (codeBytes[i]! << 24) >> 24;
      if (code < -maxCode) throw new ProtocolError(ErrorCode.BadEncoding, `value ${i}'s code is ${code}, outside -${maxCode}..${maxCode}`);
      codes[i] = code;
    }
  } else {
    for (let i = 0; i < length; i++) {
      const code = (((codeBytes[i >> 1]! >> ((i & 1) * 4)) & 0x0f) << 28) >> 28;
      if (code < -maxCode) throw new ProtocolError(ErrorCode.BadEncoding, `value ${i}'s code is ${code}, outside -${maxCode}..${maxCode}`);
      codes[i] = code;
    }
    if (length % 2 === 1 && codeBytes[length >> 1]! >> 4 !== 0) {
      throw new ProtocolError(ErrorCode.BadEncoding, 'the padding nibble after the last code is not zero');
    }
  }
  const values = dequantize({ scales, codes }, blockSize, new Float32Array(length));
  // A code times a finite scale can still overflow to infinity; decodeUpdate's norm pass finds that instead (requireFinite false).
  if (!requireFinite) return values;
  const bad = firstNonFinite(values);
  if (bad >= 0) throw new ProtocolError(ErrorCode.NonFinite, `value ${bad} decodes to ${values[bad]}`);
  return values;
}
