import { givenNumberFlag } from '../flags.ts';

/**
 * One command-line option of the coordinator, declared once: its flag, its
 * parseArgs type, its help line, its default, its task-file key and how its
 * text is read and checked. coordinator/options/table.ts generates the help
 * text, the parseArgs options and the task-file keys from these.
 */

/** A bad flag, flag combination or task-file setting: the coordinator does not start. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** What node:util parseArgs gives back for the coordinator's flags. */
export type FlagValues = Readonly<Record<string, unknown>>;

export type MakeError = (message: string) => Error;
export const configError: MakeError = (message) => new ConfigError(message);

/** The sections of a task file that hold settings (docs/tasks.md). */
export type TaskSection = 'federation' | 'training' | 'privacy' | 'aggregation' | 'secureAggregation' | 'communication';
/** How a task-file value becomes flag text (task/task-file.ts). */
export type SettingKind = 'number' | 'string' | 'boolean' | 'number-or-all';

export interface TaskKey {
  readonly section: TaskSection;
  readonly key: string;
  readonly kind: SettingKind;
}

export interface Option<T, D extends T | undefined = T | undefined> {
  /** The flag without its dashes. */
  readonly name: string;
  readonly type: 'string' | 'boolean';
  /** The value's placeholder in the help text (N, FILE, ...); none for a boolean flag. */
  readonly placeholder?: string;
  /** The help text (lines joined by \n; "{default}" stands for the default); absent: not listed. */
  readonly help?: string;
  /** The task-file key that sets it, when a task file may. */
  readonly task?: TaskKey;
  /** The value when the flag is absent; a default that depends on other settings is given to readOr. */
  readonly default: D;
  /** The flag's value, checked; the default when it is absent. `fail` makes the error (default: ConfigError). */
  read(values: FlagValues, fail?: MakeError): T | D;
  /** The flag's value, checked; `fallback` when it is absent. */
  readOr(values: FlagValues, fallback: T, fail?: MakeError): T;
}

interface Declaration<D> {
  readonly name: string;
  readonly placeholder?: string;
  readonly help?: string;
  readonly task?: readonly [TaskSection, string];
  readonly default?: D;
}

function option<T, D extends T | undefined>(
  declaration: Declaration<D>,
  type: 'string' | 'boolean',
  kind: SettingKind,
  parse: (value: unknown, fail: MakeError) => T,
): Option<T, D> {
  const { name, placeholder, help, task } = declaration;
  const read = (values: FlagValues, fail: MakeError = configError): T | undefined => {
    const value = values[name];
    return value === undefined ? undefined : parse(value, fail);
  };
  return {
    name,
    type,
    placeholder,
    help,
    task: task === undefined ? undefined : { section: task[0], key: task[1], kind },
    default: declaration.default as D,
    read: (values, fail) => read(values, fail) ?? (declaration.default as D),
    readOr: (values, fallback, fail) => read(values, fail) ?? fallback,
  };
}

export interface NumberDeclaration<D> extends Declaration<D> {
  readonly check: (n: number) => boolean;
  /** "a positive integer": completes `--flag must be <expected>, got "<text>"`. */
  readonly expected: string;
}

/** A numeric flag, read by the one strict number parser (flags.ts). */
export function numberOption<D extends number | undefined = undefined>(declaration: NumberDeclaration<D>): Option<number, D> {
  return option(declaration, 'string', 'number', (value, fail) =>
    givenNumberFlag(value, declaration.name, declaration.check, declaration.expected, fail),
  );
}

/** A flag with text that its parse code checks (a name, a file, a list). */
export function textOption<D extends string | undefined = undefined>(
  declaration: Declaration<D> & { readonly kind?: SettingKind },
): Option<string, D> {
  return option(declaration, 'string', declaration.kind ?? 'string', String);
}

/** A flag that names one of `choices`; anything else is refused with `--flag must be a, b or c, got "x"`. */
export function choiceOption<C extends string, D extends C | undefined = undefined>(
  declaration: Declaration<D> & { readonly choices: readonly C[] },
): Option<C, D> {
  const { name, choices } = declaration;
  const list = choices.length > 1 ? `${choices.slice(0, -1).join(', ')} or ${choices.at(-1)}` : choices.join('');
  return option(declaration, 'string', 'string', (value, fail) => {
    const text = String(value);
    if (!(choices as readonly string[]).includes(text)) throw fail(`--${name} must be ${list}, got "${text}"`);
    return text as C;
  });
}

/** A flag that is on or absent. */
export function booleanOption(declaration: Omit<Declaration<never>, 'placeholder' | 'default'>): Option<boolean, undefined> {
  return option<boolean, undefined>(declaration, 'boolean', 'boolean', (value) => value === true);
}

/** A run of options listed under one heading in the help text. */
export interface OptionGroup {
  /** Absent: the options follow the previous group without a heading. */
  readonly heading?: string;
  readonly options: readonly Option<unknown>[];
}
