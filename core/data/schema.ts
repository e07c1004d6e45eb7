/**
 * What a task's examples look like. The coordinator publishes it with the
 * task; a participant checks its own data against it and prepares it into
 * the exact model input, so every device feeds the model the same layout.
 */
export type InputSchema = ImageInput | TabularInput;

export interface ImageInput {
  readonly kind: 'image';
  /** [height, width, channels]; channels 1 (grayscale) or 3 (RGB). Pixels travel as bytes and train scaled to [0, 1]. */
  readonly shape: readonly [number, number, number];
}

export interface NumericFeature {
  readonly name: string;
  readonly type: 'numeric';
}

export interface CategoricalFeature {
  readonly name: string;
  readonly type: 'categorical';
  /** The values the column may take; each becomes one input of a one-hot encoding, in this order. */
  readonly categories: readonly string[];
}

export type FeatureSpec = NumericFeature | CategoricalFeature;

export interface TabularInput {
  readonly kind: 'tabular';
  /** The columns the model reads, in input order. Numeric columns are standardised with local statistics. */
  readonly features: readonly FeatureSpec[];
  /** The name of the label column in CSV files; its values are the task's class names. */
  readonly labelColumn: string;
}

/** Model inputs per example: pixels of an image, or one per numeric column plus one per category. */
export function inputSize(schema: InputSchema): number {
  if (schema.kind === 'image') return schema.shape[0] * schema.shape[1] * schema.shape[2];
  return schema.features.reduce((total, f) => total + (f.type === 'numeric' ? 1 : f.categories.length), 0);
}
