import type { RdpAccountantState } from '../../core/privacy/accountant.ts';
import type { LedgerStore } from '../../core/privacy/ledger.ts';
import { done, openDb } from './idb.ts';

/**
 * Privacy ledgers in IndexedDB (available in dedicated workers), so ε spent
 * by a dataset survives reloads and later sessions in this browser profile.
 */
const DB_NAME = 'federated-learning';
const STORE = 'privacy-ledgers';

export class IndexedDbLedgerStore implements LedgerStore {
  private db: Promise<IDBDatabase> | undefined;

  private database(): Promise<IDBDatabase> {
    this.db ??= openDb(DB_NAME, STORE);
    return this.db;
  }

  async load(key: string): Promise<RdpAccountantState | undefined> {
    const db = await this.database();
    const value: unknown = await done(db.transaction(STORE, 'readonly').objectStore(STORE).get(key));
    return value === undefined ? undefined : (value as RdpAccountantState);
  }

  // One readwrite transaction for the read and the write: IndexedDB runs overlapping readwrite
  // transactions on a store one after another, across tabs too, so no charge is lost.
  async update(
    key: string,
    change: (stored: RdpAccountantState | undefined) => RdpAccountantState | undefined,
  ): Promise<RdpAccountantState | undefined> {
    const db = await this.database();
    const tx = db.transaction(STORE, 'readwrite', { durability: 'strict' });
    const store = tx.objectStore(STORE);
    let result: RdpAccountantState | undefined;
    let failure: unknown;
    const read = store.get(key);
    read.onsuccess = () => {
      const stored = read.result as RdpAccountantState | undefined;
      try {
        const next = change(stored);
        result = next ?? stored;
        if (next !== undefined) store.put(next, key);
      } catch (error) {
        failure = error;
        tx.abort();
      }
    };
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error ?? new Error('IndexedDB write failed'));
      tx.onabort = () => reject(failure ?? tx.error ?? new Error('IndexedDB write aborted'));
    });
    return result;
  }
}
