/**
 * The math of a membership-inference audit (Yeom et al. 2018's loss
 * threshold attack): an attacker who knows the model guesses "member" when
 * an example's loss is low. How well that separates training examples
 * (members) from examples the model never saw (non-members) is the ROC AUC
 * of the score −loss: 0.5 is guessing, 1 is perfect separation. A low AUC
 * for this one attack is evidence of little leakage, not proof of privacy:
 * stronger attacks (shadow models, LiRA) can do better, and only DP bounds
 * every attack.
 */

/**
 * P(member score > non-member score) + ½ P(equal): the area under the ROC
 * curve, exact, with ties counted half. It equals the Mann–Whitney U of the
 * members over n_members × n_nonMembers, computed from mid-ranks after one
 * sort, O(n log n).
 */
export function rocAuc(memberScores: ArrayLike<number>, nonMemberScores: ArrayLike<number>): number {
  const m = memberScores.length;
  const n = nonMemberScores.length;
  if (m === 0 || n === 0) throw new RangeError(`the AUC needs members and non-members, got ${m} and ${n}`);
  const all = labelled(memberScores, nonMemberScores);
  all.sort((a, b) => compare(a.score, b.score));
  let memberRankSum = 0;
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j < all.length && all[j]!.score === all[i]!.score) j++;
    // Ranks i+1 .. j share their mean.
    const midRank = (i + 1 + j) / 2;
    for (let k = i; k < j; k++) if (all[k]!.member) memberRankSum += midRank;
    i = j;
  }
  const u = memberRankSum - (m * (m + 1)) / 2;
  return u / (m * n);
}

/**
 * The attack's best advantage: max over thresholds t of TPR − FPR when
 * "member" means score ≥ t (Yeom et al.'s membership advantage). 0 when no
 * threshold beats guessing.
 */
export function attackAdvantage(memberScores: ArrayLike<number>, nonMemberScores: ArrayLike<number>): number {
  const m = memberScores.length;
  const n = nonMemberScores.length;
  if (m === 0 || n === 0) throw new RangeError(`the advantage needs members and non-members, got ${m} and ${n}`);
  const all = labelled(memberScores, nonMemberScores);
  all.sort((a, b) => compare(b.score, a.score));
  let best = 0;
  let tp = 0;
  let fp = 0;
  for (let i = 0; i < all.length; ) {
    // Lowering the threshold past a value admits every example that has it.
    const score = all[i]!.score;
    while (i < all.length && all[i]!.score === score) {
      if (all[i]!.member) tp++;
      else fp++;
      i++;
    }
    best = Math.max(best, tp / m - fp / n);
  }
  return best;
}

export interface MembershipAuditResult {
  readonly members: number;
  readonly nonMembers: number;
  readonly meanMemberLoss: number;
  readonly meanNonMemberLoss: number;
  /** ROC AUC of the loss-threshold attack (score −loss). */
  readonly auc: number;
  /** max TPR − FPR over thresholds. */
  readonly advantage: number;
}

/** The loss-threshold attack on per-example losses (lower loss: more likely a member). */
export function lossThresholdAudit(memberLosses: ArrayLike<number>, nonMemberLosses: ArrayLike<number>): MembershipAuditResult {
  for (const [name, losses] of [
    ['member', memberLosses],
    ['non-member', nonMemberLosses],
  ] as const) {
    for (let i = 0; i < losses.length; i++) {
      if (Number.isNaN(losses[i]!)) throw new RangeError(`${name} loss ${i} is NaN`);
    }
  }
  const negate = (losses: ArrayLike<number>) => Float64Array.from({ length: losses.length }, (_, i) => -losses[i]!);
  const memberScores = negate(memberLosses);
  const nonMemberScores = negate(nonMemberLosses);
  return {
    members: memberLosses.length,
    nonMembers: nonMemberLosses.length,
    meanMemberLoss: mean(memberLosses),
    meanNonMemberLoss: mean(nonMemberLosses),
    auc: rocAuc(memberScores, nonMemberScores),
    advantage: attackAdvantage(memberScores, nonMemberScores),
  };
}

function labelled(members: ArrayLike<number>, nonMembers: ArrayLike<number>): { score: number; member: boolean }[] {
  const out: { score: number; member: boolean }[] = [];
  for (let i = 0; i < members.length; i++) out.push({ score: members[i]!, member: true });
  for (let i = 0; i < nonMembers.length; i++) out.push({ score: nonMembers[i]!, member: false });
  for (const e of out) if (Number.isNaN(e.score)) throw new RangeError('scores must not be NaN');
  return out;
}

/** Not a − b: that is NaN for two equal infinities (a loss can overflow to Infinity). */
function compare(a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function mean(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]!;
  return sum / values.length;
}
