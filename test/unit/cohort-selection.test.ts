import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formCohorts } from '../../coordinator/cluster/cohort-selection.ts';
import { remoteRecord } from '../../coordinator/rounds/remote-rounds.ts';

/** Participants named `<node>-<n>`: their node is the name's prefix. */
const records = (...ids: string[]) => ids.map((id) => remoteRecord(id, 10, id));
const nodeOf = (id: string) => id.split('-')[0]!;
const ids = (list: readonly { readonly id: string }[]) => list.map((p) => p.id);

test('a node sampled with fewer than k participants gets no cohort; the others keep theirs', () => {
  const candidates = records('a-1', 'a-2', 'a-3', 'b-1', 'b-2');
  assert.deepEqual(ids(formCohorts(candidates, candidates, { minCohort: 3, wanted: 6, nodeOf })), ['a-1', 'a-2', 'a-3']);
  // With k = 2, both nodes keep their cohorts.
  assert.deepEqual(ids(formCohorts(candidates, candidates, { minCohort: 2, wanted: 6, nodeOf })), ids(candidates));
});

test('nodes that keep a cohort are topped up from their own unselected candidates, up to the number wanted', () => {
  const candidates = records('a-1', 'a-2', 'a-3', 'a-4', 'a-5', 'b-1', 'b-2', 'b-3', 'c-1', 'c-2', 'c-3');
  const sampled = records('a-1', 'a-2', 'a-3', 'b-1', 'c-1', 'c-2');
  // b and c fall below k = 3; a keeps its cohort and takes a-4 and a-5 (never b's or c's).
  assert.deepEqual(ids(formCohorts(sampled, candidates, { minCohort: 3, wanted: 6, nodeOf })), ['a-1', 'a-2', 'a-3', 'a-4', 'a-5']);
  // Never more than wanted.
  assert.deepEqual(ids(formCohorts(sampled, candidates, { minCohort: 3, wanted: 4, nodeOf })), ['a-1', 'a-2', 'a-3', 'a-4']);
});

test('no node reaching k leaves nobody selected', () => {
  const candidates = records('a-1', 'a-2', 'b-1', 'b-2');
  assert.deepEqual(formCohorts(candidates, candidates, { minCohort: 3, wanted: 4, nodeOf }), []);
});
