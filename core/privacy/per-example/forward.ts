import * as tf from '@tensorflow/tfjs';
import type { Activation, ConvStep, Plan, Step } from './plan.ts';

/**
 * The fast path's functional forward pass over the model's own variables, with
 * a zero probe on every Dense/Conv2D pre-activation, and the one backward pass
 * of Σ_i L_i to those probes.
 */

export function activate(z: tf.Tensor, activation: Activation): tf.Tensor {
  switch (activation) {
    case 'linear':
      return z;
    case 'relu':
      return tf.relu(z);
    case 'relu6':
      return tf.relu6(z);
    case 'tanh':
      return tf.tanh(z);
    case 'sigmoid':
      return tf.sigmoid(z);
    case 'elu':
      return tf.elu(z);
    case 'softplus':
      return tf.softplus(z);
  }
}

/** The one tensor argument of a customGrad forward function. */
function tensorArg(args: ReadonlyArray<unknown>): tf.Tensor {
  const x = args[0];
  if (!(x instanceof tf.Tensor)) throw new TypeError('expected a tensor');
  return x;
}

/**
 * x·W, differentiable in x only, with ∂/∂x = dy·transpose(W). The fast path
 * never needs ∂/∂W from autodiff, and the default gradient's matMul with
 * transposeB is ~10x slower than transpose + matMul on tfjs-backend-wasm.
 */
function denseInputGradOnly(x: tf.Tensor, kernel: tf.Tensor2D): tf.Tensor {
  return tf.customGrad((...args) => ({
    value: tf.matMul(tensorArg(args) as tf.Tensor2D, kernel),
    gradFunc: (dy: tf.Tensor) => tf.matMul(dy as tf.Tensor2D, tf.transpose(kernel)),
  }))(x);
}

/**
 * conv2d(x, W), differentiable in x only. For stride 1 and no dilation the
 * input gradient is itself a convolution (of dy with W flipped in space and
 * its channel axes swapped), which XNNPACK runs several times faster than
 * tfjs-backend-wasm's Conv2DBackpropInput; other strides keep tfjs's gradient.
 */
function convInputGradOnly(x: tf.Tensor, step: ConvStep): tf.Tensor {
  const kernel = step.kernel.read() as tf.Tensor4D;
  const strides = step.strides as [number, number];
  const dilation = step.dilation as [number, number];
  if (strides[0] !== 1 || strides[1] !== 1 || dilation[0] !== 1 || dilation[1] !== 1) {
    return tf.conv2d(x as tf.Tensor4D, kernel, strides, step.padding, 'NHWC', dilation);
  }
  const [kh, kw] = [kernel.shape[0], kernel.shape[1]];
  const [h, w] = [x.shape[1]!, x.shape[2]!];
  const [top, bottom] = step.padding === 'same' ? samePadding(h, h, 1, kh) : [0, 0];
  const [left, right] = step.padding === 'same' ? samePadding(w, w, 1, kw) : [0, 0];
  return tf.customGrad((...args) => ({
    value: tf.conv2d(tensorArg(args) as tf.Tensor4D, kernel, 1, step.padding),
    gradFunc: (dy: tf.Tensor) => {
      const flipped = tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D;
      return tf.conv2d(dy as tf.Tensor4D, flipped, 1, [
        [0, 0],
        [kh - 1 - top, kh - 1 - bottom],
        [kw - 1 - left, kw - 1 - right],
        [0, 0],
      ]);
    },
  }))(x);
}

type MaxPoolStep = Extract<Step, { kind: 'maxPool' }>;

/**
 * Max pooling. tfjs-backend-wasm 4.22's MaxPoolGrad routes no gradient out of
 * a window whose maximum is negative (its running max seems to start at 0),
 * so pooling values that can be negative (after tanh or a linear layer) gets
 * a wrong gradient there. On wasm such a gradient is taken at x − min(x) + 1
 * (all ≥ 1): the same argmax in every window, so the same gradient. Pooling
 * after ReLU (max ≥ 0; an all-zero window has zero gradient upstream anyway)
 * skips the extra work.
 */
