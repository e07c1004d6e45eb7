import * as tf from '@tensorflow/tfjs';
import { correctCount, disposeRecorded, perExampleLoss, recordForwardBackward } from './per-example/forward.ts';
import { trainableVariables } from '../model/trainable-variables.ts';
import { layerPerExample } from './per-example/layer-grads.ts';
import { type GradientPath, type PathOptions, type Plan, fastPlan, resolvePath } from './per-example/plan.ts';

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

export {
  resolvePath,
  supportsFastPath,
  type FastPathSupport,
  type GradientPath,
  type PathChoice,
  type PathOptions,
} from './per-example/plan.ts';

/** Keeps C/(‖∇‖ + tiny) finite for a zero gradient (the factor then clips to 1). */
const NORM_EPSILON = 1e-12;

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
export function clippedGradientSum(
  model: tf.LayersModel,
  x: tf.Tensor,
  y: tf.Tensor,
  clipNorm: number,
  options: PathOptions = {},
): ClippedGradientSum {
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

/** ∇L_i for one example through `model.apply`, in trainable-weight order (zeros where unused), plus its loss and correct count. */
function oneExampleGradient(
  model: tf.LayersModel,
  vars: readonly tf.Variable[],
  x: tf.Tensor,
  y: tf.Tensor,
  i: number,
): { grads: tf.Tensor[]; loss: tf.Tensor; correct: tf.Scalar } {
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
export function perExampleGradients(
  model: tf.LayersModel,
  x: tf.Tensor,
  y: tf.Tensor,
  options: PathOptions = {},
): { grads: tf.Tensor2D; path: GradientPath } {
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
            return tf.concat(
              one.grads.map((g) => tf.reshape(g, [1, -1])),
              1,
            );
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
