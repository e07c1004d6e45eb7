import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { RoundRecord } from '../../core/protocol/status.ts';
import { syncDir, writeFileAtomic, writeSynced } from './atomic-write.ts';
import type { AtRestKey } from './encryption.ts';
import type { ModelArtifactsFiles } from './model-files.ts';

/**
 * Checkpoints of a run, one folder per closed round:
 *
 *   <run>/checkpoints/000012/model.json     tfjs layers format (plain unless encrypted)
 *   <run>/checkpoints/000012/weights.bin
 *   <run>/checkpoints/000012/state.json     round, model version, history, strategy state
 *   <run>/checkpoints/000012/manifest.json  SHA-256 and size of each file above
 *
 * A checkpoint is written into a temporary folder (each file fsynced), the
 * folder is renamed into place (atomic), and the parent folder fsynced. The
 * manifest is written last inside the folder, so a folder without a valid
 * manifest, or with a file whose hash does not match, is torn or corrupt:
 * it is reported and the previous checkpoint is used.
 *
 * `<run>/started.json` records the last round that was started, so a round
 * interrupted by a crash is never numbered again.
 */

export interface CheckpointState {
  readonly version: 1;
  readonly task: string;
  readonly paramCount: number;
  readonly round: number;
  readonly modelVersion: number;
  readonly history: readonly RoundRecord[];
  /** The strategy's own state (server optimizer moments, privacy accountant, clip norm). */
  readonly strategy?: { readonly name: string; readonly state: unknown };
  readonly savedAt: number;
}

export interface Checkpoint {
  readonly state: CheckpointState;
  readonly model: ModelArtifactsFiles;
}

export interface LoadedCheckpoint extends Checkpoint {
  readonly dir: string;
}

export interface CheckpointScan {
  readonly latest?: LoadedCheckpoint;
  /** Checkpoints that were found unusable, newest first, with why. */
  readonly rejected: readonly { readonly dir: string; readonly reason: string }[];
}

const FILES = ['model.json', 'weights.bin', 'state.json'] as const;
const KEEP = 3;

interface Manifest {
  readonly version: 1;
  readonly round: number;
  readonly encrypted: boolean;
  readonly files: Record<string, { readonly sha256: string; readonly bytes: number }>;
}

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
const folderName = (round: number) => String(round).padStart(6, '0');

export class CheckpointStore {
  readonly dir: string;

  constructor(
    readonly runDir: string,
    private readonly key?: AtRestKey,
    /** Fault injection for the crash test: SIGKILL this process in the middle of its first checkpoint write. */
    private readonly killDuringWrite = false,
  ) {
    this.dir = path.join(runDir, 'checkpoints');
  }

  async save(checkpoint: Checkpoint): Promise<string> {
    await mkdir(this.dir, { recursive: true });
    const final = path.join(this.dir, folderName(checkpoint.state.round));
    const temp = path.join(this.dir, `.tmp-${folderName(checkpoint.state.round)}-${process.pid}-${Date.now()}`);
    await mkdir(temp);
    const contents: Record<(typeof FILES)[number], Uint8Array> = {
      'model.json': Buffer.from(checkpoint.model.modelJson),
      'weights.bin': checkpoint.model.weightsBin,
      'state.json': Buffer.from(JSON.stringify(checkpoint.state)),
    };
    const manifest: Manifest = { version: 1, round: checkpoint.state.round, encrypted: this.key !== undefined, files: {} };
    for (const name of FILES) {
      const stored = this.key ? this.key.encrypt(name, contents[name]) : contents[name];
      await writeSynced(path.join(temp, name), stored);
      (manifest.files as Record<string, { sha256: string; bytes: number }>)[name] = { sha256: sha256(stored), bytes: stored.byteLength };
    }
    if (this.killDuringWrite) process.kill(process.pid, 'SIGKILL');
    await writeSynced(path.join(temp, 'manifest.json'), Buffer.from(JSON.stringify(manifest)));
    await syncDir(temp);
    await rm(final, { recursive: true, force: true });
    await rename(temp, final);
    await syncDir(this.dir);
    await this.prune();
    return final;
  }

  /** The newest checkpoint that passes every check, and the ones that did not. */
  async loadLatest(): Promise<CheckpointScan> {
    const rejected: { dir: string; reason: string }[] = [];
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return { rejected };
    }
    const rounds = names
      .filter((n) => /^\d{6}$/.test(n))
      .sort()
      .reverse();
    for (const name of rounds) {
      const dir = path.join(this.dir, name);
      try {
        return { latest: { dir, ...(await this.read(dir, Number(name))) }, rejected };
      } catch (error) {
        rejected.push({ dir, reason: (error as Error).message });
      }
    }
    return { rejected };
  }

  private async read(dir: string, round: number): Promise<Checkpoint> {
    let manifest: Manifest;
    try {
      manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as Manifest;
    } catch (error) {
      throw new Error(`manifest.json is missing or unreadable (torn write?): ${(error as Error).message}`);
    }
    if (manifest.version !== 1 || manifest.round !== round)
      throw new Error(`manifest.json describes round ${manifest.round}, the folder is round ${round}`);
    if (manifest.encrypted && !this.key) throw new Error('the checkpoint is encrypted: pass --checkpoint-key-file');
    if (!manifest.encrypted && this.key) throw new Error('the checkpoint is not encrypted, but a key was given');
    const plain: Partial<Record<(typeof FILES)[number], Uint8Array>> = {};
    for (const name of FILES) {
      const expected = manifest.files[name];
      if (!expected) throw new Error(`manifest.json does not list ${name}`);
      const stored = await readFile(path.join(dir, name));
      if (stored.byteLength !== expected.bytes || sha256(stored) !== expected.sha256)
        throw new Error(`${name} does not match its checksum (corrupt)`);
      plain[name] = this.key ? this.key.decrypt(name, stored) : stored;
    }
    const state = JSON.parse(Buffer.from(plain['state.json']!).toString('utf8')) as CheckpointState;
    if (state.version !== 1 || state.round !== round)
      throw new Error(`state.json describes round ${state.round}, the folder is round ${round}`);
    return { state, model: { modelJson: Buffer.from(plain['model.json']!).toString('utf8'), weightsBin: plain['weights.bin']! } };
  }

  private async prune(): Promise<void> {
    const names = (await readdir(this.dir)).filter((n) => /^\d{6}$/.test(n)).sort();
    for (const name of names.slice(0, Math.max(0, names.length - KEEP)))
      await rm(path.join(this.dir, name), { recursive: true, force: true });
  }

  /** Records that `round` started, before any participant hears of it. */
  async markRoundStarted(round: number): Promise<void> {
    await writeFileAtomic(path.join(this.runDir, 'started.json'), JSON.stringify({ round }));
  }

  /** The last round recorded as started, or 0. */
  async lastStartedRound(): Promise<number> {
    try {
      const { round } = JSON.parse(await readFile(path.join(this.runDir, 'started.json'), 'utf8')) as { round?: unknown };
      return typeof round === 'number' && Number.isInteger(round) && round >= 0 ? round : 0;
    } catch {
      return 0;
    }
  }
}
