import type { BackendName } from './backend-name.ts';
import { done, openDb } from './idb.ts';

/**
 * The measured backend choice, kept in IndexedDB (available in dedicated
 * workers, unlike localStorage) under a key that names everything the choice
 * depends on: browser and version (the user agent), cores, cross-origin
 * isolation (threads), the WebGPU adapter and WebGL renderer, and the model
 * signature with its batch size. When any of them changes the key changes,
 * and the page measures again.
 */

const DB_NAME = 'federated-learning-backend';
const STORE = 'choices';

export interface CachedChoice {
  readonly backend: BackendName;
  /** What the measurement found, to show again: one line per backend. */
  readonly measurements: readonly BackendMeasurement[];
  readonly measuredAt: string;
}

export interface BackendMeasurement {
  readonly backend: BackendName;
  readonly adapter?: string;
  /** A fallback or software adapter (SwiftShader, llvmpipe, WARP…). */
  readonly software: boolean;
  /** WASM threads in use. */
  readonly threads?: number;
  readonly examplesPerSecond?: number;
  /** Time spent on this backend: initialisation and measurement, ms. */
  readonly ms?: number;
  /** Why there is no rate: failed to initialise, stopped early, or failed during the measurement. */
  readonly note?: string;
}

export interface ChoiceKeyParts {
  readonly userAgent: string;
  readonly cores: number;
  readonly isolated: boolean;
  readonly webgpuAdapter?: string;
  readonly webglRenderer?: string;
  /** JSON of the model spec, the batch size and whether the steps are DP-SGD. */
  readonly modelSignature: string;
}

/** A SHA-256 of the parts, hex: the cache key. */
export async function choiceKey(parts: ChoiceKeyParts): Promise<string> {
  const bytes = new TextEncoder().encode(JSON.stringify(parts));
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The cached choice for `key`, or undefined (also when IndexedDB is unavailable: then the page simply measures). */
export async function loadChoice(key: string): Promise<CachedChoice | undefined> {
  try {
    const db = await openDb(DB_NAME, STORE);
    const value: unknown = await done(db.transaction(STORE, 'readonly').objectStore(STORE).get(key));
    db.close();
    return value === undefined ? undefined : (value as CachedChoice);
  } catch {
    return undefined;
  }
}

export async function saveChoice(key: string, choice: CachedChoice): Promise<void> {
  try {
    const db = await openDb(DB_NAME, STORE);
    await done(db.transaction(STORE, 'readwrite').objectStore(STORE).put(choice, key));
    db.close();
  } catch {
    // Not cached: the next visit measures again, which is correct, only slower.
  }
}
