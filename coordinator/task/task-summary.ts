import type { SampleDpConfig, TaskSummary } from '../../core/protocol/messages.ts';
import type { LoadedTask } from './load-task.ts';

/** What participants learn of a task when they join. */
export function taskSummary(task: Omit<LoadedTask, 'test' | 'audit'>, sampleDp: SampleDpConfig | undefined): TaskSummary {
  return {
    name: task.name,
    description: task.description,
    model: task.spec,
    weightShapes: task.weightShapes,
    paramCount: task.paramCount,
    input: task.input,
    classes: task.classes,
    demoData: task.demoData && { url: task.demoData.url, format: task.demoData.format },
    sampleDp,
    ...(task.fineTune ? { fineTune: task.fineTune.summary } : {}),
  };
}
