import { mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { RdpAccountantState } from '../../core/privacy/accountant.ts';
import type { LedgerStore } from '../../core/privacy/ledger.ts';

/**
 * The privacy ledger of a Node participant, in its state folder: one JSON
 * file per dataset key. An update holds an exclusive lock file around its
 * read-change-write (two CLI participants on the same data in one folder
 * cannot lose a charge), and the new state replaces the old by rename, so a
 * crash leaves either the old or the new state, never a torn one.
 */
export class FileLedgerStore implements LedgerStore {
  constructor(private readonly dir: string) {}

  async load(key: string): Promise<RdpAccountantState | undefined> {
    return this.read(key);
  }

  async update(
    key: string,
    change: (stored: RdpAccountantState | undefined) => RdpAccountantState | undefined,
  ): Promise<RdpAccountantState | undefined> {
    await mkdir(this.dir, { recursive: true });
    const lock = `${this.file(key)}.lock`;
    const handle = await acquire(lock);
    try {
      const stored = await this.read(key);
      const next = change(stored);
      if (next === undefined) return stored;
      const temporary = `${this.file(key)}.${process.pid}.tmp`;
      await writeFile(temporary, JSON.stringify(next));
      await rename(temporary, this.file(key));
      return JSON.parse(JSON.stringify(next)) as RdpAccountantState;
    } finally {
      await handle.close();
      await rm(lock, { force: true });
    }
  }

  /** Keys may hold '/' (namespaces such as client-level/…): each one maps to one flat, reversible file name. */
  private file(key: string): string {
    if (key.length === 0 || key.length > 200) throw new Error(`a ledger key must be 1-200 characters, got ${JSON.stringify(key)}`);
    return path.join(this.dir, `ledger-${encodeURIComponent(key).replaceAll('.', '%2E')}.json`);
  }

  private async read(key: string): Promise<RdpAccountantState | undefined> {
    let text: string;
    try {
      text = await readFile(this.file(key), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    try {
      return JSON.parse(text) as RdpAccountantState;
    } catch (error) {
      // A ledger that cannot be read must not read as "nothing spent".
      throw new Error(`the privacy ledger ${this.file(key)} is corrupt (${(error as Error).message}); it is never reset automatically`);
    }
  }
}

const LOCK_WAIT_MS = 10_000;

async function acquire(lock: string) {
  const start = Date.now();
  for (;;) {
    try {
      return await open(lock, 'wx');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (Date.now() - start > LOCK_WAIT_MS)
        throw new Error(
          `the privacy ledger is locked by ${lock} for over ${LOCK_WAIT_MS / 1000} s; if no participant is running, delete that file`,
        );
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
