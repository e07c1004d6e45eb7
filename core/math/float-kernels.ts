/**
 * The two loops every update goes through on the coordinator, and a clip on
 * every participant: the sum of squares of float32 values (the L2 norm, and
 * with it the finiteness check) and the float64 running sum `sum += c·update`
 * (FedAvg). Each exists twice with the same result to the bit:
 *
 * - `simd`: a 301-byte WebAssembly module with 128-bit SIMD, about 5× faster
 *   for the sum and 2× for the squares than the scalar loops in V8. Every
 *   browser since 2023 and Node ≥ 16 has it.
 * - `scalar`: the same loops in JavaScript, for a platform without
 *   WebAssembly SIMD or where a content security policy forbids compiling it.
 *
 * Identical because both do the same IEEE operations in the same order: each
 * float32 is widened to float64 exactly, a product of two float32 values is
 * exact in float64, and the sum of squares runs four lanes, lane k taking the
 * values at indices ≡ k (mod 4), as the scalar loop's four accumulators do
 * (float-kernels.test.ts checks it bit for bit). There is no fused
 * multiply-add in WebAssembly SIMD, so `c·u + s` rounds twice in both.
 *
 *   const kernels = floatKernels();
 *   const norm = Math.sqrt(kernels.sumOfSquares(update));
 *   const sum = kernels.float64Sum(update.length);
 *   sum.addScaled(update, numExamples); // sum.values: a Float64Array
 */

/** A running float64 sum of scaled float32 vectors; `values` is a plain Float64Array view. */
export interface Float64Sum {
  readonly values: Float64Array;
  /** values[i] += coefficient · update[i] for every i; `update` has the sum's length. */
  addScaled(update: Float32Array, coefficient: number): void;
}

export interface FloatKernels {
  readonly name: 'simd' | 'scalar';
  /** Σ values[i]², in float64 (four lanes by index mod 4, combined as ((l0 + l1) + l2) + l3). */
  sumOfSquares(values: Float32Array): number;
  /** A zeroed sum of `length` values. */
  float64Sum(length: number): Float64Sum;
}

/**
 * The fastest kernels this platform runs: SIMD where WebAssembly SIMD
 * compiles and gives the scalar results on a probe, else scalar. The probe
 * catches what compiling cannot: a big-endian host (WebAssembly memory is
 * little-endian, typed arrays are the host's order) or an engine's bug.
 */
export function floatKernels(): FloatKernels {
  chosen ??= agreeingWithScalar(simdKernels()) ?? scalarKernels;
  return chosen;
}
let chosen: FloatKernels | undefined;

export const scalarKernels: FloatKernels = {
  name: 'scalar',
  sumOfSquares(values) {
    // Four independent sums: one sum is bound by the latency of each addition (about 3.5× slower).
    let a = 0;
    let b = 0;
    let c = 0;
    let d = 0;
    const n = values.length;
    const whole = n - (n % 4);
    let i = 0;
    for (; i < whole; i += 4) {
      const v0 = values[i]!;
      const v1 = values[i + 1]!;
      const v2 = values[i + 2]!;
      const v3 = values[i + 3]!;
      a += v0 * v0;
      b += v1 * v1;
      c += v2 * v2;
      d += v3 * v3;
    }
    for (; i < n; i++) a += values[i]! * values[i]!;
    return a + b + c + d;
  },
  float64Sum(length) {
    const values = new Float64Array(length);
    return {
      values,
      addScaled(update, coefficient) {
        checkLength(update, values.length);
        const whole = values.length - (values.length % 4);
        let i = 0;
        for (; i < whole; i += 4) {
          values[i]! += coefficient * update[i]!;
          values[i + 1]! += coefficient * update[i + 1]!;
          values[i + 2]! += coefficient * update[i + 2]!;
          values[i + 3]! += coefficient * update[i + 3]!;
        }
        for (; i < values.length; i++) values[i]! += coefficient * update[i]!;
      },
    };
  },
};

/** `kernels` if they give the scalar kernels' results on a probe, else undefined. */
export function agreeingWithScalar(kernels: FloatKernels | undefined): FloatKernels | undefined {
  if (kernels === undefined) return undefined;
  // Values of every magnitude and sign, and a length with a tail past the four-value step.
  const probe = Float32Array.from({ length: 11 }, (_, i) => (i % 3 === 0 ? -1 : 1) * 1.7 ** (i * 7 - 30));
  const fast = kernels.float64Sum(probe.length);
  const slow = scalarKernels.float64Sum(probe.length);
  for (const coefficient of [0.3, -2.5]) {
    fast.addScaled(probe, coefficient);
    slow.addScaled(probe, coefficient);
  }
  const same = kernels.sumOfSquares(probe) === scalarKernels.sumOfSquares(probe) && fast.values.every((v, i) => v === slow.values[i]);
  return same ? kernels : undefined;
}

function checkLength(update: Float32Array, length: number): void {
  if (update.length !== length) throw new RangeError(`update has ${update.length} values, the sum has ${length}`);
}

