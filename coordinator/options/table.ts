import { COMMUNICATION_GROUP } from './communication.ts';
import { ASYNC_GROUP } from './async.ts';
import type { Option, OptionGroup, SettingKind, TaskSection } from './option.ts';
import { CLIENT_DP_GROUP, SAMPLE_DP_GROUP } from './privacy.ts';
import { SECURE_AGGREGATION_GROUP } from './secure-aggregation.ts';
import { SECURITY_GROUP } from './security.ts';
import { FEDERATION_GROUP } from './federation.ts';
import { OUTPUT_GROUP, SERVER_GROUP, TASK_GROUP } from './server.ts';
import { STRATEGY_GROUP } from './strategy.ts';

/**
 * The coordinator's option table: every option of options/*.ts, in the order
 * of the help text. From it come the help text (USAGE), the node:util
 * parseArgs options and the task-file keys (TASK_FILE_SETTINGS).
 */

export const OPTION_GROUPS: readonly OptionGroup[] = [
  TASK_GROUP,
  SERVER_GROUP,
  SECURITY_GROUP,
  FEDERATION_GROUP,
  ASYNC_GROUP,
  CLIENT_DP_GROUP,
  STRATEGY_GROUP,
  SAMPLE_DP_GROUP,
  SECURE_AGGREGATION_GROUP,
  COMMUNICATION_GROUP,
  OUTPUT_GROUP,
];

export const OPTIONS: readonly Option<unknown>[] = OPTION_GROUPS.flatMap((group) => group.options);

/** The options for node:util parseArgs. */
export const PARSE_ARGS_OPTIONS: Readonly<Record<string, { readonly type: 'string' | 'boolean' }>> = Object.fromEntries(
  OPTIONS.map((option) => [option.name, { type: option.type }]),
);

/** Every settings key of a task file, by section, and the flag it stands for. */
export const TASK_FILE_SETTINGS: Readonly<Record<TaskSection, Readonly<Record<string, readonly [string, SettingKind]>>>> = (() => {
  const sections: Record<TaskSection, Record<string, readonly [string, SettingKind]>> = {
    federation: {},
    training: {},
    privacy: {},
    aggregation: {},
    secureAggregation: {},
    communication: {},
  };
  for (const option of OPTIONS) {
    if (option.task === undefined) continue;
    const section = sections[option.task.section];
    if (option.task.key in section) throw new Error(`task-file key ${option.task.section}.${option.task.key} is declared twice`);
    section[option.task.key] = [option.name, option.task.kind];
  }
  return sections;
})();

/** Where the help text of each option starts. */
const HELP_COLUMN = 27;

export const USAGE = `Usage: npm start -- [options]

Runs the federation coordinator with the embedded demo task (MNIST digits), or a task file.
${OPTION_GROUPS.map(groupUsage).join('')}`;

function groupUsage(group: OptionGroup): string {
  const lines = group.options.flatMap(optionUsage);
  return group.heading === undefined ? `${lines.join('\n')}\n` : `\n${group.heading}\n${lines.join('\n')}\n`;
}

function optionUsage(option: Option<unknown>): string[] {
  if (option.help === undefined) return [];
  const flag = `  --${option.name}${option.placeholder === undefined ? '' : ` ${option.placeholder}`}`;
  const [first = '', ...rest] = option.help.replaceAll('{default}', formatDefault(option.default)).split('\n');
  const lead = flag.length < HELP_COLUMN ? flag.padEnd(HELP_COLUMN) : `${flag}   `;
  return [`${lead}${first}`, ...rest.map((line) => `${' '.repeat(HELP_COLUMN)}${line}`)];
}

function formatDefault(value: unknown): string {
  if (typeof value !== 'number') return String(value);
  // Powers of two as 2^k (quantization ranges), small numbers as 1e-5 (delta).
  if (Number.isInteger(value) && value >= 2 ** 16 && Number.isInteger(Math.log2(value))) return `2^${Math.log2(value)}`;
  return value > 0 && value < 1e-3 ? value.toExponential() : String(value);
}
