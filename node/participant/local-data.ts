import type { Stats } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { CsvError, parseCsv } from '../../core/data/csv.ts';
import { decodeDataset, shardIndices, subset, type Dataset, type ShardSpec } from '../../core/data/dataset.ts';
import { prepareTable, skippedRowsNotes, suggestRoles, TabularSchemaError } from '../../core/data/tabular.ts';
import type { TaskSummary } from '../../core/protocol/messages.ts';
import { checkDataFitsModel } from '../../core/training/data-tensors.ts';
import { imageSourceAt, readImageSource } from '../data/image-sources.ts';

/**
 * The examples a Node participant trains on, prepared exactly as the
 * participant page prepares them: a CSV with the column roles the task's
 * schema suggests (numbers standardised with this file's own statistics,
 * categories one-hot), or images (a class folder, an IDX pair, a pixel CSV)
 * resized to the task's shape. Or its shard of the task's public demo data.
 */

export class DataMismatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataMismatchError';
  }
}

export interface LocalData {
  readonly dataset: Dataset;
  /** e.g. "site-1.csv, 112 examples" */
  readonly description: string;
  readonly notes: readonly string[];
}

export async function prepareLocalData(file: string, task: TaskSummary): Promise<LocalData> {
  const result = task.input.kind === 'image' ? await prepareImages(file, task) : await prepareCsv(file, task);
  try {
    checkDataFitsModel(task.model, result.dataset);
  } catch (error) {
    throw new DataMismatchError(`${file}: ${(error as Error).message}`);
  }
  return result;
}

async function prepareImages(file: string, task: TaskSummary): Promise<LocalData> {
  if (task.input.kind !== 'image') throw new Error('not an image task');
  try {
    const source = await imageSourceAt(file);
    const read = await readImageSource(source, task.input, task.classes);
    return {
      dataset: read.dataset,
      description: `${file} (${source.kind === 'idx' ? 'IDX pair' : source.kind === 'folder' ? 'image folder' : 'pixel CSV'})`,
      notes: read.notes,
    };
  } catch (error) {
    throw new DataMismatchError(
      `the data does not fit the task "${task.name}" (${task.input.shape.join('x')} images of ${task.classes.join(', ')}): ${(error as Error).message}`,
    );
  }
}

async function prepareCsv(file: string, task: TaskSummary): Promise<LocalData> {
  if (task.input.kind !== 'tabular') throw new Error('not a tabular task');
  let info: Stats;
  try {
    info = await stat(file);
  } catch (error) {
    throw new DataMismatchError(`cannot read the data ${file}: ${(error as Error).message}`);
  }
  if (info.isDirectory())
    throw new DataMismatchError(`${file} is a folder; the task "${task.name}" reads a CSV file (label column ${task.input.labelColumn})`);
  const text = new TextDecoder('utf-8').decode(await readFile(file));
  try {
    const table = parseCsv(text);
    const prepared = prepareTable(table, suggestRoles(table, task.input), task.input, task.classes);
    if (prepared.dataset.count === 0) throw new DataMismatchError(`${file}: no usable rows`);
    const notes = skippedRowsNotes(file, prepared.skipped);
    return { dataset: prepared.dataset, description: file, notes };
  } catch (error) {
    if (error instanceof CsvError || error instanceof TabularSchemaError)
      throw new DataMismatchError(`${file} does not fit the task "${task.name}": ${error.message}`);
    throw error;
  }
}

/** This participant's shard of the task's public demo data (an encoded dataset), as a tab with ?shard=K/N takes it. */
export async function demoShard(url: string, task: TaskSummary, shard: ShardSpec): Promise<LocalData> {
  if (!task.demoData) throw new DataMismatchError(`the task "${task.name}" has no demo data: pass --data with your own data`);
  if (task.demoData.format !== 'dataset')
    throw new DataMismatchError(`the task "${task.name}" serves its demo data as ${task.demoData.format}; pass --data with a file instead`);
  const response = await fetch(new URL(task.demoData.url, url));
  if (!response.ok) throw new Error(`GET ${task.demoData.url}: HTTP ${response.status}`);
  const all = decodeDataset(new Uint8Array(await response.arrayBuffer()));
  return {
    dataset: subset(all, shardIndices(all.labels, shard)),
    description: `demo shard ${shard.index + 1}/${shard.count}${shard.skew === 'label' ? ' (label-skewed)' : ''}`,
    notes: [],
  };
}
