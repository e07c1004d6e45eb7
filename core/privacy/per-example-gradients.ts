import * as tf from '@tensorflow/tfjs';

/**
 * Per-example gradient norms and clipped gradient sums for DP-SGD.
 *
 * Fast path (Dense, Conv2D and the shape-only / elementwise layers around
 * them): one functional forward pass over the model's own variables that
 * records every Dense/Conv2D input activation a and adds a zero "probe" to its
 * pre-activation z, then ONE backward pass of Σ_i L_i with respect to the
 * probes, which gives g = ∂ΣL/∂z. Row i of g depends only on example i, so
 * every per-example weight gradient is a function of (a_i, g_i):
 *   Dense   ∇W_i = a_iᵀ g_i  →  ‖∇W_i‖² = ‖a_i‖²‖g_i‖² (ghost norm, exact for 2-D inputs)
 *   Conv2D  ∇W_i[kh, kw, cin, cout] = Σ_t patch_it ⊗ g_it: all B of them in one
 *           depthwise convolution (batch moved into the channels), as cheap as
 *           the summed kernel gradient of a plain backward pass, then squared-summed
 *           (materialising beats the ghost-norm Gram form here: T² ≫ kh·kw·cin)
 * and the clipped sums Σ_i c_i ∇_i need no second backward pass
 * (Dense: Aᵀ diag(c) G; Conv2D: the c-weighted sum of the per-example gradients).
 * The backward pass stops at the probes, so no weight gradient is computed
 * twice and the backend never needs Conv2DBackpropFilter (which
 * tfjs-backend-wasm 4.22 does not have; plain training gets one from
 * core/model/wasm-kernels.ts).
 *
 * Fallback (any other layer): B separate `tf.variableGrads` calls through
 * `model.apply`, correct but about B times slower. `supportsFastPath` says
 * which path a model gets and why.
 *
 * Loss per example: softmax cross-entropy on the model's outputs (logits).
 * Dropout is the identity on both paths (inference mode), so both paths
 * compute the same function. Gradients are ordered as `model.trainableWeights`.
 */

export type GradientPath = 'fast' | 'per-example-loop';
export type PathChoice = 'auto' | GradientPath;
export type FastPathSupport = { readonly ok: true } | { readonly ok: false; readonly reason: string };

export interface PathOptions {
  /** 'auto' (default) takes the fast path when the model supports it; 'fast' throws when it does not. */
  readonly path?: PathChoice;
}

/** Keeps C/(‖∇‖ + tiny) finite for a zero gradient (the factor then clips to 1). */
const NORM_EPSILON = 1e-12;

// ---------------------------------------------------------------------------
// The layer plan

type Activation = 'linear' | 'relu' | 'relu6' | 'tanh' | 'sigmoid' | 'elu' | 'softplus';
const ACTIVATIONS: readonly Activation[] = ['linear', 'relu', 'relu6', 'tanh', 'sigmoid', 'elu', 'softplus'];
const NON_NEGATIVE: readonly Activation[] = ['relu', 'relu6', 'sigmoid', 'softplus'];

interface DenseStep {
  readonly kind: 'dense';
  readonly kernel: tf.LayerVariable;
  readonly bias: tf.LayerVariable | null;
  readonly activation: Activation;
  /** The pre-activation shape without the batch dimension. */
  readonly outShape: readonly number[];
  /** Positions in model.trainableWeights, -1 when frozen. */
  readonly kernelIndex: number;
  readonly biasIndex: number;
}

interface ConvStep {
  readonly kind: 'conv2d';
  readonly kernel: tf.LayerVariable;
  readonly bias: tf.LayerVariable | null;
  readonly activation: Activation;
  readonly strides: readonly [number, number];
  readonly dilation: readonly [number, number];
  readonly padding: 'same' | 'valid';
  readonly outShape: readonly number[];
  readonly kernelIndex: number;
  readonly biasIndex: number;
}

type ParamStep = DenseStep | ConvStep;

