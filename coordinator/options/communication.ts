import { ModelEncodingName, UpdateEncodingName } from '../../core/protocol/messages.ts';
import type { RoundSettings } from '../../core/protocol/status.ts';
import { choiceOption, type FlagValues, type OptionGroup } from './option.ts';

/**
 * How updates and the broadcast model travel (docs/compression.md). Under
 * secure aggregation int8/int4 set the masked words' value bits instead
 * (core/secagg/modulus.ts, docs/secagg-compression.md).
 */

export const UPDATE_ENCODING = choiceOption({
  name: 'update-encoding',
  placeholder: 'E',
  choices: UpdateEncodingName,
  task: ['communication', 'updateEncoding'],
  default: 'float32',
  help: 'float32 (default) | float16 | int8 | int4: how participants send their updates\n(int8/int4: per-block scales, stochastic rounding, error feedback; docs/compression.md;\nunder --secure-aggregation int8/int4 pack the masked words into the fewest bits\nthat cannot overflow, docs/secagg-compression.md)',
});
export const MODEL_ENCODING = choiceOption({
  name: 'model-encoding',
  placeholder: 'E',
  choices: ModelEncodingName,
  task: ['communication', 'modelEncoding'],
  default: 'float32',
  help: 'float32 (default) | float16: how the model is sent to participants',
});

export const COMMUNICATION_GROUP: OptionGroup = {
  heading: 'Communication (docs/compression.md)',
  options: [UPDATE_ENCODING, MODEL_ENCODING],
};

/** The encodings as RoundSettings carries them: only those that are not float32. */
export function communicationSettings(v: FlagValues): Pick<RoundSettings, 'updateEncoding' | 'modelEncoding'> {
  const updateEncoding = UPDATE_ENCODING.read(v);
  const modelEncoding = MODEL_ENCODING.read(v);
  return {
    ...(updateEncoding === 'float32' ? {} : { updateEncoding }),
    ...(modelEncoding === 'float32' ? {} : { modelEncoding }),
  };
}
