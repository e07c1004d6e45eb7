import type { PrivacyReport, Strategy } from '../../core/aggregation/strategy.ts';
import type { FederationStatus, ParticipantStatus, RoundRecord, RoundSettings, StorageFailure } from '../../core/protocol/status.ts';
import { countSumRejections } from '../../core/secagg/sum-range.ts';
import { bestRound, roundsWithoutImprovement } from './best-round.ts';
import { storageFailureText } from './durable-commit.ts';
import { controlOf, isPaused, phaseOf, type EngineState } from './engine-state.ts';
import type { GlobalModel, RoundEngineOptions } from './engine-types.ts';
import type { Participants } from './participants.ts';

/** Participants listed one by one in the dashboard status; the rest are counted (participantTotals). */
export const STATUS_PARTICIPANTS_LISTED = 200;
/** Rounds whose per-participant timeline the dashboard status carries (the dashboard draws the last 5). */
export const STATUS_TIMELINE_ROUNDS = 10;

/**
 * What dashboards are pushed and `/api/status` returns: the whole status
 * with per-participant timelines only for the last STATUS_TIMELINE_ROUNDS
 * rounds (older rounds keep their counts), and at most
 * STATUS_PARTICIPANTS_LISTED participants listed, connected ones first. One
 * record per selected participant per round would otherwise grow the push
 * without bound.
 */
export function dashboardView(status: FederationStatus): FederationStatus {
  const firstKept = status.history.length - STATUS_TIMELINE_ROUNDS;
  const listed = listedParticipants(status.participants);
  return {
    ...status,
    participants: listed,
    participantTotals: { ...status.participantTotals!, listed: listed.length },
    history: status.history.map((r, i) => (i >= firstKept ? r : withoutTimeline(r))),
  };
}

/** The participants the dashboard status lists: at most STATUS_PARTICIPANTS_LISTED, connected ones first, each group in the given order. */
export function listedParticipants(participants: readonly ParticipantStatus[]): ParticipantStatus[] {
  const connected = participants.filter((p) => p.connected);
  return connected.length >= STATUS_PARTICIPANTS_LISTED
    ? connected.slice(0, STATUS_PARTICIPANTS_LISTED)
    : connected.concat(participants.filter((p) => !p.connected).slice(0, STATUS_PARTICIPANTS_LISTED - connected.length));
}

function withoutTimeline(record: RoundRecord): RoundRecord {
  if (record.participants === undefined) return record;
  const { participants: _dropped, ...rest } = record;
  return rest;
}

/** What the status is made of: the engine's state and the figures it keeps. */
export interface StatusInputs {
  readonly options: RoundEngineOptions;
  readonly state: EngineState;
  readonly settings: RoundSettings;
  readonly round: number;
  readonly model: GlobalModel;
  readonly participants: Participants;
  /** How many participants could be selected now. */
  readonly eligible: () => number;
  readonly normsWithheld: string | undefined;
  readonly privacy: PrivacyReport | undefined;
  readonly history: readonly RoundRecord[];
  readonly rejections: Readonly<Record<string, number>>;
  readonly startedAt: number;
  readonly best: FederationStatus['best'];
  readonly storageFailure: StorageFailure | undefined;
}

/** The whole state, every round's timeline included: for the run report, the CSV and the final result. */
export function federationStatus(input: StatusInputs): FederationStatus {
  const { state, storageFailure } = input;
  const participants = input.participants.rows();
  return {
    task: input.options.task,
    strategy: input.options.strategy.name,
    settings: input.settings,
    control: controlOf(state),
    updateNormsShown: input.normsWithheld === undefined,
    updateNormsWithheld: input.normsWithheld,
    round: input.round,
    phase: phaseOf(state),
    modelVersion: input.model.version,
    modelHash: input.model.hash,
    done: state.kind === 'done',
    doneReason: state.kind === 'done' ? state.reason : undefined,
    waitingFor: waitingFor(input),
    privacy: input.privacy,
    participants,
    participantTotals: {
      known: participants.length,
      connected: participants.filter((p) => p.connected).length,
      listed: participants.length,
      departedContributors: input.participants.forgottenContributors,
    },
    history: [...input.history],
    rejections: { ...input.rejections },
    secureSumRejections: input.settings.secureAggregation ? countSumRejections(input.history) : undefined,
    startedAt: input.startedAt,
    best: input.best,
    ...(storageFailure ? { storageFailure } : {}),
  };
}

/** What a federation between rounds waits for, if anything. */
function waitingFor({ state, storageFailure, eligible, settings }: StatusInputs): string | undefined {
  if (phaseOf(state) !== 'waiting') return undefined;
  if (state.kind === 'awaiting-start') return 'the operator to start the federation';
  if (storageFailure) return `the operator to resume once the folder is writable again: ${storageFailureText(storageFailure)}`;
  if (isPaused(state)) return 'the operator to resume (paused)';
  const have = eligible();
  const need = settings.minClients;
  if (have < need) return `participants: ${have} available (connected, not retired), at least ${need} needed`;
  return undefined;
}

/** Why individual update norms are not shown (secure aggregation, or a strategy whose participation is private), or undefined where they may be. */
export function normsWithheld(settings: RoundSettings, strategy: Strategy): string | undefined {
  if (settings.secureAggregation) return 'secure aggregation: the coordinator never sees an individual update';
  if (strategy.traits.participation === 'private')
    return 'client-level DP: an individual update norm is not covered by the privacy guarantee';
  return undefined;
}

/** The best evaluated round so far (best/ keeps its model), and how many evaluated rounds came since. */
export function bestSummary(history: readonly RoundRecord[]): FederationStatus['best'] {
  const best = bestRound(history);
  if (!best?.metrics) return undefined;
  return {
    round: best.round,
    modelVersion: best.modelVersion,
    modelHash: best.modelHash,
    metrics: best.metrics,
    roundsSince: roundsWithoutImprovement(history),
  };
}
