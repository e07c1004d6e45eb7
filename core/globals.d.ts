// Web-standard globals that browsers, dedicated workers and Node >= 20 all
// provide. The core is compiled against this file instead of the DOM or Node
// typings, so code that would only run on one side fails to compile.

interface IsomorphicCrypto {
  getRandomValues<T extends ArrayBufferView>(array: T): T;
}

declare var crypto: IsomorphicCrypto;

declare function setTimeout(handler: () => void, ms?: number): unknown;
declare function clearTimeout(handle: unknown): void;

declare var performance: { now(): number };

declare var console: {
  log(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
};
