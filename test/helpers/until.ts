/**
 * Reads `read` every `pollMs` until `ok` holds of what it read, and returns
 * that value; past `timeoutMs` it throws, naming `what` and the last value
 * read, so a failure can be understood from the log alone.
 */
export async function until<T>(
  read: () => T | Promise<T>,
  ok: (value: T) => boolean,
  timeoutMs: number,
  what: string,
  pollMs = 100,
): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() - started > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}: ${JSON.stringify(value)?.slice(0, 2000)}`);
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
