import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';

/**
 * Checkpoint encryption at rest: AES-256-GCM, a fresh 12-byte nonce per
 * file. Stored layout: "FLE1" | nonce (12) | tag (16) | ciphertext. The file
 * name is bound in as associated data, so files cannot be swapped unnoticed.
 */
const MAGIC = Buffer.from('FLE1');

export class AtRestKey {
  private constructor(private readonly key: Buffer) {}

  /** Reads a key file: 64 hex characters, or base64 of 32 bytes, or exactly 32 raw bytes. */
  static async fromFile(file: string): Promise<AtRestKey> {
    let raw: Buffer;
    try {
      raw = await readFile(file);
    } catch (error) {
      throw new Error(`cannot read the checkpoint key file ${file}: ${(error as Error).message}`);
    }
    const text = raw.toString('utf8').trim();
    let key: Buffer | undefined;
    if (/^[0-9a-fA-F]{64}$/.test(text)) key = Buffer.from(text, 'hex');
    else if (/^[A-Za-z0-9+/]{43}=$/.test(text)) key = Buffer.from(text, 'base64');
    else if (raw.length === 32) key = raw;
    if (key?.length !== 32) {
      throw new Error(
        `the checkpoint key file ${file} must hold a 256-bit key: 64 hex characters (e.g. \`openssl rand -hex 32\`), base64 of 32 bytes, or 32 raw bytes`,
      );
    }
    return new AtRestKey(key);
  }

  encrypt(name: string, plain: Uint8Array): Uint8Array {
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce);
    cipher.setAAD(Buffer.from(name));
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    return Buffer.concat([MAGIC, nonce, cipher.getAuthTag(), body]);
  }

  decrypt(name: string, stored: Uint8Array): Uint8Array {
    const data = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
    if (data.length < 32 || !data.subarray(0, 4).equals(MAGIC)) throw new Error(`${name} is not an encrypted checkpoint file`);
    const decipher = createDecipheriv('aes-256-gcm', this.key, data.subarray(4, 16));
    decipher.setAAD(Buffer.from(name));
    decipher.setAuthTag(data.subarray(16, 32));
    try {
      return Buffer.concat([decipher.update(data.subarray(32)), decipher.final()]);
    } catch {
      throw new Error(`${name} fails authentication: wrong key, or the file was altered`);
    }
  }
}
