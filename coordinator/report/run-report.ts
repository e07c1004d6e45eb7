import type { DpFedAvgOptions } from '../../core/aggregation/dp-fedavg.ts';
import { bestRound } from '../rounds/best-round.ts';
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

/** What a round says about who and how many took part: left out under client-level DP (see PARTICIPATION_WITHHELD). */
export const ROUND_PARTICIPATION_FIELDS = [
  'selected',
  'received',
  'dropped',
  'rejected',
  'declined',
  'bytesIn',
  'bytesOut',
  'encoding',
  'durationMs',
  'reason',
  // Async mode: its counts add up to the updates a version took.
  'staleness',
] as const;
export type ReportRoundParticipation = Pick<RoundRecord, (typeof ROUND_PARTICIPATION_FIELDS)[number]>;

/** A round as the report gives it: RoundRecord's own fields, with its metrics and ε flattened. */
export type ReportRound = Pick<RoundRecord, 'round' | 'outcome'> &
  Partial<ReportRoundParticipation> & {
    /** RoundRecord.metrics, where the round was evaluated. */
    readonly accuracy?: number;
    readonly loss?: number;
    /** ε spent up to and including the round (RoundRecord.privacy.epsilon). */
    readonly epsilon?: number;
  };

/**
 * Why the shareable report and history leave participation out under
 * client-level DP. The ε assumes that only the operator knows who and how
 * many took part (Poisson sampling amplifies privacy only then); a round's
 * counts, traffic (a fixed size per update and per model sent), duration (a
 * round nobody was selected for closes at once) and skip reason (it quotes
 * counts) would tell anyone the report is passed to.
 */
export const PARTICIPATION_WITHHELD =
  'Under client-level differential privacy this report leaves out, for each round, how many participants were selected, sent an update, dropped out, were rejected or declined, ' +
  'the bytes in and out, the duration, the reason and, in async mode, the staleness of the updates, and the number of participants seen: the privacy guarantee does not cover who or how many took part, so they stay with the operator.';

/** True when participation must stay out of the shareable report and history (client-level DP). */
export function withholdsParticipation(status: FederationStatus, clientDp: DpFedAvgOptions | undefined): boolean {
  return clientDp !== undefined || status.privacy?.level === 'client';
}

/** What the federation's privacy is, in the terms it can honestly be stated in. */
export type ReportPrivacy =
  | { readonly kind: 'none'; readonly statement: string }
  | {
      readonly kind: 'client-level';
      readonly statement: string;
      readonly spent: PrivacyReport;
      /** The DP-FedAvg configuration, where the caller passed it (the coordinator always does). */
      readonly options?: Omit<DpFedAvgOptions, 'uniform' | 'selectionUniform'>;
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
    /** The last aggregated round, whose model is the final one. */
    readonly finalRound?: number;
    /** The best round by test accuracy (then loss); its model is in <data-dir>/<task>/best/. */
    readonly best?: { readonly round: number; readonly accuracy: number; readonly loss: number; readonly modelVersion: number };
    /** Absent under client-level DP (participationWithheld). */
    readonly participantsSeen?: number;
    readonly startedAt: string;
  };
  readonly rounds: readonly ReportRound[];
  /** Present (PARTICIPATION_WITHHELD) when the rounds carry no participation, traffic, duration or reason. */
  readonly participationWithheld?: string;
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
  const withheld = withholdsParticipation(status, clientDp);
  const aggregated = history.filter((r) => r.outcome === 'aggregated');
  const bestRecord = bestRound(history);
  const best = bestRecord?.metrics && {
    round: bestRecord.round,
    accuracy: bestRecord.metrics.accuracy,
    loss: bestRecord.metrics.loss,
    modelVersion: bestRecord.modelVersion,
  };
  const last = aggregated.at(-1);
  return {
    format: REPORT_FORMAT,
    version: 1,
    generatedAt: now.toISOString(),
    final: status.done,
    task: {
      name: task.name,
      description: task.description,
      architecture: task.model.architecture,
      paramCount: task.paramCount,
      classes: task.classes.length,
    },
    config: { strategy: status.strategy, settings: status.settings },
    outcome: {
      control: status.control,
      done: status.done,
      doneReason: status.doneReason,
      rounds: history.length,
      aggregated: aggregated.length,
      skipped: history.length - aggregated.length,
      modelVersion: status.modelVersion,
      finalMetrics: last?.metrics,
      ...(last ? { finalRound: last.round } : {}),
      best,
      ...(withheld ? {} : { participantsSeen: status.participants.length }),
      startedAt: new Date(status.startedAt).toISOString(),
    },
    rounds: history.map((r) => reportRound(r, withheld)),
    ...(withheld ? { participationWithheld: PARTICIPATION_WITHHELD } : {}),
    privacy: reportPrivacy(status, clientDp),
    audit,
  };
}

function reportRound(r: RoundRecord, withheld: boolean): ReportRound {
  return {
    round: r.round,
    outcome: r.outcome,
    ...(r.metrics ? { accuracy: r.metrics.accuracy, loss: r.metrics.loss } : {}),
    // The list that defines what is withheld is the list copied, so the two cannot drift apart.
    ...(withheld ? {} : participation(r)),
    ...(r.privacy ? { epsilon: r.privacy.epsilon } : {}),
  };
}

