import { decodeValues } from '../compression/update-codec.ts';
import { ModelEncodingName, type Binary, type GlobalModelMessage, type TaskSummary } from '../protocol/messages.ts';
import { decodeFrame, FrameKind } from '../wire/frame.ts';
import { gatherTrainable, joinWeights, trainableLayout, weightsContentHash, type TrainableLayout } from './fine-tune.ts';

/** A round's model frame, in any model encoding (`--model-encoding`: float32 or float16). */
function decodeModelFrame(frame: unknown, expectedCount: number): Float32Array {
  return decodeValues(frame, { kind: FrameKind.Weights, expectedCount, allowed: ModelEncodingName }).values;
}

/**
 * Where a participant keeps a fine-tuning task's frozen weights between
 * visits, by content hash: Cache Storage in the page (web/participant/
 * frozen-cache.ts), the state folder for the Node participant.
 */
export interface FrozenWeightsStore {
  /** The values saved under `hash`, or undefined when there are none (they are checked against the hash before use). */
  load(hash: string): Promise<Float32Array | undefined>;
  save(hash: string, values: Float32Array): Promise<void>;
}

/** Where this session's frozen weights came from: the store, or the coordinator (`bytes` of frame downloaded). */
export type FrozenSource = { readonly kind: 'cache' } | { readonly kind: 'download'; readonly bytes: number };

interface Frozen {
  readonly hash: string;
  readonly layout: TrainableLayout;
  readonly values: Float32Array;
}

/**
 * The participant's side of fine-tuning (core/model/fine-tune.ts): it gets
 * the frozen values once (its store, else `model:frozen`), completes each
 * round's trainable-only weights with them for training, and packs the
 * trainable part of the trained update for upload. For a task that trains
 * every weight, weights and updates pass through whole.
 */
export class ParticipantWeights {
  private frozen: Promise<{ frozen: Frozen; source: FrozenSource }> | undefined;
  private frozenHash: string | undefined;

  constructor(
    private readonly store: FrozenWeightsStore | undefined,
    /** Asks the coordinator for the frozen values' frame (`model:frozen`). */
    private readonly download: (hash: string) => Promise<Binary>,
  ) {}

  /** Gets the task's frozen values once per session (a later call with the same task waits for the same work). */
  prepare(task: TaskSummary): Promise<FrozenSource | undefined> {
    const fineTune = task.fineTune;
    if (!fineTune) return Promise.resolve(undefined);
    if (this.frozen === undefined || this.frozenHash !== fineTune.frozenHash) {
      this.frozenHash = fineTune.frozenHash;
      const attempt = this.fetchFrozen(task);
      // A failed attempt is not kept: the next round tries again.
      attempt.catch(() => {
        if (this.frozen === attempt) this.frozen = undefined;
      });
      this.frozen = attempt;
    }
    return this.frozen.then((got) => got.source);
  }

  /** The full weights a round trains from. */
  async roundWeights(task: TaskSummary, model: GlobalModelMessage): Promise<Float32Array> {
    const fineTune = task.fineTune;
    if (!fineTune) return decodeModelFrame(model.weights, task.paramCount);
    if (model.frozenHash !== fineTune.frozenHash)
      throw new Error(`the round's model names frozen weights ${model.frozenHash ?? '(none)'}, the task ${fineTune.frozenHash}`);
    await this.prepare(task);
    const { frozen } = await this.frozen!;
    const trainable = decodeModelFrame(model.weights, fineTune.trainableParamCount);
    return joinWeights(trainable, frozen.values, frozen.layout);
  }

  /** What the update frame (or the secure sum) carries of a trained update: its trainable values, or all of it. */
  async uploadValues(task: TaskSummary, update: Float32Array): Promise<Float32Array> {
    if (!task.fineTune) return update;
    const { frozen } = await this.frozen!;
    return gatherTrainable(update, frozen.layout);
  }

  private async fetchFrozen(task: TaskSummary): Promise<{ frozen: Frozen; source: FrozenSource }> {
    const fineTune = task.fineTune!;
    const layout = trainableLayout(task.weightShapes, fineTune.trainableWeights);
    if (layout.fullCount !== task.paramCount || layout.trainableCount !== fineTune.trainableParamCount)
      throw new Error(`the task's fine-tuning split does not add up (${layout.trainableCount} trainable of ${layout.fullCount} values)`);
    const frozenCount = layout.fullCount - layout.trainableCount;
    const hash = fineTune.frozenHash;
    const cached = await this.store?.load(hash).catch(() => undefined);
    if (cached && cached.length === frozenCount && (await weightsContentHash(cached)) === hash) {
      return { frozen: { hash, layout, values: cached }, source: { kind: 'cache' } };
    }
    const frame = await this.download(hash);
    // A copy: the decoded values may share the message's buffer.
    const values = decodeFrame(frame, { kind: FrameKind.Weights, expectedCount: frozenCount }).slice();
    if ((await weightsContentHash(values)) !== hash) throw new Error(`the frozen weights downloaded do not match their hash ${hash}`);
    const bytes = frame.byteLength;
    // Saving is best effort: without a store entry the next visit downloads them again.
    await this.store?.save(hash, values).catch(() => undefined);
    return { frozen: { hash, layout, values }, source: { kind: 'download', bytes } };
  }
}
