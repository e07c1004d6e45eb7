import type { RoundStartMessage } from '../../core/protocol/messages.ts';
import type { CollectionMethod, OpenRound, RemoteSettlement } from './collection.ts';
import type { RoundBasis } from './open-round.ts';
import type { ParticipantRecord, Participants } from './participants.ts';

/**
 * The engine's hook for participants held by other processes (a cluster's
 * member nodes, coordinator/cluster/leader-rounds.ts): the leader selects
 * them next to its own, their nodes collect and sum their updates, and the
 * sums reach this round's aggregator before it finishes. The engine stays
 * one engine: it only asks for the candidates, says when a round opened,
 * and awaits `closing` before it aggregates.
 */
export interface RemoteRounds {
  /**
   * Async mode on a cluster: every node's own intake hands out the training
   * slots and takes the updates (coordinator/cluster/async-node.ts); the
   * engine's pool hands out none.
   */
  readonly handsOutAsyncSlots?: boolean;
  /** Participants of other nodes that may be selected now (records made for selection: the engine's registry never holds them). */
  candidates(): readonly ParticipantRecord[];
  /**
   * Secure aggregation on a cluster: the sampled selection trimmed to cohorts
   * of at least `minCohort` per node (coordinator/cluster/cohort-selection.ts).
   */
  formCohorts?(
    sampled: readonly ParticipantRecord[],
    candidates: readonly ParticipantRecord[],
    rule: { readonly minCohort: number; readonly wanted: number },
  ): readonly ParticipantRecord[];
  /** Secure aggregation: the collection that runs this node's cohort with `own` and waits for the other nodes' cohorts. */
  secureCollection?(own: CollectionMethod): CollectionMethod;
  /**
   * The delivery key (selection.ts) of participant `id` of another node,
   * selected in the latest round opened: the leader records under it whether
   * the participant delivered, as it does for its own, so selection weights,
   * the quorum's "never delivered" rule and the next rounds see one record
   * whatever node the participant trained on.
   */
  deliveryKey(id: string): string | undefined;
  /** Round `open` went out to this node's participants; `chosen` is the whole selection, remote ones included. */
  opened(open: OpenRound, chosen: readonly ParticipantRecord[], message: RoundStartMessage): void;
  /** The round stopped collecting: the other nodes' sums go into `open.aggregator`, and its settlements say whose updates are really in. */
  closing(open: OpenRound): Promise<void>;
}

/**
 * The engine's options on a cluster's leader: RoundEngineOptions plus this
 * hook. Kept here rather than in engine-types.ts, which collection.ts
 * imports, so that the hook may name collection types without a cycle.
 */
export interface WithRemoteRounds {
  /** A cluster's leader: participants of other nodes selected and summed there. */
  readonly remoteRounds?: RemoteRounds;
}

/**
 * Sets how a selected participant's part ended, overriding an earlier
 * settlement: only the leader's close of a distributed round does this,
 * when its node's partial says otherwise (an update counted on arrival whose
 * partial was lost, or one that arrived after the leader stopped waiting).
 */
export function resettle(open: RoundBasis, id: string, at: number, settlement: RemoteSettlement): void {
  open.settlements.set(id, {
    outcome: settlement.outcome,
    at,
    reason: settlement.reason,
    norm: settlement.norm,
    ...(settlement.nodeFault ? { nodeFault: true } : {}),
  });
}

/** Whose delivery record participant `id` builds: this node's own participant's key, else the key of one of another node's selected in the open round. */
export function deliveryKeyOf(
  participants: Participants,
  remote: Pick<RemoteRounds, 'deliveryKey'> | undefined,
  id: string,
): string | undefined {
  return participants.get(id)?.deliveryKey ?? remote?.deliveryKey(id);
}

/** A record through which the leader's selection, quorum and round record treat a participant of another node like its own. */
export function remoteRecord(id: string, numExamples: number, deliveryKey: string): ParticipantRecord {
  return {
    id,
    deliveryKey,
    info: { backend: 'remote', numExamples },
    connected: true,
    state: 'idle',
    roundsContributed: 0,
    retired: false,
  };
}
