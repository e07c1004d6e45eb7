import type { AccountantKind } from '../privacy/epsilon.ts';
import type { Ack } from './errors.ts';
import type { EvalMetrics, FitConfig, ModelEncodingName, RoundOutcome, UpdateEncodingName } from './messages.ts';

/** The federation as `/api/status` and the dashboard see it. */

export type RoundPhase = 'waiting' | 'training' | 'aggregating' | 'evaluating' | 'done';

/** 'declined': sat out the open round; 'retired': declines every round (its privacy budget is spent). */
export type ParticipantState = 'idle' | 'selected' | 'training' | 'uploaded' | 'dropped' | 'declined' | 'retired';

export interface ParticipantStatus {
  readonly id: string;
  readonly connected: boolean;
  readonly backend: string;
  readonly adapter?: string;
  /** WASM threads in use, when the backend is WASM. */
  readonly threads?: number;
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
  /**
   * L2 norm of its last accepted update. Absent under client-level DP and
   * secure aggregation: there an individual norm is exactly what must not leak.
   */
  readonly lastUpdateNorm?: number;
  /** On a cluster (`--redis`): the id of the node it is connected to (ClusterStatus.nodes[].id); absent on a single coordinator. */
  readonly node?: string;
}

/** Counts behind a participant list that may be cut short. */
export interface ParticipantTotals {
  /** Records kept: connected, or left within the grace period. */
  readonly known: number;
  readonly connected: number;
  /** How many of them `participants` lists. */
  readonly listed: number;
  /** Contributors whose records were forgotten after they left (the round history still names them). */
  readonly departedContributors: number;
}

/** How one selected participant's part in a round ended. */
export type RoundParticipantOutcome = 'received' | 'dropped' | 'rejected' | 'declined';

export interface RoundParticipantRecord {
  readonly id: string;
  readonly outcome: RoundParticipantOutcome;
  /** From the round's start to the update, the drop-out, the rejection or the decline, ms. */
  readonly durationMs: number;
  /** Why it dropped, was rejected (the error code, with the message where norms may be shown) or declined. */
  readonly reason?: string;
  /** L2 norm of the accepted update; withheld under client-level DP and secure aggregation. */
  readonly updateNorm?: number;
}

/** The distribution of one round's accepted update norms (withheld where individual norms must stay hidden). */
export interface UpdateNormStats {
  readonly count: number;
  readonly min: number;
  readonly p25: number;
  readonly median: number;
  readonly p75: number;
  readonly max: number;
  /**
   * Present when participants clip their updates to a known norm and add no
   * noise (`--clip-norm` without `--noise-std`): the bound, and the fraction
   * of updates that arrived at it (they were clipped).
   */
  readonly clipNorm?: number;
  readonly clippedFraction?: number;
}

/** The settings a round ran with (they can change between rounds). */
export interface RoundAppliedSettings {
  readonly clientsPerRound: number;
  readonly epochs: number;
  readonly batchSize: number;
  readonly learningRate: number;
  /** The deadline the round got (the adaptive deadline may shorten roundTimeoutMs), ms. */
  readonly deadlineMs: number;
}

/** A round's traffic by encoding (docs/compression.md): bytesIn/bytesOut against the float32 frames they replace. */
export interface RoundEncodingStats {
  readonly update: UpdateEncodingName;
  readonly model: ModelEncodingName;
  /** The accepted updates' bytes had they been float32 frames. */
  readonly bytesInFloat32: number;
  /** The model frames' bytes had they been float32. */
  readonly bytesOutFloat32: number;
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
  /** Present when updates or the model travelled compressed: the encodings and what the same traffic would be as float32. */
  readonly encoding?: RoundEncodingStats;
  readonly startedAt: number;
  readonly durationMs: number;
  /** Privacy spent up to and including this round, when the strategy accounts for it. */
  readonly privacy?: PrivacyReport;
  /** Rounds with secure aggregation: who got through each step. */
  readonly secagg?: SecAggRoundStats;
  /** Each selected participant's outcome and time: the timeline shows who was the straggler. */
  readonly participants?: readonly RoundParticipantRecord[];
  /** Selected participants taken out of the round, by error code. */
  readonly rejectionReasons?: Readonly<Record<string, number>>;
  /** Accepted update norms; absent under client-level DP and secure aggregation. */
  readonly updateNorms?: UpdateNormStats;
  readonly applied?: RoundAppliedSettings;
  /** SHA-256 (hex) of the global model's float32 weights after this round, as stored in weights.bin. */
  readonly modelHash?: string;
  /** Aggregated rounds: the L2 norm of the change to the global model (core/aggregation/aggregate-guard.ts compares each round's with these). */
  readonly changeNorm?: number;
  /** Asynchronous mode: the staleness of the buffered updates this version was made from (counts[s]: updates of staleness s). */
  readonly staleness?: StalenessStats;
}

