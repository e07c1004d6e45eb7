import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSettledReport } from '../../coordinator/cluster/cluster-events.ts';

const report = { node: 'm', term: 2, round: 5, participantId: 'p', outcome: 'dropped', reason: 'left' };

test("a member's settlement report keeps only the fields a member may report: a nodeFault it sends is dropped", () => {
  assert.deepEqual(parseSettledReport({ ...report, nodeFault: true, extra: 1 }), report);
  assert.deepEqual(parseSettledReport({ ...report, norm: 1.5, code: 'WRONG_LENGTH' }), { ...report, norm: 1.5, code: 'WRONG_LENGTH' });
});

test('a malformed settlement report is refused whole', () => {
  for (const bad of [null, 'x', { ...report, outcome: 'won' }, { ...report, term: 1.5 }, { ...report, norm: 'big' }])
    assert.equal(parseSettledReport(bad), undefined);
});