function maxPool(h: tf.Tensor, step: MaxPoolStep): tf.Tensor {
  const pool = (t: tf.Tensor) =>
    tf.maxPool(t as tf.Tensor4D, step.poolSize as [number, number], step.strides as [number, number], step.padding);
  if (step.nonNegativeInput || tf.getBackend() !== 'wasm') return pool(h);
  return tf.customGrad((...args) => {
    const x = tensorArg(args);
    const save = args[args.length - 1];
    if (typeof save !== 'function') throw new TypeError('expected the save function');
    save([x]);
    return {
      value: pool(x),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const input = saved[0]!;
        const shifted = tf.add(tf.sub(input, tf.min(input)), 1);
        // The kernel tfjs's own maxPool gradient calls (a nested tf.grad here would clear the outer tape).
        const dx = tf
          .engine()
          .runKernel(
            'MaxPoolGrad',
            { dy, input: shifted, output: pool(shifted) },
            { filterSize: [...step.poolSize], strides: [...step.strides], pad: step.padding },
          );
        if (!(dx instanceof tf.Tensor)) throw new TypeError('MaxPoolGrad returned several tensors');
        return dx;
      },
    };
  })(h);
}

/**
 * The model's function over its own variables. `probes[k]` (zeros) is added
 * to the k-th Dense/Conv2D pre-activation so a gradient with respect to it is
 * the gradient with respect to that pre-activation; `record` receives each
 * Dense/Conv2D input.
 */
function functionalForward(plan: Plan, x: tf.Tensor, probes: readonly tf.Tensor[], record: (input: tf.Tensor) => void): tf.Tensor {
  let h = x;
  let k = 0;
  const batch = x.shape[0]!;
  for (const step of plan.steps) {
    switch (step.kind) {
      case 'identity':
        break;
      case 'reshape':
        h = tf.reshape(h, [batch, ...step.targetShape]);
        break;
      case 'flatten':
        h = tf.reshape(h, [batch, -1]);
        break;
      case 'activation':
        h = activate(h, step.activation);
        break;
      case 'maxPool':
        h = maxPool(h, step);
        break;
      case 'dense':
      case 'conv2d': {
        record(h);
        let z = step.kind === 'dense' ? denseInputGradOnly(h, step.kernel.read() as tf.Tensor2D) : convInputGradOnly(h, step);
        if (step.bias !== null) z = tf.add(z, step.bias.read());
        z = tf.add(z, probes[k++]!);
        h = activate(z, step.activation);
        break;
      }
    }
  }
  return h;
}

/** Softmax cross-entropy per example, [b]. */
export function perExampleLoss(y: tf.Tensor, logits: tf.Tensor): tf.Tensor1D {
  return tf.neg(tf.sum(tf.mul(y, tf.logSoftmax(logits)), 1)) as tf.Tensor1D;
}

export function correctCount(y: tf.Tensor, logits: tf.Tensor): tf.Scalar {
  return tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), tf.argMax(y, 1)), 'float32')) as tf.Scalar;
}

export interface Recorded {
  /** Per Dense/Conv2D layer: its input a and ∂(Σ_i L_i)/∂z of its pre-activation. */
  readonly inputs: tf.Tensor[];
  readonly grads: tf.Tensor[];
  readonly losses: tf.Tensor1D;
  readonly correct: tf.Scalar;
}

/** Forward + one backward pass to the pre-activations. The caller disposes everything returned. */
export function recordForwardBackward(plan: Plan, x: tf.Tensor, y: tf.Tensor): Recorded {
  const kept: tf.Tensor[] = [];
  const keep = <T extends tf.Tensor>(t: T): T => {
    // A recorded input may be the caller's own x: keep a clone, never x itself.
    const own = (t === x ? tf.clone(t) : t) as T;
    kept.push(tf.keep(own));
    return own;
  };
  try {
    return tf.tidy(() => {
      const batch = x.shape[0]!;
      const probes = plan.paramSteps.map((s) => tf.zeros([batch, ...s.outShape]));
      const inputs: tf.Tensor[] = [];
      let losses: tf.Tensor1D | undefined;
      let correct: tf.Scalar | undefined;
      // Sum, not mean: row i of each probe gradient is then exactly ∇_z L_i.
      const grads = tf.grads((...ps: tf.Tensor[]) => {
        const logits = functionalForward(plan, x, ps, (input) => inputs.push(keep(input)));
        losses = keep(perExampleLoss(y, logits));
        correct = keep(correctCount(y, logits));
        return tf.sum(losses);
      })(probes);
      return { inputs, grads, losses: losses!, correct: correct! };
    });
  } catch (error) {
    tf.dispose(kept);
    throw error;
  }
}

export function disposeRecorded(r: Recorded): void {
  tf.dispose([...r.inputs, ...r.grads, r.losses, r.correct]);
}

/** TensorFlow's 'same' padding: the extra row/column of an odd total goes at the bottom/right. */
export function samePadding(inSize: number, outSize: number, stride: number, effectiveKernel: number): [number, number] {
  const total = Math.max(0, (outSize - 1) * stride + effectiveKernel - inSize);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}
