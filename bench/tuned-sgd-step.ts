import * as tf from '@tensorflow/tfjs';
import { disposeRecorded, recordForwardBackward, samePadding } from '../core/privacy/per-example/forward.ts';
import { fastPlan, type ConvStep } from '../core/privacy/per-example/plan.ts';

/**
 * The non-private baseline that DP-SGD is held to: one plain SGD step built
 * from the same tuned pieces as the DP fast path, so the ratio measures what
 * privacy costs and not tfjs's slow stock kernels. It runs the DP path's own
 * forward pass and single backward pass to the pre-activations (with its fast
 * input gradients: XNNPACK convolutions instead of tfjs-backend-wasm's
 * Conv2DBackpropInput), then the summed weight gradients of the batch mean:
 *   Dense   ∇W = Aᵀ G,  ∇b = Σ_n g_n
 *   Conv2D  ∇W = the input (batch moved into the channels) convolved with G
 *           as the filter: one regular convolution, the kernel
 *           core/model/wasm-kernels.ts registers for plain training
 * and w ← w − lr · ∇/B. Only for Dense/Conv2D models the fast path supports.
 */
export function tunedSgdStep(model: tf.LayersModel, x: tf.Tensor, y: tf.Tensor, learningRate: number): tf.Scalar {
  const plan = fastPlan(model);
  const weights = model.trainableWeights;
  const batch = x.shape[0]!;
  const rec = recordForwardBackward(plan, x, y);
  try {
    return tf.tidy(() => {
      const grads = new Array<tf.Tensor>(weights.length);
      plan.paramSteps.forEach((step, k) => {
        const input = rec.inputs[k]!;
        const g = rec.grads[k]!;
        if (step.kind === 'dense') {
          if (step.kernelIndex >= 0) grads[step.kernelIndex] = tf.matMul(tf.transpose(input as tf.Tensor2D), g as tf.Tensor2D);
          if (step.biasIndex >= 0) grads[step.biasIndex] = tf.sum(g, 0);
        } else {
          if (step.kernelIndex >= 0) grads[step.kernelIndex] = convKernelGrad(input as tf.Tensor4D, g as tf.Tensor4D, step);
          if (step.biasIndex >= 0) grads[step.biasIndex] = tf.sum(g, [0, 1, 2]);
        }
      });
      const scale = learningRate / batch;
      weights.forEach((w, i) => {
        w.write(tf.sub(w.read(), tf.mul(grads[i]!, scale)));
      });
      return tf.sum(rec.losses) as tf.Scalar;
    });
  } finally {
    disposeRecorded(rec);
  }
}

/** Σ_n ∇W_n of one Conv2D layer, [kh, kw, cin, cout]: a stride-1 convolution of xᵀ [cin, H, W, N] by gᵀ [Ho, Wo, N, cout] dilated by the strides. */
function convKernelGrad(input: tf.Tensor4D, g: tf.Tensor4D, step: ConvStep): tf.Tensor {
  const [, h, w, cin] = input.shape;
  const [, ho, wo, cout] = g.shape;
  const [kh, kw] = [step.kernel.shape[0]!, step.kernel.shape[1]!];
  const [sh, sw] = step.strides;
  const [top, bottom] = step.padding === 'same' ? samePadding(h, ho, sh, kh) : [0, 0];
  const [left, right] = step.padding === 'same' ? samePadding(w, wo, sw, kw) : [0, 0];
  const xT = tf.transpose(input, [3, 1, 2, 0]);
  const gT = tf.transpose(g, [1, 2, 0, 3]);
  let r = tf.conv2d(
    xT,
    gT as tf.Tensor4D,
    1,
    [
      [0, 0],
      [top, bottom],
      [left, right],
      [0, 0],
    ],
    'NHWC',
    [sh, sw],
  );
  if (r.shape[1] !== kh || r.shape[2] !== kw) r = tf.slice(r, [0, 0, 0, 0], [cin, kh, kw, cout]);
  return tf.transpose(r, [1, 2, 0, 3]);
}
