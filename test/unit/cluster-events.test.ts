import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePartialReply, parseSettledReport, parseStoredNotice } from '../../coordinator/cluster/cluster-events.ts';

const report = { node: 'm', term: 2, round: 5, participantId: 'p', outcome: 'dropped', reason: 'left' };

test("a member's settlement report keeps only the fields a member may report: a nodeFault it sends is dropped", () => {
  assert.deepEqual(parseSettledReport({ ...report, nodeFault: true, extra: 1 }), report);
  assert.deepEqual(parseSettledReport({ ...report, norm: 1.5, code: 'WRONG_LENGTH' }), { ...report, norm: 1.5, code: 'WRONG_LENGTH' });
});

test('a malformed settlement report is refused whole', () => {
  for (const bad of [null, 'x', { ...report, outcome: 'won' }, { ...report, term: 1.5 }, { ...report, norm: 'big' }])
    assert.equal(parseSettledReport(bad), undefined);
});

test("a member's stored partial names its contributors and their upload bytes, a whole non-negative number (0 from an earlier build), or is refused", () => {
  const notice = { node: 'm', term: 2, round: 5, contributors: ['a', 'b'], bytesIn: 1_600_032 };
  const reply = { node: 'm', stored: true, contributors: ['a', 'b'], bytesIn: 1_600_032 };
  assert.deepEqual(parseStoredNotice(notice), { ...notice, stored: true });
  assert.deepEqual(parsePartialReply(reply), reply);
  assert.deepEqual(parsePartialReply({ node: 'm', stored: false, reason: 'none' }), { node: 'm', stored: false, reason: 'none' });
  // A member of the build before sends no bytes: its partial still counts, with 0 bytes.
  const { bytesIn: _, ...older } = notice;
  assert.deepEqual(parseStoredNotice(older), { ...older, stored: true, bytesIn: 0 });
  assert.deepEqual(parsePartialReply({ node: 'm', stored: true, contributors: ['a'] }), {
    node: 'm',
    stored: true,
    contributors: ['a'],
    bytesIn: 0,
  });
  for (const bytesIn of [null, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '12']) {
    assert.equal(parseStoredNotice({ ...notice, bytesIn }), undefined, `notice with bytesIn ${String(bytesIn)}`);
    assert.equal(parsePartialReply({ ...reply, bytesIn }), undefined, `reply with bytesIn ${String(bytesIn)}`);
  }
  assert.equal(parseStoredNotice({ ...notice, contributors: ['a', 3] }), undefined);
});
