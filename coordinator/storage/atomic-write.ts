import { open, rename, mkdir } from 'node:fs/promises';
import path from 'node:path';

/**
 * Writes a file so that readers see the old content or the new, never a
 * torn mix: write a temporary file beside it, fsync, rename over the target.
 */
export async function writeFileAtomic(file: string, data: Uint8Array | string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.${Date.now()}.tmp`;
  await writeSynced(temp, data);
  await rename(temp, file);
  // The rename itself is durable only once the folder is synced.
  await syncDir(path.dirname(file));
}

/** Writes `file` and fsyncs it before returning (no rename: the caller makes it visible). */
export async function writeSynced(file: string, data: Uint8Array | string): Promise<void> {
  const handle = await open(file, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Fsyncs a folder, so the names created, renamed or removed in it are durable. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
