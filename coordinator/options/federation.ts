import { isNonNegativeInt, isPositiveInt } from '../flags.ts';
import { ArchitectureName } from '../../core/protocol/messages.ts';
import { booleanOption, choiceOption, numberOption, textOption, type OptionGroup } from './option.ts';

/** The model, the rounds, local training and the simple per-update clipping and noise. */

export const MODEL = choiceOption({
  name: 'model',
  placeholder: 'NAME',
  choices: ArchitectureName,
  default: 'mlp',
  help: 'mlp (784-128-10, default) | 2nn (784-200-200-10) | cnn',
});
export const ROUNDS = numberOption({
  name: 'rounds',
  placeholder: 'N',
  task: ['federation', 'rounds'],
  default: 20,
  check: isPositiveInt,
  expected: 'a positive integer',
  help: 'stop after N rounds (default {default})',
});
export const TARGET_ACCURACY = numberOption({
  name: 'target-accuracy',
  placeholder: 'X',
  task: ['federation', 'targetAccuracy'],
  check: (n) => n > 0 && n <= 1,
  expected: 'a number in (0, 1]',
  help: 'stop once the test accuracy reaches X (0..1)',
});
export const EARLY_STOPPING_PATIENCE = numberOption({
  name: 'early-stopping-patience',
  placeholder: 'N',
  task: ['federation', 'earlyStoppingPatience'],
  check: isPositiveInt,
  expected: 'a positive integer',
  help: 'stop after N evaluated rounds without a better test accuracy\n(the best model is kept in <data-dir>/<task>/best/ either way)',
});
/** Default: 1, or all the demo participants, so the first round is not trained by the first tab alone. */
export const MIN_CLIENTS = numberOption({
  name: 'min-clients',
  placeholder: 'N',
  task: ['federation', 'minClients'],
  check: isPositiveInt,
  expected: 'a positive integer',
  help: 'participants needed to start a round (default 1, or N demo participants)',
});
export const CLIENTS_PER_ROUND = numberOption({
  name: 'clients-per-round',
  placeholder: 'N',
  task: ['federation', 'clientsPerRound'],
  default: 10,
  check: isPositiveInt,
  expected: 'a positive integer',
  help: 'participants selected per round (default {default})',
});
export const MIN_UPDATES = numberOption({
  name: 'min-updates',
  placeholder: 'N',
  task: ['federation', 'minUpdates'],
  default: 1,
  check: isPositiveInt,
  expected: 'a positive integer',
  help: 'updates needed to aggregate a round (default {default}; with Skellam\ndistributed noise M - D, see --tolerated-dropouts)',
});
/** Seconds. */
export const ROUND_TIMEOUT = numberOption({
  name: 'round-timeout',
  placeholder: 'S',
  task: ['federation', 'roundTimeout'],
  default: 120,
  check: (n) => n > 0,
  expected: 'a positive number of seconds',
  help: 'seconds a round collects updates (default {default})',
});
export const EPOCHS = numberOption({
  name: 'epochs',
  placeholder: 'N',
  task: ['training', 'epochs'],
  default: 1,
  check: isPositiveInt,
  expected: 'a positive integer',
  help: 'local epochs per round (default {default})',
});
export const BATCH_SIZE = numberOption({
  name: 'batch-size',
  placeholder: 'N',
  task: ['training', 'batchSize'],
  default: 32,
  check: isPositiveInt,
  expected: 'a positive integer',
  help: 'local batch size (default {default})',
});
export const LEARNING_RATE = numberOption({
  name: 'learning-rate',
  placeholder: 'X',
  task: ['training', 'learningRate'],
  default: 0.1,
  check: (n) => n > 0,
  expected: 'a positive number',
  help: 'local SGD learning rate (default {default})',
});
export const CLIP_NORM = numberOption({
  name: 'clip-norm',
  placeholder: 'S',
  task: ['privacy', 'clipNorm'],
  check: (n) => n > 0,
  expected: 'a positive number',
  help: 'clip each update to L2 norm S',
});
export const NOISE_STD = numberOption({
  name: 'noise-std',
  placeholder: 'X',
  task: ['privacy', 'noiseStd'],
  default: 0,
  check: (n) => n >= 0,
  expected: 'a number >= 0',
  help: 'add N(0, X^2) noise to each clipped update (needs --clip-norm)',
});
export const SEED = numberOption({
  name: 'seed',
  placeholder: 'N',
  task: ['federation', 'seed'],
  default: 1,
  check: isNonNegativeInt,
  expected: 'a non-negative integer',
  help: 'seed for the initial model and participant selection (default {default})',
});
export const OVER_SELECT = numberOption({
  name: 'over-select',
  placeholder: 'F',
  task: ['federation', 'overSelect'],
  check: (n) => n >= 0 && n <= 10,
  expected: 'a fraction in [0, 10]',
  help: 'select F more participants than --clients-per-round (e.g. 0.3), so\ndropouts still leave enough updates',
});
export const ADAPTIVE_DEADLINE = booleanOption({
  name: 'adaptive-deadline',
  task: ['federation', 'adaptiveDeadline'],
  help: 'close rounds after 3x the recent 90th-percentile participant latency\n(at least 5 s, at most --round-timeout)',
});
export const MANUAL_START = booleanOption({
  name: 'manual-start',
  help: 'wait until the operator presses Start on the dashboard (needs\n--admin-token: without one the dashboard is read-only)',
});
export const CHECKPOINT_KEY_FILE = textOption({
  name: 'checkpoint-key-file',
  placeholder: 'F',
  help: 'encrypt checkpoints with AES-256-GCM (64 hex characters in F,\ne.g. from `openssl rand -hex 32`)',
});

export const FEDERATION_GROUP: OptionGroup = {
  heading: 'Model and rounds',
  options: [
    MODEL,
    ROUNDS,
    TARGET_ACCURACY,
    EARLY_STOPPING_PATIENCE,
    MIN_CLIENTS,
    CLIENTS_PER_ROUND,
    MIN_UPDATES,
    ROUND_TIMEOUT,
    EPOCHS,
    BATCH_SIZE,
    LEARNING_RATE,
    CLIP_NORM,
    NOISE_STD,
    SEED,
    OVER_SELECT,
    ADAPTIVE_DEADLINE,
    MANUAL_START,
    CHECKPOINT_KEY_FILE,
  ],
};
