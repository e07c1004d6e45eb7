import { RoundDecoder } from '../../core/compression/round-decoder.ts';
import { selectedPerRound } from '../options/selection.ts';
import type { RoundStartMessage } from '../../core/protocol/messages.ts';
import type { RoundSettings } from '../../core/protocol/status.ts';
import type { CollectionHost, CollectionMethod } from './collection.ts';
import type { GlobalModel, RoundEngineOptions } from './engine-types.ts';
import type { WithRemoteRounds } from './remote-rounds.ts';
import type { OpenRound } from './collection.ts';
import type { RoundBasis } from './open-round.ts';
import type { ParticipantRecord, Participants } from './participants.ts';
import { plainCollection } from './plain-collection.ts';
import { roundCompression } from './round-compression.ts';
import { secureCollection } from './secure-collection.ts';
import { hasOwnSelection, weightedSample } from './selection.ts';

/** What opening a round needs. */
export interface OpeningInput {
  readonly round: number;
  readonly options: RoundEngineOptions & WithRemoteRounds;
  readonly settings: RoundSettings;
  readonly model: GlobalModel;
  /** Who may be selected now. */
  readonly candidates: readonly ParticipantRecord[];
  readonly participants: Participants;
  /** The round deadline the engine would use for plain collection (fixed or adaptive). */
  readonly plainDeadlineMs: number;
  readonly host: CollectionHost;
  readonly onDeadline: () => void;
  /** Async mode: versions select nobody (the pool hands out training slots) and collect with this. */
  readonly asyncMethod?: CollectionMethod;
}

/** A round ready to open: the state it starts with, who was selected, and the round:start they get. */
export interface Opening {
  readonly open: OpenRound;
  readonly chosen: readonly ParticipantRecord[];
  readonly message: RoundStartMessage;
}

/**
 * Selects a round's participants (undefined: too few of them), asks the strategy for the fit
 * configuration and a fresh aggregator, and picks how the round collects its
 * input: here, once; the engine never asks again.
 */
export function prepareRound({
  round,
  options,
  settings,
  model,
  candidates,
  participants,
  plainDeadlineMs,
  host,
  onDeadline,
  asyncMethod,
}: OpeningInput): Opening | undefined {
  const { strategy, clock, random } = options;
  // Over-selection: ask a few more than needed, so dropouts still leave enough updates.
  const wanted = selectedPerRound(settings);
  // A strategy's own selection (client-level DP samples independently) is kept as it is; otherwise reliability-weighted.
  const sampled = asyncMethod
    ? []
    : strategy.select && hasOwnSelection(strategy)
      ? strategy.select(candidates, wanted, random)
      : weightedSample(candidates, wanted, (p) => participants.deliveries.weight(p.deliveryKey), random);
  // Secure aggregation on a cluster: one secure sum per node, each of at least k (remote-rounds.ts).
  const minCohort = settings.secureAggregation?.minCohort;
  const formCohorts = options.remoteRounds?.formCohorts?.bind(options.remoteRounds);
  const chosen = minCohort !== undefined && formCohorts ? formCohorts(sampled, candidates, { minCohort, wanted }) : sampled;
  // Too few left in cohorts of k: the round does not open, as with too few candidates.
  if (chosen !== sampled && chosen.length < settings.minClients) return undefined;
  const configured = strategy.configureFit(round, settings.fit);
  const compression = roundCompression(settings, random);
  const fit = compression ? { ...configured, compression } : configured;
  const decoder = new RoundDecoder(model.updateLength, compression, strategy);
  const startedAt = clock.now();
  const secure = settings.secureAggregation && secureCollection(settings.secureAggregation, settings.roundTimeoutMs);
  // On a cluster's leader this node's secure collection is its own cohort's (remote-rounds.ts).
  const method = asyncMethod ?? (secure ? (options.remoteRounds?.secureCollection?.(secure) ?? secure) : plainCollection);
  const deadlineMs = method.deadlineMs(plainDeadlineMs);
  const basis: RoundBasis = {
    round,
    startedAt,
    baseVersion: model.version,
    selected: new Set(chosen.map((p) => p.id)),
    aggregator: decoder.beginRound(strategy, {
      round,
      globalWeights: model.weights,
      // Async: nobody is selected; the claims of everyone who may train in the version set the cap.
      claimedExamples: (asyncMethod ? candidates : chosen).map((p) => p.info.numExamples),
    }),
    decoder,
    timer: clock.setTimer(deadlineMs, onDeadline),
    bytesIn: 0,
    bytesOut: model.frame.byteLength * chosen.length,
    fit,
    clientsPerRound: settings.clientsPerRound,
    deadlineMs,
    settlements: new Map(),
    rejectionCodes: {},
  };
  const open: OpenRound = Object.assign(basis, {
    collection: method.create(
      host,
      basis,
      chosen.map((p) => p.id),
    ),
  });
  const message: RoundStartMessage = {
    round,
    model: { version: model.version, weights: model.frame, frozenHash: model.frozenHash },
    config: fit,
    deadline: startedAt + deadlineMs,
  };
  return { open, chosen, message };
}
