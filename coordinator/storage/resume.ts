import type { Strategy } from '../../core/aggregation/strategy.ts';
import type { TaskSummary, WeightShape } from '../../core/protocol/messages.ts';
import { bestRound } from '../rounds/best-round.ts';
import { weightsHash, type ResumePoint } from '../rounds/round-engine.ts';
import { bestModelInfo, type BestModelStore } from './best-model.ts';
import type { CheckpointStore } from './checkpoints.ts';
import { weightsFromFiles, type ModelFilesWriter } from './model-files.ts';

/** Where a restarted coordinator picks up, and the checks that keep a restart honest. */

/**
 * The newest valid checkpoint of this run, if any. Unusable checkpoints are
 * reported and skipped; one of another task or model is refused outright,
 * since training it on would mix two runs.
 */
export async function findResumePoint(
  checkpoints: CheckpointStore,
  task: TaskSummary,
  strategy: Strategy,
  lastStartedRound: number,
  log: (line: string) => void,
): Promise<ResumePoint | undefined> {
  const scan = await checkpoints.loadLatest();
  for (const bad of scan.rejected) console.error(`checkpoint ${bad.dir} is unusable and was skipped: ${bad.reason}`);
  const latest = scan.latest;
  if (!latest) {
    if (lastStartedRound > 0 && strategy.privacy) {
      // Models were released before, and what they spent is lost with the checkpoints: starting at ε = 0 would lie.
      throw new Error(
        `${checkpoints.runDir} ran ${lastStartedRound} rounds under differential privacy but holds no usable checkpoint, ` +
          'so the privacy already spent is unknown: restore a checkpoint, or use another --data-dir for a new run',
      );
    }
    if (scan.rejected.length > 0) console.error('no usable checkpoint: starting from the initial model');
    return undefined;
  }
  const { state } = latest;
  if (state.task !== task.name || state.paramCount !== task.paramCount) {
    throw new Error(
      `${checkpoints.runDir} holds a run of task ${state.task} with ${state.paramCount} parameters, not ${task.name} with ${task.paramCount}: ` +
        'use another --data-dir, or remove that folder to start over',
    );
  }
  const weights = weightsFromFiles(latest.model, task.weightShapes as WeightShape[]);
  if (state.strategy && strategy.loadState) {
    if (state.strategy.name !== strategy.name) {
      throw new Error(
        `${checkpoints.runDir} was run with strategy "${state.strategy.name}", now "${strategy.name}": use another --data-dir to change it`,
      );
    }
    strategy.loadState(state.strategy.state);
  }
  const unrecorded = lastStartedRound - state.round;
  if (unrecorded > 0 && strategy.chargeUnrecordedRounds) {
    // Rounds cut short by the crash may have released updates (distributed noise) or models: count them as spent.
    strategy.chargeUnrecordedRounds(unrecorded);
    log(`charged ${unrecorded} round(s) started after the last checkpoint to the privacy accountant`);
  }
  log(
    `resuming ${task.name} from the checkpoint of round ${state.round} (model version ${state.modelVersion}, ${state.history.length} rounds of history)`,
  );
  return { round: state.round, modelVersion: state.modelVersion, weights, history: state.history };
}

/**
 * best/ must hold the best round of the history. The one gap: a crash after
 * a new best round's checkpoint and before best/ was written; that round is
 * then the newest checkpoint, so its model is at hand to write it again.
 */
export async function repairBestModel(
  store: BestModelStore,
  resume: ResumePoint | undefined,
  serializer: ModelFilesWriter,
  log: (line: string) => void,
): Promise<void> {
  const best = bestRound(resume?.history ?? []);
  if (!resume || !best?.metrics || !best.modelHash) return;
  let stored: Awaited<ReturnType<BestModelStore['load']>>;
  try {
    stored = await store.load();
  } catch (error) {
    console.error(`best model: ${(error as Error).message}`);
  }
  if (stored?.info.modelHash === best.modelHash) return;
  if (resume.round === best.round && weightsHash(resume.weights) === best.modelHash) {
    await store.save(
      bestModelInfo({ ...best, modelHash: best.modelHash, metrics: best.metrics }),
      await serializer.toFiles(resume.weights),
    );
    log(`best model: rewrote ${store.dir} from the checkpoint of round ${best.round}`);
    return;
  }
  console.error(`best model: ${store.dir} does not hold round ${best.round}, the best of the history, and no checkpoint has its model`);
}

/**
 * Client-level ε lives in the checkpoints of --data-dir: a run that finds none
 * would start at ε = 0 whatever earlier runs of the task spent elsewhere. It
 * starts only when the operator acknowledges a fresh budget.
 */
export function checkFreshClientBudget(strategy: Strategy, runDir: string, acknowledged: boolean): void {
  if (strategy.privacy?.().level !== 'client' || acknowledged) return;
  throw new Error(
    `${runDir} holds no earlier client-level privacy spend for this task, so ε would start at 0. ` +
      'If no earlier run of this task used these participants, pass --fresh-privacy-budget; otherwise point --data-dir at the earlier run',
  );
}
