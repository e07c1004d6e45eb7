/**
 * `npm run tokens -- ...`: mints, lists and revokes per-participant
 * credentials in the file the coordinator reads with `--credentials FILE`.
 * The file keeps only SHA-256 digests; the tokens are printed (or written
 * with --out, mode 0600) once, when minted, for the operator to hand out.
 * A running coordinator re-reads the file when it changes, so a revocation
 * takes effect at once. Bad flags exit with code 2.
 */

import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { mintCredentials, parseCredentialFile, revokeCredentials, type CredentialFile } from './security/credentials.ts';
import { writeFileAtomic } from './storage/atomic-write.ts';

const USAGE = `Usage: npm run tokens -- --file FILE [--count N [--label TEXT] [--out TOKENS]] [--revoke ID,ID...] [--list]

Per-participant credentials for "npm start -- --credentials FILE".

  --file FILE      the credentials file (created if missing); it holds ids and
                   SHA-256 digests only, never a token
  --count N        mint N new credentials (ids c0001, c0002, ...)
  --label TEXT     a note stored with the new credentials (e.g. a cohort)
  --out TOKENS     write the new "ID TOKEN" lines there (mode 0600) instead of
                   printing them; each token is shown only this once
  --revoke IDS     revoke these credentials (comma-separated ids): a running
                   coordinator closes their connections and refuses them
  --list           print each credential's id, state and label`;

class UsageError extends Error {}

/** The parsed flags; a parse error ends the same way as any other bad flag. */
function flagValues(argv: readonly string[]) {
  try {
    return parseArgs({
      args: [...argv],
      options: {
        file: { type: 'string' },
        count: { type: 'string' },
        label: { type: 'string' },
        out: { type: 'string' },
        revoke: { type: 'string' },
        list: { type: 'boolean' },
        help: { type: 'boolean' },
      },
      strict: true,
    }).values;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

export async function runTokensCli(argv: readonly string[], print: (line: string) => void): Promise<void> {
  const values = flagValues(argv);
  if (values.help) {
    print(USAGE);
    return;
  }
  const file = values.file;
  if (file === undefined) throw new UsageError('--file is required');
  if (values.count === undefined && values.revoke === undefined && !values.list)
    throw new UsageError('nothing to do: give --count, --revoke or --list');
  let credentials: CredentialFile = existsSync(file)
    ? parseCredentialFile(readFileSync(file, 'utf8'), file)
    : { version: 1, credentials: [] };
  let minted: { id: string; token: string }[] = [];
  if (values.count !== undefined) {
    const count = Number(values.count);
    if (!Number.isInteger(count) || count < 1 || count > 100_000)
      throw new UsageError(`--count must be an integer in [1, 100000], got "${values.count}"`);
    const made = mintCredentials(credentials.credentials, count, values.label);
    credentials = { version: 1, credentials: [...credentials.credentials, ...made.entries] };
    minted = made.tokens;
  }
  if (values.revoke !== undefined) {
    const ids = values.revoke
      .split(',')
      .map((id) => id.trim())
      .filter(Boolean);
    if (ids.length === 0) throw new UsageError('--revoke needs at least one id');
    credentials = revokeCredentials(credentials, ids);
    print(`revoked ${ids.join(', ')}`);
  }
  if (values.count !== undefined || values.revoke !== undefined) {
    // Tokens first: if writing them fails, the file does not list credentials nobody holds.
    if (minted.length > 0 && values.out !== undefined) {
      await writeFile(values.out, `${minted.map((m) => `${m.id} ${m.token}`).join('\n')}\n`, { mode: 0o600, flag: 'wx' });
      print(`wrote ${minted.length} token(s) to ${values.out} (hand each participant its line's token; it is not stored anywhere else)`);
    }
    await writeFileAtomic(file, `${JSON.stringify(credentials, null, 2)}\n`);
    if (minted.length > 0 && values.out === undefined) for (const m of minted) print(`${m.id} ${m.token}`);
    print(
      `${file}: ${credentials.credentials.filter((c) => c.revoked === undefined).length} active, ${credentials.credentials.filter((c) => c.revoked !== undefined).length} revoked`,
    );
  }
  if (values.list) {
    for (const c of credentials.credentials)
      print(
        `${c.id}  ${c.revoked === undefined ? 'active ' : `revoked ${c.revoked}`}  created ${c.created}${c.label ? `  ${c.label}` : ''}`,
      );
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runTokensCli(process.argv.slice(2), (line) => console.log(line)).catch((error: unknown) => {
    console.error(`${(error as Error).message}\n`);
    if (error instanceof UsageError) console.error(USAGE);
    process.exit(error instanceof UsageError ? 2 : 1);
  });
}
