/**
 * The one strict parser of numeric command-line flags, shared by the
 * coordinator's flags (the option table, coordinator/options/) and the
 * benchmarks. Each caller passes `fail`, which makes its own error type.
 */

/**
 * The flag's number, or undefined when the flag was not given. Refused with
 * `--flag must be <expected>, got "<text>"`: empty text, anything Number()
 * reads only in part or not at all ("12abc", "fast"), NaN, ±Infinity, and any
 * value `check` rejects.
 */
export function numberFlag(
  text: unknown,
  flag: string,
  check: (n: number) => boolean,
  expected: string,
  fail: (message: string) => Error,
): number | undefined {
  return text === undefined ? undefined : givenNumberFlag(text, flag, check, expected, fail);
}

/** numberFlag for a flag that was given. */
export function givenNumberFlag(
  text: unknown,
  flag: string,
  check: (n: number) => boolean,
  expected: string,
  fail: (message: string) => Error,
): number {
  const value = typeof text === 'string' && text.trim() !== '' ? Number(text) : NaN;
  if (!Number.isFinite(value) || !check(value)) throw fail(`--${flag} must be ${expected}, got "${String(text)}"`);
  return value;
}

export const isPositiveInt = (n: number): boolean => Number.isInteger(n) && n >= 1;
export const isNonNegativeInt = (n: number): boolean => Number.isInteger(n) && n >= 0;
export const isPositive = (n: number): boolean => n > 0;
