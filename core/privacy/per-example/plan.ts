import type * as tf from '@tensorflow/tfjs';

/**
 * The layer plan of the fast per-example gradient path: a model's layers
 * compiled once (and cached per model) into the steps its functional forward
 * pass runs, or the reason the model needs the per-example loop instead.
 */

export type GradientPath = 'fast' | 'per-example-loop';
export type PathChoice = 'auto' | GradientPath;
export type FastPathSupport = { readonly ok: true } | { readonly ok: false; readonly reason: string };

export interface PathOptions {
  /** 'auto' (default) takes the fast path when the model supports it; 'fast' throws when it does not. */
  readonly path?: PathChoice;
}

export type Activation = 'linear' | 'relu' | 'relu6' | 'tanh' | 'sigmoid' | 'elu' | 'softplus';
const ACTIVATIONS: readonly Activation[] = ['linear', 'relu', 'relu6', 'tanh', 'sigmoid', 'elu', 'softplus'];
const NON_NEGATIVE: readonly Activation[] = ['relu', 'relu6', 'sigmoid', 'softplus'];

export interface DenseStep {
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

export interface ConvStep {
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

export type ParamStep = DenseStep | ConvStep;

export type Step =
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

export interface Plan {
  readonly steps: readonly Step[];
  readonly paramSteps: readonly ParamStep[];
}

export class Unsupported extends Error {}

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
  if (!dims.every((d): d is number => typeof d === 'number' && d > 0))
    throw new Unsupported(`${layer.name} has an output shape with unknown dimensions`);
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
          steps.push({
            kind: 'maxPool',
            poolSize,
            strides: pair(config, 'strides', poolSize[0]),
            padding: paddingOf(config),
            nonNegativeInput: nonNegative,
          });
          break;
        }
        case 'Dense':
        case 'Conv2D': {
          const useBias = configValue(config, 'useBias') !== false;
          if (weights.length !== (useBias ? 2 : 1)) throw new Unsupported(`expected ${useBias ? 2 : 1} weights, found ${weights.length}`);
          const kernel = weights[0]!;
          const bias = useBias ? weights[1]! : null;
          const outShape = knownOutputShape(layer);
          const common = {
            kernel,
            bias,
            activation: activationOf(config),
            outShape,
            kernelIndex: indexOf(kernel),
            biasIndex: indexOf(bias),
          };
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

export function planOf(model: tf.LayersModel): Plan | Unsupported {
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

export function fastPlan(model: tf.LayersModel): Plan {
  const plan = planOf(model);
  if (plan instanceof Unsupported) throw new Error(`no fast per-example gradients for this model: ${plan.message}`);
  return plan;
}