type Step =
  | ParamStep
  | { readonly kind: 'reshape'; readonly targetShape: readonly number[] }
  | { readonly kind: 'flatten' }
  | { readonly kind: 'identity' }
  | { readonly kind: 'activation'; readonly activation: Activation }
  | {
      readonly kind: 'maxPool';
      readonly poolSize: readonly [number, number];
      readonly strides: readonly [number, number];
      readonly padding: 'same' | 'valid';
      /** Whether the pooled values are known to be >= 0 (after ReLU, sigmoid...). */
      readonly nonNegativeInput: boolean;
    };

interface Plan {
  readonly steps: readonly Step[];
  readonly paramSteps: readonly ParamStep[];
}

class Unsupported extends Error {}

const plans = new WeakMap<tf.LayersModel, Plan | Unsupported>();

function configValue(config: tf.serialization.ConfigDict, key: string): unknown {
  return config[key];
}

function pair(config: tf.serialization.ConfigDict, key: string, fallback?: number): [number, number] {
  const value = configValue(config, key);
  if (value === undefined || value === null) {
    if (fallback !== undefined) return [fallback, fallback];
  } else if (typeof value === 'number') {
    return [value, value];
  } else if (Array.isArray(value) && value.length === 2 && value.every((v): v is number => typeof v === 'number')) {
    return [value[0], value[1]];
  }
  throw new Unsupported(`${key} = ${JSON.stringify(value)} is not a pair of numbers`);
}

function activationOf(config: tf.serialization.ConfigDict): Activation {
  const value = configValue(config, 'activation') ?? 'linear';
  const found = ACTIVATIONS.find((a) => a === value);
  if (found === undefined) throw new Unsupported(`activation ${JSON.stringify(value)}`);
  return found;
}

function paddingOf(config: tf.serialization.ConfigDict): 'same' | 'valid' {
  const value = configValue(config, 'padding') ?? 'valid';
  if (value !== 'same' && value !== 'valid') throw new Unsupported(`padding ${JSON.stringify(value)}`);
  return value;
}

function channelsLast(config: tf.serialization.ConfigDict): void {
  const value = configValue(config, 'dataFormat');
  if (value !== undefined && value !== null && value !== 'channelsLast') throw new Unsupported(`dataFormat ${JSON.stringify(value)}`);
}

/** A built layer's single output shape without the batch dimension, fully known. */
function knownOutputShape(layer: tf.layers.Layer): number[] {
  const shape: unknown = layer.outputShape;
  if (!Array.isArray(shape) || shape.length === 0 || Array.isArray(shape[0])) throw new Unsupported(`${layer.name} has several outputs`);
  const dims = shape.slice(1);
  if (!dims.every((d): d is number => typeof d === 'number' && d > 0)) throw new Unsupported(`${layer.name} has an output shape with unknown dimensions`);
  return dims;
}