/** A version's buffer in asynchronous mode: how stale its updates were (versions between each one's base and the version it made). */
export interface StalenessStats {
  readonly max: number;
  readonly mean: number;
  readonly counts: readonly number[];
}

/** `--mode async`: buffered asynchronous aggregation (FedBuff; docs/async.md). */
export interface AsyncSettings {
  /** K: accepted updates that make one model version. */
  readonly bufferSize: number;
  /** S: updates more than S versions older than the version they would go into are refused (UPDATE_TOO_STALE). */
  readonly maxStaleness: number;
  /** C: participants training at once. */
  readonly concurrency: number;
  /** a: an update of staleness s is scaled by (1 + s)^-a (0.5: FedBuff's 1/sqrt(1 + s)). */
  readonly stalenessExponent: number;
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
  /** True when the round aborted because the decoded sum failed the range or norm check (core/secagg/sum-range.ts): the model was kept. */
  readonly sumRefused?: boolean;
}

/** `--secure-aggregation`: a coordinator following the protocol learns only the sum of the updates. */
export interface SecureAggregationSettings {
  /** k: neighbours per participant (SecAgg+), or 'all' (SecAgg). */
  readonly neighbours: number | 'all';
  /** t; absent: recommendedThreshold(n, k) for each round's n (raised to it when lower, capped at k + 1). */
  readonly threshold?: number;
  /** c: every coordinate of an update is clipped to [-c, c] before quantisation. */
  readonly clipRange: number;
  /** R: the quantisation range (even); Δ = 2c/R. */
  readonly quantizationRange: number;
  /**
   * b: masked words in Z_{2^b}, packed b bits each, sized at start for the
   * participants per round (core/secagg/modulus.ts); absent: 32-bit words.
   */
  readonly wordBits?: number;
  /** With `wordBits`: the most participants per round the words hold (the documented n); more are refused at start and on a change. */
  readonly maxParticipants?: number;
  /**
   * int4: every input is rotated with the round's block Hadamard rotation
   * before quantising, and the sum rotated back once (docs/secagg-compression.md).
   */
  readonly rotated?: boolean;
  /**
   * With `rotated`: true when c was not set (`--secagg-clip-range`) and is
   * derived from the clip norm, C·√(2 ln(4nd'/p)/B) plus the Gaussian
   * share's tail, once the model's size is known (core/secagg/rotated-clip-range.ts).
   */
  readonly derivedClipRange?: boolean;
  /** Deadline of each key-exchange and unmasking step, ms. The masked-input step, which includes training, gets roundTimeoutMs. */
  readonly stepTimeoutMs: number;
  /**
   * k, on a cluster only (`--redis`, `--secagg-min-cohort`): each node's
   * cohort is its own secure sum; a node with fewer selectable participants
   * is not selected, and a cohort with fewer masked inputs is never unmasked.
   */
  readonly minCohort?: number;
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
  /** Stop after this many evaluated rounds without a better test accuracy than the best so far. */
  readonly earlyStoppingPatience?: number;
  readonly fit: FitConfig;
  /** Present when rounds use secure aggregation. */
  readonly secureAggregation?: SecureAggregationSettings;
  /** `--update-encoding`: how participants send updates; absent: float32 (docs/compression.md). */
  readonly updateEncoding?: UpdateEncodingName;
  /** `--model-encoding`: how the model is sent to participants; absent: float32. */
  readonly modelEncoding?: ModelEncodingName;
  /** 'sync' (rounds, the default) or 'async' (a round is one model version; docs/async.md). Absent: sync. */
  readonly mode?: 'sync' | 'async';
  /** Present in async mode. */
  readonly async?: AsyncSettings;
}

