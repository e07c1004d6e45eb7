import * as tf from '@tensorflow/tfjs';
import { samePadding } from './forward.ts';
import type { ConvStep, ParamStep } from './plan.ts';

/** Per-example weight gradients of one Dense or Conv2D layer from its recorded input and pre-activation gradient. */

/**
 * All B per-example kernel gradients of a Conv2D layer in one depthwise
 * convolution, [cin, kh, kw, b, cout]:
 *   ∇W_n[i, j, c, o] = Σ_{h,w} xpad[n, h·s + i·d, w·s + j·d, c] · g[n, h, w, o]
 * is a depthwise convolution of the input with the batch moved into the
 * channels ([cin, H, W, b]) and g as the filter ([Ho, Wo, b, cout], channel
 * multiplier cout): the forward stride becomes the filter dilation and the
 * forward dilation its stride. On tfjs-backend-wasm this runs in XNNPACK and
 * is several times faster than the equivalent batched matmul of im2col patches.
 */
function convPerExampleKernelGrads(input: tf.Tensor4D, g: tf.Tensor4D, step: ConvStep): tf.Tensor5D {
  const [b, h, w, cin] = input.shape;
  const [, ho, wo, cout] = g.shape;
  const [kh, kw] = [step.kernel.shape[0]!, step.kernel.shape[1]!];
  const [sh, sw] = step.strides;
  const [dh, dw] = step.dilation;
  const [top, bottom] = step.padding === 'same' ? samePadding(h, ho, sh, (kh - 1) * dh + 1) : [0, 0];
  const [left, right] = step.padding === 'same' ? samePadding(w, wo, sw, (kw - 1) * dw + 1) : [0, 0];
  const xT = tf.transpose(input, [3, 1, 2, 0]);
  const gT = tf.transpose(g, [1, 2, 0, 3]);
  const pad: [[number, number], [number, number], [number, number], [number, number]] = [
    [0, 0],
    [top, bottom],
    [left, right],
    [0, 0],
  ];
  let r = tf.depthwiseConv2d(xT, gT, [dh, dw], pad, 'NHWC', [sh, sw]);
  // 'valid' padding (or a stride that skips the last rows) can leave rows no filter tap reads: drop them.
  if (r.shape[1] !== kh || r.shape[2] !== kw) r = tf.slice(r, [0, 0, 0, 0], [cin, kh, kw, b * cout]);
  return tf.reshape(r, [cin, kh, kw, b, cout]);
}

/** Per-example gradients of one Dense/Conv2D layer. */
export interface LayerPerExample {
  /** Conv2D: kernel gradients [cin, kh, kw, b, cout]; Dense: null (the ghost norm needs none). */
  readonly kernel: tf.Tensor5D | null;
  /** Bias gradients [b, units] (for Dense also g itself). */
  readonly bias: tf.Tensor2D;
  /** ‖∇kernel_i‖² + ‖∇bias_i‖² over the trainable ones, [b]. */
  readonly squaredNorms: tf.Tensor1D;
}

export function layerPerExample(step: ParamStep, input: tf.Tensor, grad: tf.Tensor): LayerPerExample {
  const b = input.shape[0]!;
  const kernelTrainable = step.kernelIndex >= 0;
  const biasTrainable = step.biasIndex >= 0;
  if (step.kind === 'dense') {
    const g = grad as tf.Tensor2D;
    const gSq = tf.sum(tf.square(g), 1);
    let sq: tf.Tensor = tf.zeros([b]);
    if (kernelTrainable) sq = tf.add(sq, tf.mul(tf.sum(tf.square(input), 1), gSq));
    if (biasTrainable) sq = tf.add(sq, gSq);
    return { kernel: null, bias: g, squaredNorms: sq as tf.Tensor1D };
  }
  const g = grad as tf.Tensor4D;
  const bias = tf.sum(g, [1, 2]) as tf.Tensor2D;
  let sq: tf.Tensor = tf.zeros([b]);
  let kernel: tf.Tensor5D | null = null;
  if (kernelTrainable) {
    kernel = convPerExampleKernelGrads(input as tf.Tensor4D, g, step);
    // Reduce the last axis first, then the small [K, b] rest: a reduction over axes
    // [0, 1, 2, 4] of the 5-D tensor is ~20x slower on tfjs-backend-wasm.
    const [cin, kh, kw, , cout] = kernel.shape;
    const perTap = tf.sum(tf.square(tf.reshape(kernel, [cin * kh * kw, b, cout])), 2);
    sq = tf.add(sq, tf.sum(tf.transpose(perTap), 1));
  }
  if (biasTrainable) sq = tf.add(sq, tf.sum(tf.square(bias), 1));
  return { kernel, bias, squaredNorms: sq as tf.Tensor1D };
}