function compilePlan(model: tf.LayersModel): Plan {
  const trainable = model.trainableWeights;
  const indexOf = (w: tf.LayerVariable | null): number => (w === null ? -1 : trainable.indexOf(w));
  const steps: Step[] = [];
  const paramSteps: ParamStep[] = [];
  const covered = new Set<number>();
  // Whether the current activations are >= 0, tracked for the wasm max-pool workaround.
  let nonNegative = false;
  for (const layer of model.layers) {
    const kind = layer.getClassName();
    const config = layer.getConfig();
    const weights = layer.weights;
    const where = (error: unknown): never => {
      throw new Unsupported(`layer ${layer.name} (${kind}): ${error instanceof Error ? error.message : String(error)}`);
    };
    try {
      switch (kind) {
        case 'InputLayer':
        case 'Dropout':
          steps.push({ kind: 'identity' });
          break;
        case 'Flatten':
          channelsLast(config);
          steps.push({ kind: 'flatten' });
          break;
        case 'Reshape': {
          const target = configValue(config, 'targetShape');
          if (!Array.isArray(target) || !target.every((d): d is number => typeof d === 'number')) throw new Unsupported('targetShape');
          steps.push({ kind: 'reshape', targetShape: target });
          break;
        }
        case 'Activation': {
          const activation = activationOf(config);
          steps.push({ kind: 'activation', activation });
          nonNegative = NON_NEGATIVE.includes(activation);
          break;
        }
        case 'MaxPooling2D': {
          channelsLast(config);
          const poolSize = pair(config, 'poolSize');
          steps.push({ kind: 'maxPool', poolSize, strides: pair(config, 'strides', poolSize[0]), padding: paddingOf(config), nonNegativeInput: nonNegative });
          break;
        }
        case 'Dense':
        case 'Conv2D': {
          const useBias = configValue(config, 'useBias') !== false;
          if (weights.length !== (useBias ? 2 : 1)) throw new Unsupported(`expected ${useBias ? 2 : 1} weights, found ${weights.length}`);
          const kernel = weights[0]!;
          const bias = useBias ? weights[1]! : null;
          const outShape = knownOutputShape(layer);
          const common = { kernel, bias, activation: activationOf(config), outShape, kernelIndex: indexOf(kernel), biasIndex: indexOf(bias) };
          let step: ParamStep;
          if (kind === 'Dense') {
            // ‖a_i‖²‖g_i‖² is the exact norm only when a_i is one vector, not a sequence.
            if (outShape.length !== 1) throw new Unsupported('Dense on inputs of rank > 2 (the ghost norm would not be exact)');
            step = { kind: 'dense', ...common };
          } else {
            channelsLast(config);
            if (outShape.length !== 3) throw new Unsupported('Conv2D output is not [height, width, channels]');
            const dilation = pair(config, 'dilationRate', 1);
            // tfjs itself has no gradient for dilated convolutions (so no reference to check against).
            if (dilation[0] !== 1 || dilation[1] !== 1) throw new Unsupported('dilated Conv2D (tfjs has no gradient for it)');
            step = { kind: 'conv2d', ...common, strides: pair(config, 'strides', 1), dilation, padding: paddingOf(config) };
          }
          steps.push(step);
          paramSteps.push(step);
          nonNegative = NON_NEGATIVE.includes(step.activation);
          for (const i of [step.kernelIndex, step.biasIndex]) if (i >= 0) covered.add(i);
          break;
        }
        default:
          throw new Unsupported('this layer type has no vectorised per-example gradient');
      }
      if (kind !== 'Dense' && kind !== 'Conv2D' && weights.length > 0) throw new Unsupported('unexpected weights');
    } catch (error) {
      if (!(error instanceof Unsupported)) throw error;
      where(error);
    }
  }
  if (covered.size !== trainable.length) throw new Unsupported('some trainable weights belong to no Dense or Conv2D layer');
  if (paramSteps.length === 0) throw new Unsupported('the model has no Dense or Conv2D layer');
  return { steps, paramSteps };
}

function planOf(model: tf.LayersModel): Plan | Unsupported {
  let plan = plans.get(model);
  if (plan === undefined) {
    try {
      plan = compilePlan(model);
    } catch (error) {
      if (!(error instanceof Unsupported)) throw error;
      plan = error;
    }
    plans.set(model, plan);
  }
  return plan;
}

/** Whether `model` gets the vectorised per-example gradients, and if not, why. */
export function supportsFastPath(model: tf.LayersModel): FastPathSupport {
  const plan = planOf(model);
  return plan instanceof Unsupported ? { ok: false, reason: plan.message } : { ok: true };
}

/** The path `choice` resolves to for `model`; 'fast' on an unsupported model throws with the reason. */
export function resolvePath(model: tf.LayersModel, choice: PathChoice = 'auto'): GradientPath {
  if (choice === 'per-example-loop') return choice;
  const support = supportsFastPath(model);
  if (support.ok) return 'fast';
  if (choice === 'fast') throw new Error(`no fast per-example gradients for this model: ${support.reason}`);
  return 'per-example-loop';
}

function fastPlan(model: tf.LayersModel): Plan {
  const plan = planOf(model);
  if (plan instanceof Unsupported) throw new Error(`no fast per-example gradients for this model: ${plan.message}`);
  return plan;
}

// ---------------------------------------------------------------------------
// Forward pass and the single backward pass

function activate(z: tf.Tensor, activation: Activation): tf.Tensor {
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
      return tf.conv2d(dy as tf.Tensor4D, flipped, 1, [[0, 0], [kh - 1 - top, kh - 1 - bottom], [kw - 1 - left, kw - 1 - right], [0, 0]]);
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
  const pool = (t: tf.Tensor) => tf.maxPool(t as tf.Tensor4D, step.poolSize as [number, number], step.strides as [number, number], step.padding);
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
        const dx = tf.engine().runKernel(
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
function perExampleLoss(y: tf.Tensor, logits: tf.Tensor): tf.Tensor1D {
  return tf.neg(tf.sum(tf.mul(y, tf.logSoftmax(logits)), 1)) as tf.Tensor1D;
}

function correctCount(y: tf.Tensor, logits: tf.Tensor): tf.Scalar {
  return tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), tf.argMax(y, 1)), 'float32')) as tf.Scalar;
}

