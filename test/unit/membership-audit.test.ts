import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { attackAdvantage, lossThresholdAudit, rocAuc } from '../../core/privacy/membership-audit.ts';
import { SeededRandom } from '../../core/random/prng.ts';

/** The Mann–Whitney U statistic by its definition: every member–non-member pair, ties counting half. */
function mannWhitneyU(members: readonly number[], nonMembers: readonly number[]): number {
  let u = 0;
  for (const x of members) for (const y of nonMembers) u += x > y ? 1 : x === y ? 0.5 : 0;
  return u;
}

/** TPR − FPR at every threshold that occurs, by brute force. */
function bruteAdvantage(members: readonly number[], nonMembers: readonly number[]): number {
  let best = 0;
  for (const t of [...members, ...nonMembers]) {
    const tpr = members.filter((x) => x >= t).length / members.length;
    const fpr = nonMembers.filter((y) => y >= t).length / nonMembers.length;
    best = Math.max(best, tpr - fpr);
  }
  return best;
}

describe('membership-inference audit math', () => {
  it('matches a hand-computed example with a tie', () => {
    // Pairs: 0.9 beats both, 0.8 beats both, 0.5 ties 0.5 (½) and beats 0.3: 5.5 of 6.
    assert.equal(rocAuc([0.9, 0.8, 0.5], [0.5, 0.3]), 5.5 / 6);
    // Threshold 0.8: TPR 2/3, FPR 0 is the best split.
    assert.equal(attackAdvantage([0.9, 0.8, 0.5], [0.5, 0.3]), 2 / 3);
  });

  it('gives 1 for perfect separation, 0 for the reverse, 0.5 for identical scores', () => {
    assert.equal(rocAuc([3, 4, 5], [0, 1, 2]), 1);
    assert.equal(rocAuc([0, 1, 2], [3, 4, 5]), 0);
    assert.equal(rocAuc([7, 7], [7, 7, 7]), 0.5);
    assert.equal(attackAdvantage([3, 4, 5], [0, 1, 2]), 1);
    assert.equal(attackAdvantage([7, 7], [7, 7, 7]), 0);
    assert.equal(attackAdvantage([0, 1], [2, 3]), 0, 'an attack worse than guessing has advantage 0 (no threshold helps)');
  });

  it('equals U / (m n) of Mann–Whitney, and the brute-force advantage, on random scores with many ties', () => {
    const random = new SeededRandom(11);
    for (let trial = 0; trial < 200; trial++) {
      const m = 1 + Math.floor(random.next() * 40);
      const n = 1 + Math.floor(random.next() * 40);
      // Few distinct values, so ties are common; members shifted by a trial-dependent amount.
      const shift = Math.floor(random.next() * 4);
      const members = Array.from({ length: m }, () => Math.floor(random.next() * 8) + shift);
      const nonMembers = Array.from({ length: n }, () => Math.floor(random.next() * 8));
      const auc = rocAuc(members, nonMembers);
      assert.ok(Math.abs(auc - mannWhitneyU(members, nonMembers) / (m * n)) < 1e-12, `trial ${trial}`);
      assert.ok(Math.abs(rocAuc(nonMembers, members) - (1 - auc)) < 1e-12, 'swapping the groups mirrors the AUC');
      assert.ok(Math.abs(attackAdvantage(members, nonMembers) - bruteAdvantage(members, nonMembers)) < 1e-12, `trial ${trial}`);
    }
  });

  it('scores a loss-threshold audit with −loss: low member losses give an AUC above 0.5', () => {
    const audit = lossThresholdAudit([0.1, 0.2, 2.0], [0.5, 1.5]);
    // Scores −0.1, −0.2, −2.0 vs −0.5, −1.5: members win 2 + 2 + 0 of 6 pairs.
    assert.equal(audit.auc, 4 / 6);
    assert.equal(audit.members, 3);
    assert.equal(audit.nonMembers, 2);
    assert.ok(Math.abs(audit.meanMemberLoss - 2.3 / 3) < 1e-12);
    assert.equal(audit.meanNonMemberLoss, 1);
    assert.equal(audit.advantage, 2 / 3);
  });

  it('handles infinite losses and refuses NaN and empty groups', () => {
    assert.equal(rocAuc([-Infinity, -Infinity], [-Infinity, 0]), 0.25);
    assert.equal(lossThresholdAudit([Infinity], [Infinity]).auc, 0.5);
    assert.throws(() => rocAuc([], [1]), /needs members and non-members/);
    assert.throws(() => attackAdvantage([1], []), /needs members and non-members/);
    assert.throws(() => lossThresholdAudit([Number.NaN], [1]), /member loss 0 is NaN/);
  });
});
