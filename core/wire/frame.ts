import { ErrorCode, ProtocolError } from '../protocol/errors.ts';

/**
 * The binary frame that carries model weights and updates on the wire.
 *
 * Layout (all integers little-endian), 16-byte header then the values:
 *
 *   offset size field
 *   0      4    magic "FLWT" (0x46 0x4C 0x57 0x54)
 *   4      2    format version, currently 1
 *   6      1    kind: 1 = global weights, 2 = update (weights delta)
 *   7      1    dtype (the encoding): 1 = float32, 2 = float16, 3 = int8, 4 = int4
 *   8      4    count: number of values
 *   12     4    float32/float16: reserved, must be 0; int8/int4: the block size
 *   16     4*count  float32 values, little-endian, in the model's
 *                   flattening order (docs/protocol.md, "Weights layout")
 *
 * This file reads and writes the header and the float32 body; the other
 * encodings' bodies are core/compression/update-codec.ts's (docs/protocol.md §5.3).
 *
 * The header is 16 bytes so the values start 4-byte aligned when the frame
 * itself is. Decoding then views the values in place; socket.io can hand
 * Node code Buffers at arbitrary offsets, and those are copied.
 */
export const FRAME_MAGIC = 0x54574c46; // "FLWT" read as a little-endian u32
export const FRAME_VERSION = 1;
export const FRAME_HEADER_BYTES = 16;

export const FrameKind = { Weights: 1, Update: 2 } as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

/** The dtype byte: how the values are encoded (core/compression/update-codec.ts for all but float32). */
export const FrameDtype = { Float32: 1, Float16: 2, Int8: 3, Int4: 4 } as const;
export type FrameDtype = (typeof FrameDtype)[keyof typeof FrameDtype];
const DTYPE_FLOAT32 = FrameDtype.Float32;
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Encodes values as a frame. The result owns a fresh ArrayBuffer. */
export function encodeFrame(kind: FrameKind, values: Float32Array): ArrayBuffer {
  const buffer = new ArrayBuffer(FRAME_HEADER_BYTES + values.length * 4);
  const view = writeFrameHeader(buffer, kind, DTYPE_FLOAT32, values.length, 0);
  if (LITTLE_ENDIAN_HOST) {
    new Float32Array(buffer, FRAME_HEADER_BYTES, values.length).set(values);
  } else {
    for (let i = 0; i < values.length; i++) view.setFloat32(FRAME_HEADER_BYTES + 4 * i, values[i]!, true);
  }
  return buffer;
}

export interface DecodeOptions {
  readonly kind: FrameKind;
  /** The number of values the receiver's model has; anything else is rejected. */
  readonly expectedCount: number;
  /** Reject NaN and +-Infinity (default true). */
  readonly requireFinite?: boolean;
}

/**
 * Decodes and validates a frame. Accepts an ArrayBuffer or any view of one
 * (a Node Buffer included). The result shares memory with `data` when the
 * values are 4-byte aligned (the common case, and no copy of a large update),
 * so copy it before mutating `data`. Throws ProtocolError with BAD_FRAME,
 * WRONG_LENGTH or NON_FINITE.
 */
export function decodeFrame(data: unknown, options: DecodeOptions): Float32Array {
  const header = readFrameHeader(data, options.kind);
  if (header.dtype !== DTYPE_FLOAT32) throw new ProtocolError(ErrorCode.BadFrame, `unsupported dtype ${header.dtype}`);
  if (header.parameter !== 0) throw new ProtocolError(ErrorCode.BadFrame, 'reserved header field is not zero');
  return readFloat32Body(header, options);
}

/** A frame's header fields, checked up to the kind; the caller checks the dtype, the parameter and the body. */
export interface FrameHeader {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly dtype: number;
  readonly count: number;
  /** Offset 12: reserved (0) for float32 and float16, the block size for int8 and int4. */
  readonly parameter: number;
}

