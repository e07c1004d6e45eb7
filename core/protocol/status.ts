import type { PrivacyReport } from '../aggregation/strategy.ts';
import type { EvalMetrics, FitConfig, RoundOutcome } from './messages.ts';

/** The federation as `/api/status` and the dashboard see it. */

export type RoundPhase = 'waiting' | 'training' | 'aggregating' | 'evaluating' | 'done';

/** 'declined': sat out the open round; 'retired': declines every round (its privacy budget is spent). */
export type ParticipantState = 'idle' | 'selected' | 'training' | 'uploaded' | 'dropped' | 'declined' | 'retired';

export interface ParticipantStatus {
  readonly id: string;
  readonly connected: boolean;
  readonly backend: string;
  readonly adapter?: string;
  readonly platform?: string;
  readonly numExamples: number;
  readonly state: ParticipantState;
  readonly roundsContributed: number;
  /** Fraction of the current round's local training done, when training. */
  readonly progress?: number;
  /** Time from round start to this participant's update in its last round, ms. */
  readonly lastLatencyMs?: number;
  /** With DP-SGD: ε its data has spent, as it last reported. */
  readonly epsilon?: number;
  /** Why it declined its last round, if it did. */
  readonly declined?: string;
}

export interface RoundRecord {
  readonly round: number;
  readonly outcome: RoundOutcome;
  readonly reason?: string;
  readonly modelVersion: number;
  readonly metrics?: EvalMetrics;
  readonly selected: number;
  readonly received: number;
  readonly dropped: number;
  readonly rejected: number;
  /** Selected participants that declined the round (e.g. a spent privacy budget). */
  readonly declined: number;
  /** Bytes of update frames received and of model frames sent for this round. */
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly startedAt: number;
  readonly durationMs: number;
  /** Privacy spent up to and including this round, when the strategy accounts for it. */
  readonly privacy?: PrivacyReport;
  /** Rounds with secure aggregation: who got through each step. */
  readonly secagg?: SecAggRoundStats;
}

export interface SecAggRoundStats {
  /** n, k and t of the round. */
  readonly participants: number;
  readonly neighbours: number | 'all';
  readonly threshold: number;
  /** Participants through each step: keys advertised (U1), shares sent (U2), masked input sent (U3), unmasking answered. */
  readonly advertised: number;
  readonly shared: number;
  readonly masked: number;
  readonly unmasked: number;
  /** Shared keys but sent no masked input: their pairwise masks were removed with the survivors' shares. */
  readonly dropoutsRecovered: number;
  /** Participants excluded for a refused secagg message. */
  readonly excluded: number;
  /** Set when the round aborted: why, and at which step. Nothing was revealed. */
  readonly aborted?: string;
}

/** `--secure-aggregation`: the coordinator only learns the sum of the updates. */
export interface SecureAggregationSettings {
  /** k: neighbours per participant (SecAgg+), or 'all' (SecAgg). */
  readonly neighbours: number | 'all';
  /** t; absent: recommendedThreshold(n, k) for each round's n (raised to it when lower, capped at k + 1). */
  readonly threshold?: number;
  /** c: every coordinate of an update is clipped to [-c, c] before quantisation. */
  readonly clipRange: number;
  /** R: the quantisation range (even); Δ = 2c/R. */
  readonly quantizationRange: number;
  /** Deadline of each key-exchange and unmasking step, ms. The masked-input step, which includes training, gets roundTimeoutMs. */
  readonly stepTimeoutMs: number;
}

export interface RoundSettings {
  readonly rounds: number;
  readonly minClients: number;
  readonly clientsPerRound: number;
  readonly minUpdates: number;
  readonly roundTimeoutMs: number;
  /** Select this fraction more participants than clientsPerRound, so dropouts still leave enough updates. */
  readonly overSelect?: number;
  /** Shorten the deadline to 3x the recent 90th-percentile latency (never below 5 s, never above roundTimeoutMs). */
  readonly adaptiveDeadline?: boolean;
  readonly targetAccuracy?: number;
  readonly fit: FitConfig;
  /** Present when rounds use secure aggregation. */
  readonly secureAggregation?: SecureAggregationSettings;
}

export interface FederationStatus {
  readonly task: { readonly name: string; readonly architecture: string; readonly paramCount: number };
  readonly strategy: string;
  readonly settings: RoundSettings;
  readonly round: number;
  readonly phase: RoundPhase;
  readonly modelVersion: number;
  readonly done: boolean;
  readonly doneReason?: string;
  /** Why the federation is not training right now, e.g. waiting for participants. */
  readonly waitingFor?: string;
  readonly participants: readonly ParticipantStatus[];
  readonly history: readonly RoundRecord[];
  /** Privacy spent so far, when the strategy accounts for it. */
  readonly privacy?: PrivacyReport;
  /** Rejected requests by error code, since start. */
  readonly rejections: Readonly<Record<string, number>>;
  readonly startedAt: number;
}

/** Events of the `/admin` namespace (the dashboard). */
export interface AdminServerToClientEvents {
  status: (status: FederationStatus) => void;
}

export type AdminClientToServerEvents = Record<string, never>;
