import path from 'node:path';
import type { Strategy } from '../../core/aggregation/strategy.ts';
import type { TaskSummary } from '../../core/protocol/messages.ts';
import { bestRound } from '../rounds/best-round.ts';
import { saveWithRetry, storageFailureText } from '../rounds/durable-commit.ts';
import type { RoundCompletedListener, RoundEngine } from '../rounds/round-engine.ts';
import type { RunReports } from '../report/reports.ts';
import type { RunReport } from '../report/run-report.ts';
import { writeFileAtomic } from './atomic-write.ts';
import { bestModelInfo, type BestModelStore } from './best-model.ts';
import type { CheckpointStore } from './checkpoints.ts';
import type { ModelFilesWriter } from './model-files.ts';

/** What a run writes to <data-dir>/<task>/ as its rounds close. */
export interface RunFiles {
  readonly runDir: string;
  readonly task: TaskSummary;
  readonly strategy: Strategy;
  readonly serializer: ModelFilesWriter;
  readonly checkpoints: CheckpointStore;
  readonly bestModels: BestModelStore;
  /** Checkpoints are encrypted at rest: no plain model, history or report files. */
  readonly encrypted: boolean;
}

/**
 * The engine's onRoundCompleted: the checkpoint, then the plain model and
 * history files, then best/ when this round is the best so far.
 */
export function saveCompletedRounds(files: RunFiles): RoundCompletedListener {
  const { runDir, task, strategy, serializer, checkpoints, bestModels } = files;
  return async (record, model, history) => {
    const modelFiles = await serializer.toFiles(model.weights);
    await checkpoints.save({
      state: {
        version: 1,
        task: task.name,
        paramCount: task.paramCount,
        round: record.round,
        modelVersion: model.version,
        history,
        strategy: strategy.saveState ? { name: strategy.name, state: strategy.saveState() } : undefined,
        savedAt: Date.now(),
      },
      model: modelFiles,
    });
    // The latest model, in plain tfjs files where people look for it (not when checkpoints are encrypted).
    if (!files.encrypted) {
      await writeFileAtomic(path.join(runDir, 'weights.bin'), modelFiles.weightsBin);
      await writeFileAtomic(path.join(runDir, 'model.json'), modelFiles.modelJson);
      await writeFileAtomic(path.join(runDir, 'history.json'), JSON.stringify(history, null, 2));
    }
    // After the checkpoint: a crash in between leaves this round as the newest checkpoint, and the restart rewrites best/ from it.
    const best = bestRound(history);
    if (best?.round === record.round && best.metrics && best.modelHash) {
      await bestModels.save(bestModelInfo({ ...best, modelHash: best.modelHash, metrics: best.metrics }), modelFiles);
    }
  };
}

/**
 * Once the federation is done: report.json and report.html, retried like a
 * round's files; a failure that outlasts the retries shows in the status.
 * Like history.json, not in plain files when checkpoints are encrypted.
 */
export async function writeFinalReport(
  engine: RoundEngine,
  reports: RunReports,
  files: Pick<RunFiles, 'runDir' | 'encrypted'>,
  logError: (line: string) => void,
): Promise<RunReport | undefined> {
  await engine.done;
  if (files.encrypted) return undefined;
  let written: RunReport | undefined;
  const outcome = await saveWithRetry({
    what: 'the final run report (report.json, report.html)',
    save: async () => {
      written = await reports.writeFinal(files.runDir);
    },
    wait: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    now: () => Date.now(),
    onRetry: (failure, delayMs) => logError(`${storageFailureText(failure)}; trying again in ${delayMs} ms`),
  });
  if (!outcome.ok) {
    logError(storageFailureText(outcome.failure));
    engine.reportStorageFailure(outcome.failure);
  }
  return written;
}
