import { randomBytes } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import { tokenDigest, TokenSet } from './tokens.ts';

/**
 * Per-participant credentials (`--credentials FILE`, minted and revoked with
 * `npm run tokens`). Each credential has a public id and a secret token; the
 * file keeps only the token's SHA-256 digest, so a copy of it lets nobody
 * join. Unlike a shared join token, a credential names one participant: the
 * coordinator limits the connections each credential may hold, and the
 * participant's record of delivered rounds (selection) follows the
 * credential, not the connection.
 *
 * File format (JSON, written by coordinator/tokens-cli.ts):
 *   { "version": 1, "credentials": [ { "id": "c0001", "sha256": "<64 hex>", "created": "<ISO time>", "revoked"?: "<ISO time>", "label"?: "..." } ] }
 */

export interface CredentialEntry {
  readonly id: string;
  /** SHA-256 of the token, lower-case hex. */
  readonly sha256: string;
  readonly created: string;
  /** Set when revoked: handshakes with it are refused and its connections closed. */
  readonly revoked?: string;
  readonly label?: string;
}

export interface CredentialFile {
  readonly version: 1;
  readonly credentials: readonly CredentialEntry[];
}

const ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
const DIGEST_PATTERN = /^[0-9a-f]{64}$/;

/** Parses and checks a credentials file. Throws an Error naming the file and entry; never prints a digest. */
export function parseCredentialFile(text: string, source: string): CredentialFile {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new Error(`${source}: not JSON (${(error as Error).message})`);
  }
  const file = data as Partial<CredentialFile> | null;
  if (!file || typeof file !== 'object' || file.version !== 1 || !Array.isArray(file.credentials)) {
    throw new Error(`${source}: not a credentials file (expected {"version": 1, "credentials": [...]}, written by "npm run tokens")`);
  }
  const seen = new Set<string>();
  file.credentials.forEach((entry: Partial<CredentialEntry>, i) => {
    const where = `${source}: credential #${i + 1}`;
    if (!entry || typeof entry.id !== 'string' || !ID_PATTERN.test(entry.id))
      throw new Error(`${where}: "id" must be 1-64 letters, digits, '.', '_' or '-'`);
    if (seen.has(entry.id)) throw new Error(`${where}: id ${entry.id} appears twice`);
    seen.add(entry.id);
    if (typeof entry.sha256 !== 'string' || !DIGEST_PATTERN.test(entry.sha256))
      throw new Error(`${where} (${entry.id}): "sha256" must be 64 lower-case hex digits`);
    if (typeof entry.created !== 'string') throw new Error(`${where} (${entry.id}): "created" is missing`);
    if (entry.revoked !== undefined && typeof entry.revoked !== 'string')
      throw new Error(`${where} (${entry.id}): "revoked" must be a time`);
  });
  return file as CredentialFile;
}

/** New credentials: ids continuing after the highest `c<number>` in use, and their secret tokens (shown once). */
export function mintCredentials(
  existing: readonly CredentialEntry[],
  count: number,
  label?: string,
  now = new Date(),
): { entries: CredentialEntry[]; tokens: { id: string; token: string }[] } {
  let next = 1 + existing.reduce((max, e) => Math.max(max, /^c(\d+)$/.test(e.id) ? Number(e.id.slice(1)) : 0), 0);
  const entries: CredentialEntry[] = [];
  const tokens: { id: string; token: string }[] = [];
  for (let i = 0; i < count; i++) {
    const id = `c${String(next++).padStart(4, '0')}`;
    // 256 bits: unguessable; base64url has no white space or '#', so it fits a token file line too.
    const token = randomBytes(32).toString('base64url');
    entries.push({ id, sha256: tokenDigest(token).toString('hex'), created: now.toISOString(), ...(label !== undefined ? { label } : {}) });
    tokens.push({ id, token });
  }
  return { entries, tokens };
}

/** The file with the given ids marked revoked (at `now`). Throws on an unknown id. */
export function revokeCredentials(file: CredentialFile, ids: readonly string[], now = new Date()): CredentialFile {
  const known = new Set(file.credentials.map((e) => e.id));
  const unknown = ids.filter((id) => !known.has(id));
  if (unknown.length > 0) throw new Error(`no credential with id ${unknown.join(', ')}`);
  const revoke = new Set(ids);
  return {
    version: 1,
    credentials: file.credentials.map((e) => (revoke.has(e.id) && e.revoked === undefined ? { ...e, revoked: now.toISOString() } : e)),
  };
}

/** The active (not revoked) credentials, checked in constant time against a presented token. */
export class CredentialSet {
  private readonly ids: readonly string[];
  private readonly tokens: TokenSet | undefined;

  constructor(file: CredentialFile) {
    const active = file.credentials.filter((e) => e.revoked === undefined);
    this.ids = active.map((e) => e.id);
    this.tokens = active.length > 0 ? new TokenSet({ digests: active.map((e) => Buffer.from(e.sha256, 'hex')) }) : undefined;
  }

  get size(): number {
    return this.ids.length;
  }

  /** The id of the active credential whose token this is, or undefined. */
  identify(token: unknown): string | undefined {
    const index = this.tokens?.indexOf(token) ?? -1;
    return index >= 0 ? this.ids[index] : undefined;
  }

  has(id: string): boolean {
    return this.ids.includes(id);
  }
}

/**
 * The credentials file as the running coordinator sees it: read at start
 * (a bad file stops the start), re-read when it changes (polled every
 * second), so `npm run tokens -- --revoke ID` takes effect without a
 * restart. A bad file on re-read is reported and the previous set kept.
 */
export class CredentialStore {
  private current: CredentialSet;
  private listener: ((now: Stats, before: Stats) => void) | undefined;

  constructor(readonly file: string) {
    this.current = CredentialStore.read(file);
  }

  static read(file: string): CredentialSet {
    return new CredentialSet(parseCredentialFile(readFileSync(file, 'utf8'), file));
  }

  get set(): CredentialSet {
    return this.current;
  }

  identify(token: unknown): string | undefined {
    return this.current.identify(token);
  }

  /** Starts watching the file; `onChange` gets the new set (revoked ids are no longer in it), `onError` a bad re-read. */
  watch(onChange: (set: CredentialSet) => void, onError: (message: string) => void, intervalMs = 1000): void {
    if (this.listener) return;
    this.listener = (now, before) => {
      if (now.mtimeMs === before.mtimeMs && now.size === before.size) return;
      try {
        this.current = CredentialStore.read(this.file);
        onChange(this.current);
      } catch (error) {
        onError(`credentials file ${this.file} could not be re-read, the previous credentials stay in force: ${(error as Error).message}`);
      }
    };
    watchFile(this.file, { interval: intervalMs, persistent: false }, this.listener);
  }

  close(): void {
    if (this.listener) unwatchFile(this.file, this.listener);
    this.listener = undefined;
  }
}