function participation(r: RoundRecord): Partial<ReportRoundParticipation> {
  return Object.fromEntries(ROUND_PARTICIPATION_FIELDS.filter((field) => r[field] !== undefined).map((field) => [field, r[field]]));
}

/** Which accountant gave ε; under PLD also its lower bound and RDP's value for the same rounds. */
function accountantPhrase(spent: PrivacyReport): string {
  // Records saved before the accountant could be chosen carry no `accountant`: they are RDP.
  if (spent.accountant !== 'pld') return `RDP accountant, ${spent.conversion} conversion`;
  const lower = spent.pldEpsilonLower === undefined ? '' : `, true ε at least ${round(spent.pldEpsilonLower)}`;
  const rdp = spent.rdpEpsilon === undefined ? '' : `; RDP gives ${round(spent.rdpEpsilon)}`;
  return `PLD accountant${spent.accountantSetting === 'auto' ? ' (the tighter of PLD and RDP)' : ''}${lower}${rdp}`;
}

function reportPrivacy(status: FederationStatus, clientDp: DpFedAvgOptions | undefined): ReportPrivacy {
  const spent = status.privacy;
  // The accountant's report decides, not the options: a client-level run must never read as "no DP".
  if (spent?.level === 'client') {
    let options: Omit<DpFedAvgOptions, 'uniform' | 'selectionUniform'> | undefined;
    if (clientDp) {
      const { uniform: _u, selectionUniform: _s, ...rest } = clientDp;
      options = rest;
    }
    // The neighbour relation each placement's accounting holds for (docs/privacy-mechanisms.md).
    const guarantee =
      spent.placement === 'central' || spent.neighbouring === 'add-remove'
        ? `(ε = ${round(spent.epsilon)}, δ = ${spent.delta})-differentially private with respect to adding or removing one participant's whole dataset`
        : `(ε = ${round(spent.epsilon)}, δ = ${spent.delta})-differentially private with respect to replacing one participant's clipped update by zero (zero-out: whether it took part is not hidden)`;
    const accounting = `after ${spent.rounds} rounds (noise multiplier ${spent.noiseMultiplier} per round, sampling rate ${spent.sampleRate}, ${accountantPhrase(spent)})`;
    // Each sentence is what dp-fedavg.ts accounts for in that placement, and no more.
    const statement =
      spent.placement === 'central'
        ? `Client-level DP-FedAvg with central noise: the models released after each round, and what this report computes from them with the coordinator's own examples (test accuracy and loss, the membership audit), are ${guarantee}, ${accounting}. ` +
          'The coordinator is trusted: it saw each update, each example count and who took part, which this guarantee does not cover. ' +
          'The sampling amplification in this ε holds only while who and how many took part stay with the operator, so this report leaves them out.'
        : spent.neighbouring === 'add-remove'
          ? `Client-level DP-FedAvg with distributed Skellam noise in the secure sum: each participant clipped its update, quantised it and added integer Skellam noise, over-provisioned so that every released sum carries the accounted noise without any one participant's share. ` +
            `This ε is the sum's noise, without sampling amplification, and assumes the other participants added their shares: the models and what this report computes from them are ${guarantee}, ${accounting}; example counts are not covered.`
          : `Client-level DP-FedAvg with distributed noise: each participant clipped its update and added its share of the Gaussian noise before sending it. ` +
            `This ε counts only a participant's own noise in every round, without sampling amplification, so it holds whatever the others did and whoever saw the updates: ` +
            `a participant's noised updates, and the models and what this report computes from them, are ${guarantee}, ${accounting}; its example count is not covered.`;
    const masked = status.settings.secureAggregation ? ` ${SECURE_AGGREGATION}` : '';
    return {
      kind: 'client-level',
      statement: `${statement}${masked} ${FLOATING_POINT_NOISE}`,
      spent,
      ...(options ? { options } : {}),
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
        (max === undefined ? 'none has reported one yet.' : `the largest any reported is ε = ${round(max)}.`) +
        ` The task asks their ledgers for the ${sampleDp.accountant ?? 'auto'} accountant (auto: the smaller of the PLD and RDP bounds).` +
        (status.settings.secureAggregation ? ` ${SECURE_AGGREGATION}` : ''),
      config: sampleDp,
      ...(max !== undefined ? { maxReportedEpsilon: max } : {}),
    };
  }
  if (status.settings.secureAggregation) {
    return {
      kind: 'none',
      statement: `No differential privacy. ${SECURE_AGGREGATION} Still, neither that sum nor the model carries a formal privacy guarantee.`,
    };
  }
  return { kind: 'none', statement: 'No differential privacy: the model and the updates carry no formal privacy guarantee.' };
}

/**
 * What secure aggregation adds, under the trust assumption of docs/secure-aggregation.md (an
 * honest-but-curious coordinator: keys are not signed). It hides each
 * update's content, not who contributed, and is no DP guarantee.
 */
const SECURE_AGGREGATION =
  "The updates were masked with secure aggregation, so the coordinator saw only each round's sum of them, never one participant's update (it relays unsigned keys: this holds for a coordinator that follows the protocol).";

/** The honest limit (docs/privacy.md) on every DP guarantee here, stated where the guarantee is. */
const FLOATING_POINT_NOISE =
  'The noise is float-safe: the clipped values are snapped to an integer grid and integer noise (a rounded CSPRNG Gaussian) is added exactly, so no floating-point representation reveals the input.';

function round(x: number): string {
  return x.toPrecision(4);
}
