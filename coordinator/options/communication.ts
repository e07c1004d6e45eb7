import { choiceOption, type OptionGroup } from './option.ts';

/**
 * How updates travel. Under secure aggregation int8/int4 set the masked
 * words' value bits (core/secagg/modulus.ts, docs/secagg-compression.md);
 * the plain-path encodings are core/compression's.
 */

export const UPDATE_ENCODINGS = ['float32', 'float16', 'int8', 'int4'] as const;
export type UpdateEncoding = (typeof UPDATE_ENCODINGS)[number];

export const UPDATE_ENCODING = choiceOption({
  name: 'update-encoding',
  placeholder: 'E',
  task: ['communication', 'updateEncoding'],
  choices: UPDATE_ENCODINGS,
  default: 'float32',
  help: 'float32 | float16 | int8 | int4: how each update is encoded for upload\n(default {default}; under --secure-aggregation int8/int4 pack the masked words\ninto the fewest bits that cannot overflow, docs/secagg-compression.md)',
});

export const COMMUNICATION_GROUP: OptionGroup = {
  heading: 'Communication',
  options: [UPDATE_ENCODING],
};
