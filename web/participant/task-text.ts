import type { TaskSummary, UpdateEncodingName } from '../../core/protocol/messages.ts';
import { inputSize } from '../../core/data/schema.ts';
import { frameBytes } from '../../core/compression/update-codec.ts';
import { FRAME_HEADER_BYTES } from '../../core/wire/frame.ts';

/** Plain-language descriptions of a task for the participant page: what it expects, and what this device sends. */

/** Values in one update: every parameter, or only the trainable ones when the task fine-tunes. */
export function updateValues(task: TaskSummary): number {
  return task.fineTune?.trainableParamCount ?? task.paramCount;
}

/** Bytes of one plain update on the wire: each value sent as a float32, plus the frame header. */
export function updateBytes(task: TaskSummary): number {
  return updateValues(task) * 4 + FRAME_HEADER_BYTES;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes.toLocaleString()} bytes`;
  const units = ['KB', 'MB', 'GB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${bytes.toLocaleString()} bytes (${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]})`;
}

/**
 * What "What leaves this device" adds about a sent update's compression: its encoding and its size before
 * compression (float32). Empty for a float32 update.
 */
export function compressedText(bytes: number, encoding: UpdateEncodingName | undefined, float32Bytes: number | undefined): string {
  if (encoding === undefined || encoding === 'float32' || float32Bytes === undefined) return '';
  return ` as ${encoding} (${float32Bytes.toLocaleString()} bytes before compression, ${(bytes / float32Bytes).toFixed(2)}×)`;
}

/** The sentence under "What leaves this device", computed from the task before any round. */
export function sentStatement(task: TaskSummary): string {
  const fineTune = task.fineTune;
  const parts = [
    fineTune
      ? `This task fine-tunes a pretrained model: it trains ${fineTune.trainableParamCount.toLocaleString()} of the model's ` +
        `${task.paramCount.toLocaleString()} parameters, and the other ${(task.paramCount - fineTune.trainableParamCount).toLocaleString()} stay frozen ` +
        '(downloaded once and kept on this device). Each round this device takes part in, it sends one model update: the change to the ' +
        `${fineTune.trainableParamCount.toLocaleString()} trainable parameters as 4-byte numbers plus a ${FRAME_HEADER_BYTES}-byte header, ` +
        `${formatBytes(updateBytes(task))} per round (all ${task.paramCount.toLocaleString()} would be ${formatBytes(task.paramCount * 4 + FRAME_HEADER_BYTES)}).`
      : `Each round this device takes part in, it sends one model update: the change to the model's ` +
        `${task.paramCount.toLocaleString()} parameters as 4-byte numbers plus a ${FRAME_HEADER_BYTES}-byte header, ` +
        `${formatBytes(updateBytes(task))} per round.`,
  ];
  const dp = task.sampleDp;
  if (dp) {
    parts.push(
      `Every update is trained with DP-SGD: each example's gradient is clipped to norm ${dp.clipNorm} and Gaussian noise ` +
        `(noise multiplier ${dp.noiseMultiplier}) is added, so an update reveals little about any single example.`,
    );
  }
  parts.push(
    'When the coordinator asks for it, the update is sent compressed (as 16-bit floats, or as 8- or 4-bit integers with ' +
      `one scale per 256 values: as little as ${formatBytes(frameBytes('int4', task.paramCount))}), after any clipping and noise.`,
  );
  parts.push(
    'When the coordinator asks for it, the whole update is also clipped and noised (client-level differential privacy), ' +
      'and masked with secure aggregation so a coordinator following the protocol can decode only the sum of all updates ' +
      `(then ${formatBytes(updateValues(task) * 4)} of masked numbers, fewer with a compressed encoding, plus small key-exchange messages).`,
  );
  return parts.join(' ');
}

export const SENT_ALSO =
  'Also sent: the number of your examples, the training backend, a short device description (browser, OS, CPU cores, memory, screen size), and, only when no ' +
  'differential privacy is on, the local loss, accuracy, training time and training progress.';

export interface InputDescription {
  readonly lead: readonly string[];
  /** One line per model feature (tabular tasks), shown as a list. */
  readonly features: readonly string[];
  readonly tail: readonly string[];
}

/** The task's expected input in words. */
export function describeInput(task: TaskSummary): InputDescription {
  const input = task.input;
  const classes = task.classes;
  const quoted = (names: readonly string[]) => names.map((c) => `"${c}"`).join(', ');
  const classText = classes.length <= 20 ? quoted(classes) : `${quoted(classes.slice(0, 20))} and ${classes.length - 20} more`;
  if (input.kind === 'image') {
    const [height, width, channels] = input.shape;
    return {
      lead: [
        `Images, resized on this device to ${width} × ${height} pixels, ${channels === 1 ? 'in grayscale' : 'in colour (RGB)'}.`,
        `${classes.length} classes: ${classText}.`,
        'Either a folder with one subfolder per class, each named exactly as its class ' +
          `(for example subfolders ${quoted(classes.slice(0, 2)).replace(', ', ' and ')}), MNIST-style IDX files, or a CSV of pixel values.`,
      ],
      features: [],
      tail: [],
    };
  }
  return {
    lead: [`A CSV file with a header row; each row is one example. The model reads ${inputSize(input)} inputs made from these columns:`],
    features: input.features.map((feature) =>
      feature.type === 'numeric'
        ? `"${feature.name}": a number (standardised on this device with statistics of your own data)`
        : `"${feature.name}": one of ${quoted(feature.categories)} (one-hot encoded)`,
    ),
    tail: [
      `The label column "${input.labelColumn}", one of ${classes.length} classes: ${classText}.`,
      'Other columns (names, identifiers) can be dropped: they never reach the model or the network.',
    ],
  };
}
