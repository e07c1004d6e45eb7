import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { EvalMetrics } from '../../core/protocol/messages.ts';
import { writeFileAtomic } from './atomic-write.ts';
import type { AtRestKey } from './encryption.ts';
import type { ModelArtifactsFiles } from './model-files.ts';

/**
 * The best model of a run by held-out metrics, in `<run>/best/`:
 *
 *   best/model.json   tfjs layers format (encrypted like checkpoints when they are)
 *   best/weights.bin
 *   best/best.json    round, model version, SHA-256 of weights.bin's plain bytes, metrics
 *
 * Each file is written atomically (temporary file, fsync, rename, folder
 * fsync) and best.json last: a best.json whose hash does not match
 * weights.bin marks a write cut short, which `load` reports. It is written
 * in the same save as the round's checkpoint, after it, so a crash between
 * the two leaves the best round as the newest checkpoint, from which the
 * restart rewrites it.
 */
export interface BestModelInfo {
  readonly version: 1;
  readonly round: number;
  readonly modelVersion: number;
  readonly modelHash: string;
  readonly metrics: EvalMetrics;
  readonly savedAt: number;
}

/** What best.json records for the best round `best` (status.ts BestModelSummary), saved now. */
export function bestModelInfo(best: {
  readonly round: number;
  readonly modelVersion: number;
  readonly modelHash: string;
  readonly metrics: EvalMetrics;
}): BestModelInfo {
  return {
    version: 1,
    round: best.round,
    modelVersion: best.modelVersion,
    modelHash: best.modelHash,
    metrics: best.metrics,
    savedAt: Date.now(),
  };
}

export interface StoredBestModel {
  readonly info: BestModelInfo;
  readonly files: ModelArtifactsFiles;
}

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

export class BestModelStore {
  readonly dir: string;

  constructor(
    runDir: string,
    private readonly key?: AtRestKey,
  ) {
    this.dir = path.join(runDir, 'best');
  }

  async save(info: BestModelInfo, files: ModelArtifactsFiles): Promise<void> {
    if (sha256(files.weightsBin) !== info.modelHash)
      throw new Error(`best model of round ${info.round}: weights.bin does not match the round's model hash`);
    await this.write('weights.bin', files.weightsBin);
    await this.write('model.json', Buffer.from(files.modelJson));
    await this.write('best.json', Buffer.from(JSON.stringify(info, null, 2)));
  }

  /** The stored best model, checked against its best.json; undefined when there is none. Throws when it is torn or corrupt. */
  async load(): Promise<StoredBestModel | undefined> {
    let infoBytes: Uint8Array;
    try {
      infoBytes = await readFile(path.join(this.dir, 'best.json'));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    const info = JSON.parse(Buffer.from(this.open('best.json', infoBytes)).toString('utf8')) as BestModelInfo;
    const weightsBin = this.open('weights.bin', await readFile(path.join(this.dir, 'weights.bin')));
    if (sha256(weightsBin) !== info.modelHash)
      throw new Error(`${this.dir}/weights.bin does not match best.json (round ${info.round}): a write was cut short`);
    const modelJson = Buffer.from(this.open('model.json', await readFile(path.join(this.dir, 'model.json')))).toString('utf8');
    return { info, files: { modelJson, weightsBin } };
  }

  private write(name: string, plain: Uint8Array): Promise<void> {
    return writeFileAtomic(path.join(this.dir, name), this.key ? this.key.encrypt(`best/${name}`, plain) : plain);
  }

  private open(name: string, stored: Uint8Array): Uint8Array {
    return this.key ? this.key.decrypt(`best/${name}`, stored) : stored;
  }
}
