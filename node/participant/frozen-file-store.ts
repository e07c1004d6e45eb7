import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FrozenWeightsStore } from '../../core/model/fine-tune-weights.ts';

/**
 * A fine-tuning task's frozen weights in the Node participant's state folder
 * (frozen-<sha256>.f32, little-endian float32), so a restarted participant
 * does not download them again. Written to a temporary file and renamed;
 * the participant checks what it loads against the hash before using it.
 */
export class FileFrozenWeightsStore implements FrozenWeightsStore {
  constructor(private readonly dir: string) {}

  async load(hash: string): Promise<Float32Array | undefined> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.file(hash));
    } catch {
      return undefined;
    }
    if (bytes.byteLength % 4 !== 0) return undefined;
    const values = new Float32Array(bytes.byteLength / 4);
    new Uint8Array(values.buffer).set(bytes);
    return values;
  }

  async save(hash: string, values: Float32Array): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const temporary = `${this.file(hash)}.${process.pid}.tmp`;
    await writeFile(temporary, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    await rename(temporary, this.file(hash));
  }

  private file(hash: string): string {
    if (!/^[0-9a-f]{64}$/.test(hash)) throw new Error(`not a SHA-256 hash: ${hash}`);
    return path.join(this.dir, `frozen-${hash}.f32`);
  }
}
