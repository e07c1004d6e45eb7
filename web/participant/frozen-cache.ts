import type { FrozenWeightsStore } from '../../core/model/fine-tune-weights.ts';
import { done, openDb } from './idb.ts';

/**
 * A fine-tuning task's frozen weights, kept in this browser by content hash
 * (IndexedDB, which dedicated workers have and plain-http pages too, unlike
 * Cache Storage), so a returning tab does not download them again. The
 * participant checks what it loads against the hash before using it.
 */
export class IndexedDbFrozenWeightsStore implements FrozenWeightsStore {
  private static readonly DB = 'fedbrowser-frozen-weights';
  private static readonly STORE = 'weights';
  private db: Promise<IDBDatabase> | undefined;

  async load(hash: string): Promise<Float32Array | undefined> {
    const db = await this.open();
    const value: unknown = await done(
      db.transaction(IndexedDbFrozenWeightsStore.STORE).objectStore(IndexedDbFrozenWeightsStore.STORE).get(hash),
    );
    return value instanceof ArrayBuffer && value.byteLength % 4 === 0 ? new Float32Array(value) : undefined;
  }

  async save(hash: string, values: Float32Array): Promise<void> {
    const db = await this.open();
    const transaction = db.transaction(IndexedDbFrozenWeightsStore.STORE, 'readwrite');
    await done(transaction.objectStore(IndexedDbFrozenWeightsStore.STORE).put(values.slice().buffer, hash));
  }

  private open(): Promise<IDBDatabase> {
    this.db ??= openDb(IndexedDbFrozenWeightsStore.DB, IndexedDbFrozenWeightsStore.STORE);
    return this.db;
  }
}