interface Recorded {
  /** Per Dense/Conv2D layer: its input a and ∂(Σ_i L_i)/∂z of its pre-activation. */
  readonly inputs: tf.Tensor[];
  readonly grads: tf.Tensor[];
  readonly losses: tf.Tensor1D;
  readonly correct: tf.Scalar;
}

/** Forward + one backward pass to the pre-activations. The caller disposes everything returned. */
function recordForwardBackward(plan: Plan, x: tf.Tensor, y: tf.Tensor): Recorded {
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

function disposeRecorded(r: Recorded): void {
  tf.dispose([...r.inputs, ...r.grads, r.losses, r.correct]);
}

/** TensorFlow's 'same' padding: the extra row/column of an odd total goes at the bottom/right. */
function samePadding(inSize: number, outSize: number, stride: number, effectiveKernel: number): [number, number] {
  const total = Math.max(0, (outSize - 1) * stride + effectiveKernel - inSize);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

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
  const pad: [[number, number], [number, number], [number, number], [number, number]] = [[0, 0], [top, bottom], [left, right], [0, 0]];
  let r = tf.depthwiseConv2d(xT, gT, [dh, dw], pad, 'NHWC', [sh, sw]);
  // 'valid' padding (or a stride that skips the last rows) can leave rows no filter tap reads: drop them.
  if (r.shape[1] !== kh || r.shape[2] !== kw) r = tf.slice(r, [0, 0, 0, 0], [cin, kh, kw, b * cout]);
  return tf.reshape(r, [cin, kh, kw, b, cout]);
}

/** Per-example gradients of one Dense/Conv2D layer. */
interface LayerPerExample {
  /** Conv2D: kernel gradients [cin, kh, kw, b, cout]; Dense: null (the ghost norm needs none). */
  readonly kernel: tf.Tensor5D | null;
  /** Bias gradients [b, units] (for Dense also g itself). */
  readonly bias: tf.Tensor2D;
  /** ‖∇kernel_i‖² + ‖∇bias_i‖² over the trainable ones, [b]. */
  readonly squaredNorms: tf.Tensor1D;
}

function layerPerExample(step: ParamStep, input: tf.Tensor, grad: tf.Tensor): LayerPerExample {
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

/** c_i = min(1, C / (‖∇_i‖ + tiny)): 1 for a zero gradient, never NaN. */
export function clipFactors(squaredNorms: tf.Tensor1D, clipNorm: number): tf.Tensor1D {
  checkClipNorm(clipNorm);
  return tf.tidy(() => tf.minimum(1, tf.div(clipNorm, tf.add(tf.sqrt(squaredNorms), NORM_EPSILON))) as tf.Tensor1D);
}

function checkClipNorm(clipNorm: number): void {
  if (!(clipNorm > 0) || !Number.isFinite(clipNorm)) throw new RangeError(`clip norm must be positive and finite, got ${clipNorm}`);
}

function checkBatch(model: tf.LayersModel, x: tf.Tensor, y: tf.Tensor): void {
  if (x.shape[0] !== y.shape[0] || y.rank !== 2) throw new Error(`x has ${x.shape[0]} examples and y shape [${y.shape.join(', ')}]`);
  if (x.shape[0] === 0) throw new Error('empty batch');
  const inShape = model.inputs[0]?.shape.slice(1);
  if (inShape !== undefined && (inShape.length !== x.rank - 1 || inShape.some((d, i) => d !== null && d !== x.shape[i + 1]))) {
    throw new Error(`x shape [${x.shape.join(', ')}] does not fit the model input [null, ${inShape.join(', ')}]`);
  }
}

// ---------------------------------------------------------------------------
// Public results

export interface ClippedGradientSum {
  /** Σ_i c_i ∇_i per trainable weight, in `model.trainableWeights` order and shapes. */
  readonly sums: tf.Tensor[];
  /** ‖∇_i‖² before clipping, [b]. */
  readonly squaredNorms: tf.Tensor1D;
  /** Per-example losses, [b]. */
  readonly losses: tf.Tensor1D;
  /** Correct predictions in the batch. */
  readonly correct: tf.Scalar;
  readonly path: GradientPath;
}

export function disposeClippedSum(result: ClippedGradientSum): void {
  tf.dispose([...result.sums, result.squaredNorms, result.losses, result.correct]);
}

/**
 * Clips every example's gradient to L2 norm `clipNorm` and sums them. The
 * caller owns (and disposes, e.g. with `disposeClippedSum`) the tensors.
 */
export function clippedGradientSum(model: tf.LayersModel, x: tf.Tensor, y: tf.Tensor, clipNorm: number, options: PathOptions = {}): ClippedGradientSum {
  checkClipNorm(clipNorm);
  checkBatch(model, x, y);
  const path = resolvePath(model, options.path);
  return path === 'fast' ? fastClippedSum(fastPlan(model), model, x, y, clipNorm) : loopClippedSum(model, x, y, clipNorm);
}

function fastClippedSum(plan: Plan, model: tf.LayersModel, x: tf.Tensor, y: tf.Tensor, clipNorm: number): ClippedGradientSum {
  const rec = recordForwardBackward(plan, x, y);
  try {
    const out = tf.tidy(() => {
      const perLayer = plan.paramSteps.map((step, k) => layerPerExample(step, rec.inputs[k]!, rec.grads[k]!));
      const squaredNorms = tf.addN(perLayer.map((p) => p.squaredNorms)) as tf.Tensor1D;
      const c = clipFactors(squaredNorms, clipNorm);
      const cRow = tf.reshape(c, [1, -1]) as tf.Tensor2D;
      const sums: tf.Tensor[] = new Array<tf.Tensor>(model.trainableWeights.length);
      plan.paramSteps.forEach((step, k) => {
        const p = perLayer[k]!;
        if (step.kernelIndex >= 0) {
          if (step.kind === 'dense') {
            // Aᵀ diag(c) G. The explicit transpose is deliberate: tfjs-backend-wasm's
            // matMul with transposeA is ~10x slower than transpose + plain matMul.
            const weighted = tf.mul(p.bias, tf.reshape(c, [-1, 1]));
            sums[step.kernelIndex] = tf.matMul(tf.transpose(rec.inputs[k] as tf.Tensor2D), weighted);
          } else {
            // Σ_n c_n ∇W_n over the batch axis of [cin, kh, kw, b, cout], then to [kh, kw, cin, cout].
            const weighted = tf.sum(tf.mul(p.kernel!, tf.reshape(c, [1, 1, 1, -1, 1])), 3);
            sums[step.kernelIndex] = tf.transpose(weighted, [1, 2, 0, 3]);
          }
        }
        if (step.biasIndex >= 0) sums[step.biasIndex] = tf.reshape(tf.matMul(cRow, p.bias), [-1]);
      });
      return { sums, squaredNorms };
    });
    return { ...out, losses: rec.losses, correct: rec.correct, path: 'fast' };
  } catch (error) {
    tf.dispose([rec.losses, rec.correct]);
    throw error;
  } finally {
    tf.dispose([...rec.inputs, ...rec.grads]);
  }
}

/** The trainable variables of a model, as the tf.Variables `variableGrads` needs. */
function trainableVariables(model: tf.LayersModel): tf.Variable[] {
  return model.trainableWeights.map((w) => {
    const v = w.read();
    if (!(v instanceof tf.Variable)) throw new Error(`weight ${w.name} is not backed by a tf.Variable`);
    return v;
  });
}

/** ∇L_i for one example through `model.apply`, in trainable-weight order (zeros where unused), plus its loss and correct count. */
function oneExampleGradient(model: tf.LayersModel, vars: readonly tf.Variable[], x: tf.Tensor, y: tf.Tensor, i: number): { grads: tf.Tensor[]; loss: tf.Tensor; correct: tf.Scalar } {
  const xi = tf.slice(x, [i], [1]);
  const yi = tf.slice(y, [i], [1]);
  let correct: tf.Scalar | undefined;
  const { value, grads } = tf.variableGrads(() => {
    const logits = model.apply(xi, { training: false });
    if (!(logits instanceof tf.Tensor)) throw new Error('the model has several outputs');
    correct = tf.keep(correctCount(yi, logits));
    return tf.sum(perExampleLoss(yi, logits)) as tf.Scalar;
  }, [...vars]);
  return { grads: vars.map((v) => grads[v.name] ?? tf.zerosLike(v)), loss: value, correct: correct! };
}

function loopClippedSum(model: tf.LayersModel, x: tf.Tensor, y: tf.Tensor, clipNorm: number): ClippedGradientSum {
  const vars = trainableVariables(model);
  const b = x.shape[0]!;
  let sums: tf.Tensor[] = vars.map((v) => tf.zerosLike(v));
  const norms: tf.Tensor[] = [];
  const losses: tf.Tensor[] = [];
  const corrects: tf.Tensor[] = [];
  try {
    for (let i = 0; i < b; i++) {
      const next = tf.tidy(() => {
        const one = oneExampleGradient(model, vars, x, y, i);
        corrects.push(one.correct);
        losses.push(tf.keep(tf.reshape(one.loss, [1])));
        const sq = tf.addN(one.grads.map((g) => tf.sum(tf.square(g))));
        norms.push(tf.keep(tf.reshape(sq, [1])));
        const c = clipFactors(tf.reshape(sq, [1]) as tf.Tensor1D, clipNorm);
        return sums.map((s, k) => tf.add(s, tf.mul(one.grads[k]!, c)));
      });
      tf.dispose(sums);
      sums = next;
    }
    const squaredNorms = tf.concat(norms) as tf.Tensor1D;
    const lossVec = tf.concat(losses) as tf.Tensor1D;
    const correct = tf.addN(corrects) as tf.Scalar;
    return { sums, squaredNorms, losses: lossVec, correct, path: 'per-example-loop' };
  } catch (error) {
    tf.dispose(sums);
    throw error;
  } finally {
    tf.dispose([...norms, ...losses, ...corrects]);
  }
}

/**
 * The raw (unclipped) per-example gradients, [b, P], each row the example's
 * gradient flattened in `model.trainableWeights` order: for tests and
 * diagnostics (the training step never materialises Dense ones).
 */
export function perExampleGradients(model: tf.LayersModel, x: tf.Tensor, y: tf.Tensor, options: PathOptions = {}): { grads: tf.Tensor2D; path: GradientPath } {
  checkBatch(model, x, y);
  const path = resolvePath(model, options.path);
  if (path === 'per-example-loop') {
    const vars = trainableVariables(model);
    const rows: tf.Tensor[] = [];
    try {
      for (let i = 0; i < x.shape[0]!; i++) {
        rows.push(
          tf.tidy(() => {
            const one = oneExampleGradient(model, vars, x, y, i);
            tf.dispose(one.correct);
            return tf.concat(one.grads.map((g) => tf.reshape(g, [1, -1])), 1);
          }),
        );
      }
      return { grads: tf.concat(rows) as tf.Tensor2D, path };
    } finally {
      tf.dispose(rows);
    }
  }
  const plan = fastPlan(model);
  const rec = recordForwardBackward(plan, x, y);
  try {
    const grads = tf.tidy(() => {
      const b = x.shape[0]!;
      const parts = new Array<tf.Tensor>(model.trainableWeights.length);
      plan.paramSteps.forEach((step, k) => {
        const p = layerPerExample(step, rec.inputs[k]!, rec.grads[k]!);
        if (step.kernelIndex >= 0) {
          parts[step.kernelIndex] =
            step.kind === 'dense'
              ? tf.reshape(tf.matMul(tf.expandDims(rec.inputs[k]!, 2), tf.expandDims(p.bias, 1)), [b, -1])
              : tf.reshape(tf.transpose(p.kernel!, [3, 1, 2, 0, 4]), [b, -1]);
        }
        if (step.biasIndex >= 0) parts[step.biasIndex] = p.bias;
      });
      return tf.concat(parts, 1) as tf.Tensor2D;
    });
    return { grads, path };
  } finally {
    disposeRecorded(rec);
  }
}