/** Writes the 16-byte header at the start of `buffer`; returns a view of the whole buffer. */
export function writeFrameHeader(buffer: ArrayBuffer, kind: FrameKind, dtype: FrameDtype, count: number, parameter: number): DataView {
  const view = new DataView(buffer);
  view.setUint32(0, FRAME_MAGIC, true);
  view.setUint16(4, FRAME_VERSION, true);
  view.setUint8(6, kind);
  view.setUint8(7, dtype);
  view.setUint32(8, count, true);
  view.setUint32(12, parameter, true);
  return view;
}

/** Checks binary data, length, magic, version and kind (BAD_FRAME), and reads the rest of the header. */
export function readFrameHeader(data: unknown, expectedKind: FrameKind): FrameHeader {
  const bytes = asBytes(data);
  if (bytes === null) throw new ProtocolError(ErrorCode.BadFrame, 'expected binary data (ArrayBuffer or Uint8Array)');
  if (bytes.byteLength < FRAME_HEADER_BYTES) {
    throw new ProtocolError(ErrorCode.BadFrame, `frame is ${bytes.byteLength} bytes, shorter than the ${FRAME_HEADER_BYTES}-byte header`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== FRAME_MAGIC) throw new ProtocolError(ErrorCode.BadFrame, 'bad frame magic (expected "FLWT")');
  const version = view.getUint16(4, true);
  if (version !== FRAME_VERSION) throw new ProtocolError(ErrorCode.BadFrame, `unsupported frame version ${version}`);
  const kind = view.getUint8(6);
  if (kind !== expectedKind) throw new ProtocolError(ErrorCode.BadFrame, `frame kind ${kind}, expected ${expectedKind}`);
  return { bytes, view, dtype: view.getUint8(7), count: view.getUint32(8, true), parameter: view.getUint32(12, true) };
}

/** The count and exact byte length checks every encoding shares (WRONG_LENGTH). */
export function checkFrameLength(header: FrameHeader, expectedCount: number, bodyBytes: number): void {
  if (header.count !== expectedCount) {
    throw new ProtocolError(ErrorCode.WrongLength, `frame holds ${header.count} values, the model has ${expectedCount}`);
  }
  const expectedBytes = FRAME_HEADER_BYTES + bodyBytes;
  if (header.bytes.byteLength !== expectedBytes) {
    throw new ProtocolError(ErrorCode.WrongLength, `frame is ${header.bytes.byteLength} bytes, its header says ${expectedBytes}`);
  }
}

/** The float32 body of a checked header (dtype 1), viewed in place when aligned. */
export function readFloat32Body(header: FrameHeader, options: DecodeOptions): Float32Array {
  const { bytes, view, count } = header;
  checkFrameLength(header, options.expectedCount, count * 4);
  let values: Float32Array;
  const valuesOffset = bytes.byteOffset + FRAME_HEADER_BYTES;
  if (LITTLE_ENDIAN_HOST && valuesOffset % 4 === 0) {
    values = new Float32Array(bytes.buffer, valuesOffset, count);
  } else if (LITTLE_ENDIAN_HOST) {
    // A Float32Array cannot view unaligned bytes: copy them.
    values = new Float32Array(count);
    new Uint8Array(values.buffer).set(bytes.subarray(FRAME_HEADER_BYTES));
  } else {
    values = new Float32Array(count);
    for (let i = 0; i < count; i++) values[i] = view.getFloat32(FRAME_HEADER_BYTES + 4 * i, true);
  }
  if (options.requireFinite ?? true) {
    const bad = firstNonFinite(values);
    if (bad >= 0) throw new ProtocolError(ErrorCode.NonFinite, `value ${bad} is ${values[bad]}`);
  }
  return values;
}

/** Index of the first NaN or infinite value, or -1. */
export function firstNonFinite(values: Float32Array): number {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    // v - v is NaN exactly when v is NaN or infinite, and is cheaper than Number.isFinite.
    if (v - v !== 0) return i;
  }
  return -1;
}

function asBytes(data: unknown): Uint8Array | null {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return null;
}
