import type { RoundAggregator } from '../../core/aggregation/strategy.ts';
import type { RoundDecoder } from '../../core/compression/round-decoder.ts';
import type { FitConfig } from '../../core/protocol/messages.ts';
import type { RoundParticipantOutcome } from '../../core/protocol/status.ts';
import type { TimerHandle } from './clock.ts';

/** How a selected participant's part in the open round ended, and when. */
export interface Settlement {
  readonly outcome: RoundParticipantOutcome;
  readonly at: number;
  readonly reason?: string;
  readonly norm?: number;
  /**
   * A participant of another node dropped because its node failed (no
   * heartbeat, refused or missed the round's start, partial lost): an
   * infrastructure failure, not the participant's miss, so the round records
   * the drop but its delivery record does not (closing.ts).
   */
  readonly nodeFault?: boolean;
}

/** A round from its start to its close: what was sent, who was selected, how each one's part ended. */
export interface RoundBasis {
  readonly round: number;
  readonly startedAt: number;
  readonly baseVersion: number;
  /** Who was selected; in async mode, who sent the version something (async-collection.ts adds them as they do). */
  readonly selected: Set<string>;
  readonly aggregator: RoundAggregator;
  /** Decodes the round's update frames in its encoding (core/compression/round-decoder.ts). */
  readonly decoder: RoundDecoder;
  readonly timer: TimerHandle;
  /** Bytes of the round's input as it arrived (updates, or masked vectors). */
  bytesIn: number;
  /** Bytes of model frames sent (in async mode, to each participant handed a slot during the version). */
  bytesOut: number;
  readonly fit: FitConfig;
  readonly clientsPerRound: number;
  readonly deadlineMs: number;
  /** Per selected participant who is out of the waiting: how its part ended (the round's timeline). */
  readonly settlements: Map<string, Settlement>;
  readonly rejectionCodes: Record<string, number>;
}

/** Records how a selected participant's part ended; an accepted input stays accepted whatever happens later. */
export function settle(
  open: RoundBasis,
  id: string,
  at: number,
  outcome: RoundParticipantOutcome,
  reason?: string,
  norm?: number,
  code?: string,
  nodeFault?: boolean,
): void {
  // An accepted update (or masked input) is in the round's sum: nothing that happens later undoes that.
  if (open.settlements.get(id)?.outcome === 'received') return;
  open.settlements.set(id, { outcome, at, reason, norm, ...(nodeFault ? { nodeFault } : {}) });
  if (code !== undefined) open.rejectionCodes[code] = (open.rejectionCodes[code] ?? 0) + 1;
}

/** Selected participants that have not answered yet. */
export function unsettled(open: RoundBasis): string[] {
  return [...open.selected].filter((id) => !open.settlements.has(id));
}