/**
 * Who drives the federation: 'awaiting-start' (`--manual-start`, until the
 * operator starts it), 'running', 'paused' (the open round finishes, no new
 * one opens), 'stopped' (by the operator or for good: no more rounds).
 */
export type FederationControl = 'running' | 'paused' | 'awaiting-start' | 'stopped';

/**
 * State the coordinator could not save after retrying: the federation is
 * paused (nothing unsaved was shown), until the operator fixes the folder
 * and resumes.
 */
export interface StorageFailure {
  /** What was being saved, e.g. "round 7 (checkpoint, history, model files)". */
  readonly what: string;
  /** The path the OS refused, when it said. */
  readonly path?: string;
  /** The OS error code (ENOSPC, EACCES, EROFS, ENOTDIR...), when there is one. */
  readonly code?: string;
  readonly message: string;
  readonly attempts: number;
  readonly at: number;
}

export interface FederationStatus {
  readonly task: { readonly name: string; readonly architecture: string; readonly paramCount: number };
  readonly strategy: string;
  readonly settings: RoundSettings;
  readonly round: number;
  readonly phase: RoundPhase;
  readonly modelVersion: number;
  /** SHA-256 (hex) of the current global model's float32 weights. */
  readonly modelHash?: string;
  readonly done: boolean;
  readonly doneReason?: string;
  readonly control: FederationControl;
  /** False where individual update norms are withheld (client-level DP, secure aggregation), with why. */
  readonly updateNormsShown: boolean;
  readonly updateNormsWithheld?: string;
  /** Why the federation is not training right now, e.g. waiting for participants. */
  readonly waitingFor?: string;
  /**
   * Participants the coordinator knows: connected ones, and those that left
   * less than the grace period ago. In the dashboard status and /api/status
   * at most 200 are listed (connected first); `participantTotals` counts all.
   */
  readonly participants: readonly ParticipantStatus[];
  readonly participantTotals?: ParticipantTotals;
  readonly history: readonly RoundRecord[];
  /** Privacy spent so far, when the strategy accounts for it. */
  readonly privacy?: PrivacyReport;
  /** Rejected requests by error code, since start. */
  readonly rejections: Readonly<Record<string, number>>;
  /** Secure aggregation: rounds aborted because the decoded sum was out of the range honest inputs span (model kept). */
  readonly secureSumRejections?: number;
  readonly startedAt: number;
  /** The best round so far by held-out accuracy (then loss); its model is kept in <data-dir>/<task>/best/. */
  readonly best?: BestModelSummary;
  /** Set while something could not be saved: the federation is paused until the operator resumes. */
  readonly storageFailure?: StorageFailure;
  /** Present when the coordinator runs as one node of a cluster (`--redis`); docs/cluster.md. */
  readonly cluster?: ClusterStatus;
}

/** The cluster of coordinator nodes that share one federation through Redis (`--redis`). */
export interface ClusterStatus {
  /** This node's id (the node that answered). */
  readonly self: string;
  /** The leading node's id; absent while no node holds the lease (an election, or Redis unreachable). */
  readonly leader?: string;
  /** The leader's term (its fencing token), as this node last read it; absent while none is known. */
  readonly term?: number;
  /** Whether this node reaches Redis right now. */
  readonly redis: 'connected' | 'unreachable';
  /** Set while the federation is paused for the cluster's sake, in plain words (e.g. Redis is unreachable). */
  readonly paused?: string;
  /** Every node that sent a heartbeat in the last 30 s, by id. */
  readonly nodes: readonly ClusterNodeStatus[];
}

