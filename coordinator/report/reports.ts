import path from 'node:path';
import type { DpFedAvgOptions } from '../../core/aggregation/dp-fedavg.ts';
import type { MembershipAuditResult } from '../../core/privacy/membership-audit.ts';
import type { TaskSummary } from '../../core/protocol/messages.ts';
import type { FederationStatus } from '../../core/protocol/status.ts';
import type { GlobalModel } from '../rounds/round-engine.ts';
import { writeFileAtomic } from '../storage/atomic-write.ts';
import type { StoredBestModel } from '../storage/best-model.ts';
import type { ModelArtifactsFiles, ModelFilesWriter } from '../storage/model-files.ts';
import { historyCsv } from './history-csv.ts';
import { renderReportHtml } from './report-html.ts';
import { AUDIT_INTERPRETATION, buildRunReport, withholdsParticipation, type ReportAudit, type RunReport } from './run-report.ts';

export interface RunReportsOptions {
  readonly engine: { status(): FederationStatus; readonly globalModel: GlobalModel };
  readonly task: TaskSummary;
  /** Writes a model's files (the model thread). */
  readonly modelFiles: ModelFilesWriter;
  readonly clientDp?: DpFedAvgOptions;
  /** The membership audit over held-out members and non-members; absent: the report says it is unavailable, and `auditUnavailable` why. */
  readonly audit?: ReportAuditor;
  readonly auditUnavailable?: string;
  /** The best model as saved in <run>/best/ (undefined before any round was evaluated). */
  readonly bestModel?: () => Promise<StoredBestModel | undefined>;
}

/** Audits a model's weights (the model thread, report/audit.ts), and says where its two groups come from. */
export interface ReportAuditor {
  readonly auditor: { audit(weights: Float32Array): Promise<MembershipAuditResult> };
  /** e.g. "a seeded sample of the demo training set". */
  readonly membersSource: string;
  readonly nonMembersSource: string;
}

/** A model version's files, tagged with the version so model.json and weights.bin can be matched up. */
export interface VersionedModelFiles {
  readonly version: number;
  readonly files: ModelArtifactsFiles;
}

/** Model versions whose files stay available (model.json and weights.bin are fetched one after the other). */
const KEPT_MODEL_VERSIONS = 3;

/**
 * What the operator downloads: the current global model as tfjs files, the
 * run report (with the membership audit, computed once per model version)
 * and the history as CSV. The model thread serializes and audits, each with a
 * model of its own, so neither races the checkpoint writer or the evaluator.
 */
export class RunReports {
  private readonly modelFilesByVersion = new Map<number, Promise<ModelArtifactsFiles>>();
  private auditCache: { version: number; audit: Promise<ReportAudit> } | undefined;

  constructor(private readonly options: RunReportsOptions) {}

  /** The current model's files, or those of `version` while it is one of the last few. */
  modelFiles(version?: number): Promise<VersionedModelFiles | undefined> {
    const model = this.options.engine.globalModel;
    const wanted = version ?? model.version;
    let files = this.modelFilesByVersion.get(wanted);
    if (!files) {
      if (wanted !== model.version) return Promise.resolve(undefined);
      const weights = model.weights;
      // Made once per version, whoever asks while they are being made (the model thread makes files one at a time).
      files = this.options.modelFiles.toFiles(weights);
      this.modelFilesByVersion.set(wanted, files);
      for (const old of this.modelFilesByVersion.keys()) {
        if (this.modelFilesByVersion.size <= KEPT_MODEL_VERSIONS) break;
        this.modelFilesByVersion.delete(old);
      }
    }
    return files.then((f) => ({ version: wanted, files: f }));
  }

  /** The best model's files, read from disk (what a restart would keep), only while it is the best the status shows. */
  async bestModelFiles(): Promise<VersionedModelFiles | undefined> {
    const shown = this.options.engine.status().best;
    const stored = shown && (await this.options.bestModel?.());
    if (!shown || !stored || stored.info.modelHash !== shown.modelHash) return undefined;
    return { version: stored.info.modelVersion, files: stored.files };
  }

  async report(now = new Date()): Promise<RunReport> {
    const status = this.options.engine.status();
    const audit = await this.auditFor(this.options.engine.globalModel);
    return buildRunReport({ status, task: this.options.task, clientDp: this.options.clientDp, audit, now });
  }

  html(report: RunReport): string {
    return renderReportHtml(report);
  }

  csv(): string {
    const status = this.options.engine.status();
    return historyCsv(status.history, { withholdParticipation: withholdsParticipation(status, this.options.clientDp) });
  }

  /** Writes report.json and report.html into `dir` (the run's folder). */
  async writeFinal(dir: string): Promise<RunReport> {
    const report = await this.report();
    await writeFileAtomic(path.join(dir, 'report.json'), JSON.stringify(report, null, 2));
    await writeFileAtomic(path.join(dir, 'report.html'), renderReportHtml(report));
    return report;
  }

  private auditFor(model: GlobalModel): Promise<ReportAudit> {
    if (this.auditCache?.version === model.version) return this.auditCache.audit;
    const audit = this.runAudit(model);
    this.auditCache = { version: model.version, audit };
    return audit;
  }

  private async runAudit(model: GlobalModel): Promise<ReportAudit> {
    const audit = this.options.audit;
    if (!audit)
      return { available: false, reason: this.options.auditUnavailable ?? 'the task provides no held-out member and non-member examples' };
    if (model.version === 0)
      return { available: false, reason: 'no round has been aggregated yet: the model has not been trained on any member' };
    const started = performance.now();
    try {
      const result = await audit.auditor.audit(model.weights);
      return {
        available: true,
        attack: 'loss-threshold',
        modelVersion: model.version,
        membersSource: audit.membersSource,
        nonMembersSource: audit.nonMembersSource,
        interpretation: AUDIT_INTERPRETATION,
        durationMs: performance.now() - started,
        ...result,
      };
    } catch (error) {
      this.auditCache = undefined;
      return { available: false, reason: `the audit failed: ${(error as Error).message}` };
    }
  }
}
