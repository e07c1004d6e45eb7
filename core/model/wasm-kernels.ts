import * as tf from '@tensorflow/tfjs';

const KERNEL = 'Conv2DBackpropFilter';

/**
 * Kernels that training needs and tfjs-backend-wasm 4.22 lacks, built from
 * the wasm backend's own kernels. Today that is one: `Conv2DBackpropFilter`,
 * the kernel gradient of a Conv2D layer, without which `optimizer.minimize`
 * of any Conv2D model (the built-in `cnn`) fails on wasm with "Kernel
 * 'Conv2DBackpropFilter' not registered for backend wasm".
 *
 *   await tf.setBackend('wasm');
 *   registerWasmTrainingKernels();
 *   optimizer.minimize(() => loss(model.apply(x)));  // now works for the cnn
 *
 * Safe to call any number of times, and before or after the wasm backend is
 * initialised; does nothing when the wasm backend's kernels are not loaded
 * (this module never imports the wasm package, so core stays backend-free)
 * or when a `Conv2DBackpropFilter` for wasm is already registered.
 */
export function registerWasmTrainingKernels(): void {
  // Typed as never null, but null when no backend of that name was registered.
  if ((tf.findBackendFactory('wasm') as unknown) == null) return;
  if (tf.getKernel(KERNEL, 'wasm') !== undefined) return;
  const conv2d = tf.getKernel('Conv2D', 'wasm');
  const transpose = tf.getKernel('Transpose', 'wasm');
  const slice = tf.getKernel('Slice', 'wasm');
  if (conv2d === undefined || transpose === undefined || slice === undefined) return;
  tf.registerKernel({
    kernelName: KERNEL,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => conv2DBackpropFilter(inputs, backend, attrs ?? {}, { conv2d, transpose, slice }),
  });
}

interface Kernels {
  readonly conv2d: tf.KernelConfig;
  readonly transpose: tf.KernelConfig;
  readonly slice: tf.KernelConfig;
}

type Quad = [number, number, number, number];
type Pair = [number, number];
type Padding = 'same' | 'valid' | number | [Pair, Pair, Pair, Pair];

/**
 * dW[i, j, c, o] = Σ_{n,h,w} xpad[n, h·sh + i, w·sw + j, c] · dy[n, h, w, o]
 *
 * is a stride-1 convolution of x with the batch as channels ([C, Hp, Wp, N])
 * by dy as the filter ([Ho, Wo, N, O]) dilated by the forward strides, giving
 * [C, kh', kw', O]; kh' ≥ kh, and the rows past kh (input rows that a strided
 * or 'valid' forward pass never read) are cut off. XNNPACK runs the
 * convolution. Dilated forward convolutions are refused: tfjs has no gradient
 * for them on any backend, so they never reach this kernel from `tf.grad`.
 */
