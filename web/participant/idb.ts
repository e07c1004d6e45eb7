/** The IndexedDB plumbing the page's stores share (IndexedDB, unlike localStorage, exists in dedicated workers). */

/** Opens `dbName` (version 1) with one object store `store`, created on first use. */
export function openDb(dbName: string, store: string): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(dbName, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(store);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(new Error(`cannot open IndexedDB: ${request.error?.message ?? 'unknown error'}`));
  });
}

/** A request's result, or its error. */
export function done<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error('IndexedDB request failed'));
  });
}