/** The WebAssembly subset used here, typed locally: core compiles against neither the DOM's nor Node's typings. */
interface WebAssemblyApi {
  Module: new (bytes: Uint8Array<ArrayBuffer>) => object;
  Memory: new (descriptor: { initial: number }) => { readonly buffer: ArrayBuffer };
  Instance: new (module: object, imports: { env: { memory: object } }) => { readonly exports: Record<string, unknown> };
}

interface KernelExports {
  sumSquares(pointer: number, count: number, lanes: number): void;
  addScaled(sum: number, update: number, count: number, coefficient: number): void;
}

/** Values copied into WebAssembly memory per kernel call: 64 KB, so a chunk is read from cache. */
const CHUNK = 16_384;
const PAGE = 65_536;
/** The four float64 lane sums of sumSquares. */
const LANES = 0;
const SCRATCH_CHUNK = 32;
const MAX_SUM_BYTES = 2 ** 31;

/** The SIMD kernels, or undefined where WebAssembly or its SIMD is missing or compiling is not allowed. */
export function simdKernels(): FloatKernels | undefined {
  const api = (globalThis as { WebAssembly?: WebAssemblyApi }).WebAssembly;
  if (api === undefined) return undefined;
  let module: object;
  try {
    module = new api.Module(kernelModuleBytes());
  } catch {
    return undefined;
  }
  const instantiate = (bytes: number) => {
    const memory = new api.Memory({ initial: Math.ceil(bytes / PAGE) });
    const exports = new api.Instance(module, { env: { memory } }).exports as unknown as KernelExports;
    return { buffer: memory.buffer, exports };
  };
  // One scratch memory for sumOfSquares: the lanes and one chunk. Its views never detach: it never grows.
  let scratch: ReturnType<typeof instantiate>;
  try {
    scratch = instantiate(SCRATCH_CHUNK + CHUNK * 4);
  } catch {
    return undefined;
  }
  const lanes = new Float64Array(scratch.buffer, LANES, 4);
  const scratchChunk = new Float32Array(scratch.buffer, SCRATCH_CHUNK, CHUNK);
  return {
    name: 'simd',
    sumOfSquares(values) {
      const n = values.length;
      const whole = n - (n % 4);
      lanes.fill(0);
      for (let start = 0; start < whole; start += CHUNK) {
        const count = Math.min(CHUNK, whole - start);
        scratchChunk.set(values.subarray(start, start + count));
        scratch.exports.sumSquares(SCRATCH_CHUNK, count, LANES);
      }
      let a = lanes[0]!;
      for (let i = whole; i < n; i++) a += values[i]! * values[i]!;
      return a + lanes[1]! + lanes[2]! + lanes[3]!;
    },
    float64Sum(length) {
      // The sum, then one chunk of the update (16-byte aligned).
      const chunkOffset = Math.ceil((length * 8) / 16) * 16;
      // Addresses are 32-bit: past 2 GB (268 million values) the scalar loop sums, as it does where memory runs out.
      if (chunkOffset + CHUNK * 4 > MAX_SUM_BYTES) return scalarKernels.float64Sum(length);
      let instance: ReturnType<typeof instantiate>;
      try {
        instance = instantiate(chunkOffset + CHUNK * 4);
      } catch {
        return scalarKernels.float64Sum(length);
      }
      const { buffer, exports } = instance;
      const values = new Float64Array(buffer, 0, length);
      const chunk = new Float32Array(buffer, chunkOffset, CHUNK);
      return {
        values,
        addScaled(update, coefficient) {
          checkLength(update, length);
          const whole = length - (length % 4);
          for (let start = 0; start < whole; start += CHUNK) {
            const count = Math.min(CHUNK, whole - start);
            chunk.set(update.subarray(start, start + count));
            exports.addScaled(start * 8, chunkOffset, count, coefficient);
          }
          for (let i = whole; i < length; i++) values[i]! += coefficient * update[i]!;
        },
      };
    },
  };
}

/**
 * The module, assembled here (no toolchain, no binary file to ship). In the
 * text format, with `count` a multiple of 4 and the memory imported:
 *
 *   (func $sumSquares (param $p i32) (param $count i32) (param $lanes i32)
 *     (local $end i32) (local $ab v128) (local $cd v128) (local $v v128)
 *     $end = $p + $count·4;  $ab = v128.load($lanes);  $cd = v128.load($lanes + 16)
 *     while $p < $end:
 *       $v = f64x2.promote_low_f32x4(v128.load64_zero($p));      $ab += $v·$v   ;; values p, p+1
 *       $v = f64x2.promote_low_f32x4(v128.load64_zero($p + 8));  $cd += $v·$v   ;; values p+2, p+3
 *       $p += 16
 *     v128.store($lanes, $ab);  v128.store($lanes + 16, $cd))
 *
 *   (func $addScaled (param $sum i32) (param $u i32) (param $count i32) (param $c f64)
 *     (local $end i32) (local $cc v128)
 *     $end = $u + $count·4;  $cc = f64x2.splat($c)
 *     while $u < $end:
 *       v128.store($sum,      v128.load($sum)      + f64x2.promote_low_f32x4(v128.load64_zero($u)) · $cc)
 *       v128.store($sum + 16, v128.load($sum + 16) + f64x2.promote_low_f32x4(v128.load64_zero($u + 8)) · $cc)
 *       $sum += 32;  $u += 16)
 */
