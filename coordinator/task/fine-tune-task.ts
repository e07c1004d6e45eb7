import type * as tf from '@tensorflow/tfjs';
import { gatherFrozen, trainableLayout, weightsContentHash, type TrainableLayout } from '../../core/model/fine-tune.ts';
import { trainableWeightIndices } from '../../core/model/trainable-variables.ts';
import type { FineTuneSummary, WeightShape } from '../../core/protocol/messages.ts';
import { encodeFrame, FrameKind } from '../../core/wire/frame.ts';

/** A fine-tuning task as the coordinator runs it (docs/fine-tuning.md). */
export interface LoadedFineTune {
  readonly layout: TrainableLayout;
  /** What participants learn of it when they join (TaskSummary.fineTune). */
  readonly summary: FineTuneSummary;
  /** The frozen values as a Weights frame, encoded once: the `model:frozen` answer. */
  readonly frozenFrame: ArrayBuffer;
}

/**
 * Applies a task's `fineTune.trainable` to a loaded model.json: the layers it
 * names train, every other one is frozen. One place decides: naming a layer
 * that model.json marks `trainable: false` is an error, as are unknown names
 * and a model left with nothing to train. Without `trainable`, the model.json's
 * own marks stand (and must leave something to train).
 */
export function markTrainableLayers(
  model: tf.LayersModel,
  trainable: readonly string[] | undefined,
  fail: (message: string) => never,
): void {
  if (trainable !== undefined) {
    const layers = new Map(model.layers.map((layer) => [layer.name, layer]));
    const names = (list: readonly string[]) => list.map((name) => JSON.stringify(name)).join(', ');
    const unknown = trainable.filter((name) => !layers.has(name));
    if (unknown.length > 0)
      fail(`fineTune.trainable names ${names(unknown)}, not a layer of the model; its layers are ${names([...layers.keys()])}`);
    const markedFrozen = trainable.filter((name) => !layers.get(name)!.trainable);
    if (markedFrozen.length > 0) {
      fail(
        `fineTune.trainable names ${names(markedFrozen)}, which model.json marks "trainable": false; ` +
          'the two disagree: remove the mark from model.json or the name from fineTune.trainable',
      );
    }
    const chosen = new Set(trainable);
    for (const layer of model.layers) layer.trainable = chosen.has(layer.name);
  }
  if (model.trainableWeights.length === 0) {
    fail(
      trainable !== undefined
        ? `fineTune.trainable names only layers without weights (${trainable.join(', ')}): nothing would be trained`
        : 'every layer with weights is marked "trainable": false in model.json: nothing would be trained',
    );
  }
}

/**
 * The fine-tuning split of a model whose layers are marked, or undefined when
 * every layer with weights trains (then everything travels, as before). Non-trainable
 * weights of trainable layers (batch-norm statistics) are frozen too: no gradient moves them.
 */
export async function fineTuneParts(
  model: tf.LayersModel,
  shapes: readonly WeightShape[],
  weights: Float32Array,
): Promise<LoadedFineTune | undefined> {
  if (!model.layers.some((layer) => !layer.trainable && layer.weights.length > 0)) return undefined;
  const trainableWeights = trainableWeightIndices(model);
  const layout = trainableLayout(shapes, trainableWeights);
  const frozen = gatherFrozen(weights, layout);
  return {
    layout,
    summary: { trainableWeights, trainableParamCount: layout.trainableCount, frozenHash: await weightsContentHash(frozen) },
    frozenFrame: encodeFrame(FrameKind.Weights, frozen),
  };
}