function conv2DBackpropFilter(inputs: tf.NamedTensorInfoMap, backend: unknown, attrs: tf.NamedAttrMap, kernels: Kernels): tf.TensorInfo {
  if (!(backend instanceof tf.KernelBackend)) throw new Error(`${KERNEL} (wasm): not called with a kernel backend`);
  const x = inputs.x;
  const dy = inputs.dy;
  if (x === undefined || dy === undefined) throw new Error(`${KERNEL} (wasm): needs inputs x and dy`);
  if (x.shape.length !== 4 || dy.shape.length !== 4)
    throw new Error(`${KERNEL} (wasm): x and dy must be rank 4, got [${x.shape}] and [${dy.shape}]`);
  if (x.dtype !== 'float32' || dy.dtype !== 'float32')
    throw new Error(`${KERNEL} (wasm): only float32 is supported, got ${x.dtype} and ${dy.dtype}`);

  const dataFormat = attrs.dataFormat;
  if (dataFormat !== undefined && dataFormat !== 'NHWC')
    throw new Error(`${KERNEL} (wasm): data format ${String(dataFormat)} is not supported (only NHWC)`);
  const dilations = attrs.dilations;
  if (dilations !== undefined && !pair(dilations, 'dilations').every((d) => d === 1)) {
    throw new Error(`${KERNEL} (wasm): dilations ${JSON.stringify(dilations)} are not supported (only 1)`);
  }
  const strides = pair(attrs.strides ?? 1, 'strides');
  const pad = padding(attrs.pad);
  const filterShape = quad(attrs.filterShape, 'filterShape');
  const rounding: unknown = attrs.dimRoundingMode;
  let dimRoundingMode: 'floor' | 'round' | 'ceil' | undefined;
  if (rounding === 'floor' || rounding === 'round' || rounding === 'ceil') dimRoundingMode = rounding;
  else if (rounding !== undefined && rounding !== null)
    throw new Error(`${KERNEL} (wasm): bad dimRoundingMode ${JSON.stringify(rounding)}`);

  const [n, h, w, c] = x.shape as Quad;
  const [kh, kw, cin, cout] = filterShape;
  if (cin !== c || cout !== dy.shape[3] || dy.shape[0] !== n) {
    throw new Error(`${KERNEL} (wasm): filter [${filterShape}] does not fit x [${x.shape}] and dy [${dy.shape}]`);
  }
  const info = tf.backend_util.computeConv2DInfo(x.shape as Quad, filterShape, strides, 1, pad, dimRoundingMode);
  const [, ho, wo] = dy.shape as Quad;
  if (info.outHeight !== ho || info.outWidth !== wo) {
    throw new Error(
      `${KERNEL} (wasm): dy [${dy.shape}] is not the output of a ${kh}x${kw} convolution of x [${x.shape}] (expected ${info.outHeight}x${info.outWidth})`,
    );
  }
  const { top, left } = info.padInfo;
  let { bottom, right } = info.padInfo;
  const [sh, sw] = strides;
  // Rows/columns past the last one the forward pass read: drop padding first, cut the rest off afterwards.
  let extraH = h + top + bottom - (ho - 1) * sh - kh;
  let extraW = w + left + right - (wo - 1) * sw - kw;
  const cutBottom = Math.min(bottom, Math.max(0, extraH));
  const cutRight = Math.min(right, Math.max(0, extraW));
  bottom -= cutBottom;
  right -= cutRight;
  extraH -= cutBottom;
  extraW -= cutRight;
  if (extraH < 0 || extraW < 0) throw new Error(`${KERNEL} (wasm): inconsistent padding ${JSON.stringify(info.padInfo)}`);

  const run = (kernel: tf.KernelConfig, kernelInputs: tf.NamedTensorInfoMap, kernelAttrs: tf.NamedAttrMap): tf.TensorInfo => {
    const out = kernel.kernelFunc({ inputs: kernelInputs, backend, attrs: kernelAttrs });
    if (Array.isArray(out)) throw new Error(`${KERNEL} (wasm): ${kernel.kernelName} returned ${out.length} outputs`);
    return out;
  };
  const temporaries: tf.TensorInfo[] = [];
  try {
    const xT = run(kernels.transpose, { x }, { perm: [3, 1, 2, 0] }); // [C, H, W, N]
    temporaries.push(xT);
    const dyT = run(kernels.transpose, { x: dy }, { perm: [1, 2, 0, 3] }); // [Ho, Wo, N, O]
    temporaries.push(dyT);
    let r = run(
      kernels.conv2d,
      { x: xT, filter: dyT },
      {
        strides: [1, 1],
        pad: [
          [0, 0],
          [top, bottom],
          [left, right],
          [0, 0],
        ],
        dataFormat: 'NHWC',
        dilations: [sh, sw],
      },
    ); // [C, kh + extraH, kw + extraW, O]
    temporaries.push(r);
    if (r.shape[1] !== kh + extraH || r.shape[2] !== kw + extraW) {
      throw new Error(`${KERNEL} (wasm): internal convolution gave [${r.shape}], expected [${c}, ${kh + extraH}, ${kw + extraW}, ${cout}]`);
    }
    if (extraH > 0 || extraW > 0) {
      r = run(kernels.slice, { x: r }, { begin: [0, 0, 0, 0], size: [c, kh, kw, cout] });
      temporaries.push(r);
    }
    return run(kernels.transpose, { x: r }, { perm: [1, 2, 0, 3] }); // [kh, kw, C, O]
  } finally {
    for (const t of temporaries) backend.disposeData(t.dataId);
  }
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}

function pair(value: unknown, name: string): Pair {
  if (isNonNegativeInteger(value) && value > 0) return [value, value];
  if (Array.isArray(value) && value.length === 2 && value.every((v) => isNonNegativeInteger(v) && v > 0))
    return [value[0] as number, value[1] as number];
  throw new Error(`${KERNEL} (wasm): bad ${name} ${JSON.stringify(value)}`);
}

function quad(value: unknown, name: string): Quad {
  if (Array.isArray(value) && value.length === 4 && value.every((v) => isNonNegativeInteger(v) && v > 0)) return value as Quad;
  throw new Error(`${KERNEL} (wasm): bad ${name} ${JSON.stringify(value)}`);
}

function padding(value: unknown): Padding {
  if (value === 'same' || value === 'valid') return value;
  if (isNonNegativeInteger(value)) return value;
  // Explicit NHWC padding: [[0, 0], [top, bottom], [left, right], [0, 0]].
  if (Array.isArray(value) && value.length === 4) {
    const pairs = value.map((p: unknown) =>
      Array.isArray(p) && p.length === 2 && p.every(isNonNegativeInteger) ? ([p[0], p[1]] as Pair) : null,
    );
    const [batch, rows, cols, channels] = pairs;
    if (batch && rows && cols && channels && batch[0] === 0 && batch[1] === 0 && channels[0] === 0 && channels[1] === 0)
      return [batch, rows, cols, channels];
  }
  throw new Error(`${KERNEL} (wasm): padding ${JSON.stringify(value)} is not supported`);
}