export function kernelModuleBytes(): Uint8Array<ArrayBuffer> {
  const [i32, f64, v128] = [0x7f, 0x7c, 0x7b];
  const get = (local: number) => [0x20, local];
  const set = (local: number) => [0x21, local];
  const tee = (local: number) => [0x22, local];
  // i32.const takes a signed LEB128: one byte holds 0..63, all this module needs.
  const i32Const = (value: number) => {
    if (!(value >= 0 && value < 64)) throw new RangeError(`i32.const ${value} needs a longer encoding`);
    return [0x41, value];
  };
  const [i32Add, i32Shl, i32GeU] = [0x6a, 0x74, 0x4f];
  const simd = (opcode: number, ...immediates: number[]) => [0xfd, ...leb128(opcode), ...immediates];
  // Memory arguments: log2 of the alignment, then the offset.
  const load = (offset: number) => simd(0x00, 4, ...leb128(offset));
  const store = (offset: number) => simd(0x0b, 4, ...leb128(offset));
  const load64Zero = (offset: number) => simd(0x5d, 3, ...leb128(offset));
  const promoteLow = simd(0x5f);
  const [f64x2Add, f64x2Mul, f64x2Splat] = [simd(0xf0), simd(0xf2), simd(0x14)];
  // block { loop { br_if 1 (cond); body; br 0 } }
  const whileLess = (index: number, end: number, body: number[]) => [
    ...[0x02, 0x40, 0x03, 0x40],
    ...get(index),
    ...get(end),
    i32GeU,
    ...[0x0d, 1],
    ...body,
    ...[0x0c, 0, 0x0b, 0x0b],
  ];
  const endOf = (start: number, count: number, local: number) => [
    ...get(start),
    ...get(count),
    ...i32Const(2),
    i32Shl,
    i32Add,
    ...set(local),
  ];

  // sumSquares: params 0 p, 1 count, 2 lanes; locals 3 end, 4 ab, 5 cd, 6 v.
  const square = (accumulator: number, offset: number) => [
    ...get(accumulator),
    ...get(0),
    ...load64Zero(offset),
    ...promoteLow,
    ...tee(6),
    ...get(6),
    ...f64x2Mul,
    ...f64x2Add,
    ...set(accumulator),
  ];
  const sumSquares = [
    ...vector([
      [1, i32],
      [3, v128],
    ]),
    ...endOf(0, 1, 3),
    ...[...get(2), ...load(0), ...set(4), ...get(2), ...load(16), ...set(5)],
    ...whileLess(0, 3, [...square(4, 0), ...square(5, 8), ...get(0), ...i32Const(16), i32Add, ...set(0)]),
    ...[...get(2), ...get(4), ...store(0), ...get(2), ...get(5), ...store(16)],
    0x0b,
  ];

  // addScaled: params 0 sum, 1 u, 2 count, 3 c; locals 4 end, 5 cc.
  const scaledAdd = (offset: number) => [
    ...get(0),
    ...get(0),
    ...load(offset * 2),
    ...get(1),
    ...load64Zero(offset),
    ...promoteLow,
    ...get(5),
    ...f64x2Mul,
    ...f64x2Add,
    ...store(offset * 2),
  ];
  const addScaled = [
    ...vector([
      [1, i32],
      [1, v128],
    ]),
    ...endOf(1, 2, 4),
    ...[...get(3), ...f64x2Splat, ...set(5)],
    ...whileLess(1, 4, [
      ...scaledAdd(0),
      ...scaledAdd(8),
      ...[...get(0), ...i32Const(32), i32Add, ...set(0), ...get(1), ...i32Const(16), i32Add, ...set(1)],
    ]),
    0x0b,
  ];

  const name = (text: string) => vector([...text].map((ch) => [ch.charCodeAt(0)]));
  const funcType = (params: number[]) => [0x60, ...vector(params.map((p) => [p])), 0];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vector([funcType([i32, i32, i32]), funcType([i32, i32, i32, f64])])),
    // import env.memory, at least one page
    ...section(2, vector([[...name('env'), ...name('memory'), 0x02, 0x00, 0x01]])),
    ...section(3, vector([[0], [1]])),
    ...section(
      7,
      vector([
        [...name('sumSquares'), 0x00, 0],
        [...name('addScaled'), 0x00, 1],
      ]),
    ),
    ...section(10, vector([sumSquares, addScaled].map((body) => [...leb128(body.length), ...body]))),
  ]);
}

function leb128(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

const vector = (items: readonly number[][]) => [...leb128(items.length), ...items.flat()];
const section = (id: number, content: number[]) => [id, ...leb128(content.length), ...content];
