import type { ParticipantRecord } from '../rounds/participants.ts';

/** What forming cohorts needs besides the sample. */
export interface CohortRule {
  /** k: the fewest participants one node's cohort may have. */
  readonly minCohort: number;
  /** The most participants the round selects (over-selection included). */
  readonly wanted: number;
  /** The node that holds a participant. */
  readonly nodeOf: (id: string) => string;
}

/**
 * Secure aggregation on a cluster runs one secure sum per node (Google's
 * per-Aggregator design, docs/cluster.md): the coordinator sees each node's
 * cohort sum, so a node may take part only with at least k participants.
 * The sampled participants of a node with fewer are dropped from the
 * selection, and the nodes that keep a cohort are topped up from their own
 * unselected candidates, in the candidates' order, up to `wanted`.
 */
export function formCohorts(
  sampled: readonly ParticipantRecord[],
  candidates: readonly ParticipantRecord[],
  rule: CohortRule,
): ParticipantRecord[] {
  const byNode = new Map<string, ParticipantRecord[]>();
  for (const p of sampled) {
    const node = rule.nodeOf(p.id);
    byNode.set(node, [...(byNode.get(node) ?? []), p]);
  }
  const kept = [...byNode.values()].filter((cohort) => cohort.length >= rule.minCohort).flat();
  const keptNodes = new Set(kept.map((p) => rule.nodeOf(p.id)));
  const taken = new Set(kept.map((p) => p.id));
  for (const p of candidates) {
    if (kept.length >= rule.wanted) break;
    if (taken.has(p.id) || !keptNodes.has(rule.nodeOf(p.id))) continue;
    kept.push(p);
    taken.add(p.id);
  }
  return kept;
}
