import { checkAggregate, committedChangeNorms } from '../../core/aggregation/aggregate-guard.ts';
import type { EvalMetrics } from '../../core/protocol/messages.ts';
import type { FederationStatus, RoundRecord, RoundSettings } from '../../core/protocol/status.ts';
import { makeModel, type GlobalModel, type RoundEngineOptions } from './engine-types.ts';
import type { OpenRound } from './collection.ts';
import type { Participants } from './participants.ts';
import { roundEncoding } from './round-encoding.ts';
import { outcomeCounts, roundDetails } from './round-records.ts';

/** A closed round whose record and model exist but are not saved yet: nothing outside the engine sees them. */
export interface RoundCandidate {
  readonly open: OpenRound;
  readonly record: RoundRecord;
  readonly model: GlobalModel;
}

/** What closing a round needs from the engine. */
export interface ClosingHost {
  readonly options: RoundEngineOptions;
  readonly settings: RoundSettings;
  /** The model the round trained from (the current global model). */
  readonly model: GlobalModel;
  /** The committed rounds so far (the aggregate guard compares the change with recent ones). */
  readonly history: readonly RoundRecord[];
  readonly participants: Participants;
  /** Whose delivery record a selected participant builds, this node's or another node's (remote-rounds.ts deliveryKeyOf). */
  deliveryKeyOf(id: string): string | undefined;
  /** The round is still the one closing (a stop or shutdown may abandon it while it evaluates). */
  stillClosing(open: OpenRound): boolean;
  /** The round is aggregated and is being evaluated now. */
  evaluating(open: OpenRound): void;
  /** Async work idle() waits for. */
  track<T>(work: Promise<T>): Promise<T>;
}

/**
 * Closes a round into a candidate: what was collected goes to the
 * aggregator, the selected participants' delivery records are updated, and
 * the new model is evaluated if there are enough updates (else the round is
 * skipped with the reason). Undefined when the round was abandoned meanwhile.
 */
export async function closeIntoCandidate(host: ClosingHost, open: OpenRound): Promise<RoundCandidate | undefined> {
  const { clock, evaluator, strategy } = host.options;
  const settings = host.settings;
  const delivered = open.collection.deliver(open.aggregator);
  const secagg = open.collection.stats();
  const staleness = open.collection.staleness?.();
  const details = roundDetails(open, clock.now(), delivered.contributors);
  for (const p of details.participants) {
    const key = host.deliveryKeyOf(p.id);
    // A decline, or a drop its node caused (a cluster's node failed), says nothing about whether the participant delivers.
    const noEvidence = p.outcome === 'declined' || (p.outcome === 'dropped' && open.settlements.get(p.id)?.nodeFault === true);
    if (key !== undefined) host.participants.deliveries.record(key, noEvidence ? undefined : p.outcome === 'received');
  }
  const counts = outcomeCounts(open, details);
  const base = { ...counts, ...roundEncoding(open, counts.received, settings.modelEncoding) };
  const enough = delivered.ok && (base.received >= settings.minUpdates || strategy.releasesEveryRound === true);
  const aggregate = enough ? open.aggregator.finish() : null;
  if (!enough) open.aggregator.abandon?.();
  // A non-finite or wildly out-of-line aggregate is never committed, nor evaluated: the round is skipped, the model stays.
  const check = aggregate === null ? undefined : checkAggregate(host.model.weights, aggregate, committedChangeNorms(host.history));
  const weights = check?.ok ? aggregate : null;
  if (check && !check.ok) open.aggregator.rejectAggregate?.();
  let model = host.model;
  let record: RoundRecord;
  if (weights === null || !check?.ok) {
    const reason =
      check && !check.ok
        ? `${check.reason}; the round is skipped and the model is unchanged`
        : !delivered.ok
          ? `${delivered.reason}; the model is unchanged`
          : `only ${base.received} of at least ${settings.minUpdates} updates arrived (${base.dropped} dropped, ${base.rejected} rejected, ${base.declined} declined); the model is unchanged`;
    record = {
      ...base,
      outcome: 'skipped',
      reason,
      modelVersion: model.version,
      modelHash: model.hash,
      durationMs: clock.now() - open.startedAt,
      privacy: strategy.privacy?.(),
      secagg,
      staleness,
      ...details,
    };
  } else {
    host.evaluating(open);
    let metrics: EvalMetrics | undefined;
    try {
      metrics = await host.track(evaluator.evaluate(weights));
    } catch (error) {
      console.error(`round ${open.round}: evaluation failed:`, error);
    }
    if (!host.stillClosing(open)) return undefined; // stopped while evaluating
    model = makeModel(model.version + 1, weights, { fineTune: host.options.fineTune, encoding: settings.modelEncoding });
    record = {
      ...base,
      outcome: 'aggregated',
      modelVersion: model.version,
      modelHash: model.hash,
      metrics,
      changeNorm: check.changeNorm,
      durationMs: clock.now() - open.startedAt,
      privacy: strategy.privacy?.(),
      secagg,
      staleness,
      ...details,
    };
  }
  // The candidate: the round's record and model exist here and nowhere else. From here it is saved first
  // (retried), and shown only once saved.
  return { open, record, model };
}

/** Why the federation ends after a published round (target accuracy, early stopping, round limit), or undefined. */
export function endAfterRound(record: RoundRecord, settings: RoundSettings, best: FederationStatus['best']): string | undefined {
  const target = settings.targetAccuracy;
  const patience = settings.earlyStoppingPatience;
  if (target !== undefined && record.metrics && record.metrics.accuracy >= target) {
    return `target accuracy ${target} reached in round ${record.round} (accuracy ${record.metrics.accuracy.toFixed(4)})`;
  }
  if (patience !== undefined && best && best.roundsSince >= patience) {
    return (
      `early stopping: no better test accuracy in the ${best.roundsSince} evaluated rounds since round ${best.round} ` +
      `(patience ${patience}; best accuracy ${best.metrics.accuracy.toFixed(4)}, kept in best/)`
    );
  }
  if (record.round >= settings.rounds) return `completed ${settings.rounds} rounds`;
  return undefined;
}