export interface ClusterNodeStatus {
  readonly id: string;
  /** Where the node serves participants and the dashboard (its own URL). */
  readonly address: string;
  /** Participants connected to that node. */
  readonly participants: number;
  /** Milliseconds since its last heartbeat, by Redis's clock. */
  readonly lastSeenMs: number;
  /** Bytes it received and sent on its HTTP port since it started. */
  readonly bytesIn: number;
  readonly bytesOut: number;
}

export interface BestModelSummary {
  readonly round: number;
  readonly modelVersion: number;
  readonly modelHash?: string;
  readonly metrics: EvalMetrics;
  /** Evaluated rounds since, none better (early stopping counts these). */
  readonly roundsSince: number;
}

/** Events of the `/admin` namespace (the dashboard). */
export interface AdminServerToClientEvents {
  status: (status: FederationStatus) => void;
}

export type ControlAction = 'start' | 'pause' | 'resume' | 'stop';
export const CONTROL_ACTIONS: readonly ControlAction[] = ['start', 'pause', 'resume', 'stop'];

export interface ControlRequest {
  readonly action: ControlAction;
}

export interface ControlAccepted {
  readonly control: FederationControl;
  /** Set after a stop: why the federation finished. */
  readonly doneReason?: string;
}

/** The round settings an operator may change between rounds; each applies from the next round. */
export interface SettingsChange {
  readonly clientsPerRound?: number;
  readonly epochs?: number;
  readonly batchSize?: number;
  readonly learningRate?: number;
  readonly roundTimeoutMs?: number;
}
export const SETTINGS_CHANGE_KEYS: readonly (keyof SettingsChange)[] = [
  'clientsPerRound',
  'epochs',
  'batchSize',
  'learningRate',
  'roundTimeoutMs',
];

/**
 * Events the dashboard sends (admin token required). Every request carries
 * an acknowledgement: the new state, or a coded error (BAD_PAYLOAD,
 * CONTROL_NOT_ALLOWED, INVALID_SETTING, UNAUTHORIZED, RATE_LIMITED).
 */
export interface AdminClientToServerEvents {
  control: (request: ControlRequest, ack: (result: Ack<ControlAccepted>) => void) => void;
  settings: (change: SettingsChange, ack: (result: Ack<RoundSettings>) => void) => void;
}

/** What a privacy-preserving strategy has spent so far. */
export interface PrivacyReport {
  /** 'client': one participant's whole data; 'example': one training example. */
  readonly level: 'client' | 'example';
  readonly placement: 'central' | 'distributed';
  readonly epsilon: number;
  readonly delta: number;
  /** Which accountant computed `epsilon`; absent in records saved before it could be chosen (those are RDP). */
  readonly accountant?: 'pld' | 'rdp';
  /** The setting that chose it: 'auto' reports the smaller of two upper bounds (core/privacy/epsilon.ts). */
  readonly accountantSetting?: AccountantKind;
  /** RDP's ε of the same history (improved conversion), shown next to PLD's. */
  readonly rdpEpsilon?: number;
  /** PLD's ε of the same history (an upper bound) and its rigorous lower bound; absent under 'rdp'. */
  readonly pldEpsilon?: number;
  readonly pldEpsilonLower?: number;
  /** True when the charged noise multiplier only bounds the mechanism's RDP (Skellam): only RDP may convert it. */
  readonly rdpOnly?: boolean;
  /** RDP's optimal order (kept whichever accountant gave `epsilon`). */
  readonly optimalOrder: number;
  /** Rounds charged to the accountant. */
  readonly rounds: number;
  readonly noiseMultiplier: number;
  /** The sampling rate the accountant used (1 where sampling cannot be relied on). */
  readonly sampleRate: number;
  readonly clipNorm: number;
  readonly conversion: 'improved' | 'classic';
  /**
   * The neighbouring relation ε holds for: 'add-remove' one participant's whole
   * dataset (central noise), or 'zero-out': its clipped update replaced by zero
   * while whether it took part is not hidden (distributed noise, each
   * participant's own share accounted).
   */
  readonly neighbouring?: 'add-remove' | 'zero-out';
}
