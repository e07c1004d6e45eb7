import type { DpFedAvgOptions } from '../../core/aggregation/dp-fedavg.ts';
import type { PrivacyReport } from '../../core/aggregation/strategy.ts';
import type { MembershipAuditResult } from '../../core/privacy/membership-audit.ts';
import type { EvalMetrics, SampleDpConfig, TaskSummary } from '../../core/protocol/messages.ts';
import type { FederationControl, FederationStatus, RoundRecord, RoundSettings } from '../../core/protocol/status.ts';

/**
 * The run report: what was trained, how, how well, what privacy it cost,
 * and how much a membership-inference attack learns from the model. Plain
 * JSON (`/api/report.json`, runs/<task>/report.json); report-html.ts renders
 * the same object as a self-contained page.
 */

export const REPORT_FORMAT = 'fedbrowser-run-report';

/** A round as the report gives it: RoundRecord's own fields, with its metrics and ε flattened. */
export type ReportRound = Pick<
  RoundRecord,
  'round' | 'outcome' | 'reason' | 'selected' | 'received' | 'dropped' | 'rejected' | 'declined' | 'bytesIn' | 'bytesOut' | 'durationMs'
> & {
  /** RoundRecord.metrics, where the round was evaluated. */
  readonly accuracy?: number;
  readonly loss?: number;
  /** ε spent up to and including the round (RoundRecord.privacy.epsilon). */
  readonly epsilon?: number;
};

/** What the federation's privacy is, in the terms it can honestly be stated in. */
export type ReportPrivacy =
  | { readonly kind: 'none'; readonly statement: string }
  | {
      readonly kind: 'client-level';
      readonly statement: string;
      readonly spent: PrivacyReport;
      readonly options: Omit<DpFedAvgOptions, 'uniform' | 'selectionUniform'>;
    }
  | {
      readonly kind: 'sample-level';
      readonly statement: string;
      readonly config: SampleDpConfig;
      /** The largest ε a participant reported with its updates (each participant accounts its own data). */
      readonly maxReportedEpsilon?: number;
    };

export type ReportAudit =
  | ({
      readonly available: true;
      readonly attack: 'loss-threshold';
      /** The model the attack ran on. */
      readonly modelVersion: number;
      readonly membersSource: string;
      readonly nonMembersSource: string;
      readonly interpretation: string;
      readonly durationMs: number;
    } & MembershipAuditResult)
  | { readonly available: false; readonly reason: string };

export interface RunReport {
  readonly format: typeof REPORT_FORMAT;
  readonly version: 1;
  readonly generatedAt: string;
  /** True once the federation has finished: nothing in the report will change. */
  readonly final: boolean;
  readonly task: {
    readonly name: string;
    readonly description: string;
    readonly architecture: string;
    readonly paramCount: number;
    readonly classes: number;
  };
  readonly config: { readonly strategy: string; readonly settings: RoundSettings };
  readonly outcome: {
    readonly control: FederationControl;
    readonly done: boolean;
    readonly doneReason?: string;
    readonly rounds: number;
    readonly aggregated: number;
    readonly skipped: number;
    readonly modelVersion: number;
    readonly finalMetrics?: EvalMetrics;
    readonly best?: { readonly round: number; readonly accuracy: number };
    readonly participantsSeen: number;
    readonly startedAt: string;
  };
  readonly rounds: readonly ReportRound[];
  readonly privacy: ReportPrivacy;
  readonly audit: ReportAudit;
}

export interface ReportInput {
  readonly status: FederationStatus;
  readonly task: TaskSummary;
  readonly clientDp?: DpFedAvgOptions;
  readonly audit: ReportAudit;
  readonly now: Date;
}

export const AUDIT_INTERPRETATION =
  'ROC AUC of the loss-threshold attack (guess "member" when the loss is low): 0.5 means it cannot tell members from non-members, 1 that it always can. ' +
  'A value near 0.5 shows that this attack learns little; it does not prove privacy: stronger attacks may do better, and only differential privacy bounds every attack.';

export function buildRunReport({ status, task, clientDp, audit, now }: ReportInput): RunReport {
  const history = status.history;
  const aggregated = history.filter((r) => r.outcome === 'aggregated');
  let best: { round: number; accuracy: number } | undefined;
  for (const r of aggregated) {
    if (r.metrics && (best === undefined || r.metrics.accuracy > best.accuracy)) best = { round: r.round, accuracy: r.metrics.accuracy };
  }
  return {
    format: REPORT_FORMAT,
    version: 1,
    generatedAt: now.toISOString(),
    final: status.done,
    task: { name: task.name, description: task.description, architecture: task.model.architecture, paramCount: task.paramCount, classes: task.classes.length },
    config: { strategy: status.strategy, settings: status.settings },
    outcome: {
      control: status.control,
      done: status.done,
      doneReason: status.doneReason,
      rounds: history.length,
      aggregated: aggregated.length,
      skipped: history.length - aggregated.length,
      modelVersion: status.modelVersion,
      finalMetrics: aggregated.at(-1)?.metrics,
      best,
      participantsSeen: status.participants.length,
      startedAt: new Date(status.startedAt).toISOString(),
    },
    rounds: history.map(reportRound),
    privacy: reportPrivacy(status, clientDp),
    audit,
  };
}

function reportRound(r: RoundRecord): ReportRound {
  return {
    round: r.round,
    outcome: r.outcome,
    ...(r.reason !== undefined ? { reason: r.reason } : {}),
    ...(r.metrics ? { accuracy: r.metrics.accuracy, loss: r.metrics.loss } : {}),
    selected: r.selected,
    received: r.received,
    dropped: r.dropped,
    rejected: r.rejected,
    declined: r.declined,
    bytesIn: r.bytesIn,
    bytesOut: r.bytesOut,
    durationMs: r.durationMs,
    ...(r.privacy ? { epsilon: r.privacy.epsilon } : {}),
  };
}

function reportPrivacy(status: FederationStatus, clientDp: DpFedAvgOptions | undefined): ReportPrivacy {
  const spent = status.privacy;
  if (spent && clientDp) {
    const { uniform: _u, selectionUniform: _s, ...options } = clientDp;
    return {
      kind: 'client-level',
      statement:
        `Client-level DP-FedAvg (${spent.placement} noise): each participant's whole dataset is protected with (ε = ${round(spent.epsilon)}, δ = ${spent.delta}) ` +
        `after ${spent.rounds} rounds (noise multiplier ${spent.noiseMultiplier}, sampling rate ${spent.sampleRate}, RDP accountant, ${spent.conversion} conversion).`,
      spent,
      options,
    };
  }
  const sampleDp = status.settings.fit.sampleDp;
  if (sampleDp) {
    const reported = status.participants.flatMap((p) => (p.epsilon === undefined ? [] : [p.epsilon]));
    const max = reported.length > 0 ? Math.max(...reported) : undefined;
    return {
      kind: 'sample-level',
      statement:
        `Sample-level DP-SGD in every participant (clip ${sampleDp.clipNorm}, noise multiplier ${sampleDp.noiseMultiplier}, expected batch ${sampleDp.expectedBatchSize}, δ = ${sampleDp.delta}): ` +
        'each participant accounts the ε of its own data; ' +
        (max === undefined ? 'none has reported one yet.' : `the largest any reported is ε = ${round(max)}.`),
      config: sampleDp,
      ...(max !== undefined ? { maxReportedEpsilon: max } : {}),
    };
  }
  return { kind: 'none', statement: 'No differential privacy: the model and the updates carry no formal privacy guarantee.' };
}

function round(x: number): string {
  return x.toPrecision(4);
}
