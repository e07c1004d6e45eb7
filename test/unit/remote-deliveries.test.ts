import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RemoteDeliveries } from '../../coordinator/cluster/remote-deliveries.ts';
import { MAX_DEPARTED_PARTICIPANTS, Participants } from '../../coordinator/rounds/participants.ts';
import { deliveryKeyOf, remoteRecord, type RemoteRounds } from '../../coordinator/rounds/remote-rounds.ts';
import { SeededRandom } from '../../core/random/prng.ts';

const GRACE_MS = 10_000;
const registry = () => new Participants({ graceMs: GRACE_MS, random: new SeededRandom(1) });
/** The part of the leader's hook the engine asks for keys. */
const hook = (deliveries: RemoteDeliveries): Pick<RemoteRounds, 'deliveryKey'> => ({ deliveryKey: (id) => deliveries.deliveryKey(id) });

test("a participant keyed by its credential keeps its record when it moves from another node to the leader's own", () => {
  const participants = registry();
  const deliveries = new RemoteDeliveries(participants);
  // On a member, known to the leader by its directory entry: id m-7, credential cred-a.
  const remote = remoteRecord('m-7', 20, 'cred-a');
  deliveries.listedNow([remote], 0);
  deliveries.selected([remote], 0);
  const key = deliveryKeyOf(participants, hook(deliveries), 'm-7');
  assert.equal(key, 'cred-a');
  participants.deliveries.record(key!, false);
  participants.deliveries.record(key!, false);
  assert.ok(participants.deliveries.neverDelivered('cred-a'));
  // Its node dies (it leaves every directory, and the next round does not select it); it reconnects to the leader
  // with the same credential and gets a new id there.
  deliveries.listedNow([], 1);
  deliveries.selected([], 2);
  const local = participants.join({ backend: 'test', numExamples: 20 }, undefined, 'cred-a', () => false);
  assert.notEqual(local.id, 'm-7');
  assert.equal(deliveryKeyOf(participants, hook(deliveries), local.id), 'cred-a');
  assert.ok(participants.deliveries.neverDelivered(local.deliveryKey), 'the same record, whatever node it trained on');
  // A credential's record is never forgotten, however long the id it had on the member is gone.
  deliveries.listedNow([], GRACE_MS * 10);
  assert.ok(participants.deliveries.neverDelivered('cred-a'));
});

test("a remote participant's record keyed by its id is forgotten once it has been out of every directory for the grace, not while it trains", () => {
  const participants = registry();
  const deliveries = new RemoteDeliveries(participants);
  const a = remoteRecord('m-1', 10, 'm-1');
  const b = remoteRecord('m-2', 10, 'm-2');
  deliveries.listedNow([a, b], 0);
  participants.deliveries.record('m-1', false);
  participants.deliveries.record('m-2', false);
  // m-1 is selected: out of its node's directory while it trains, far longer than the grace.
  deliveries.selected([a], 500);
  deliveries.listedNow([b], 1_000);
  deliveries.listedNow([b], 1_000 + 3 * GRACE_MS);
  assert.equal(participants.deliveries.weight('m-1'), 1 / 3, 'kept while selected');
  // A new round without m-1, which is not listed: its grace starts now, not when it left the directory to train.
  const next = 2_000 + 3 * GRACE_MS;
  deliveries.selected([b], next);
  deliveries.listedNow([], next + GRACE_MS - 1);
  assert.equal(participants.deliveries.weight('m-1'), 1 / 3, 'within its grace from the end of its selection');
  deliveries.listedNow([], next + GRACE_MS);
  assert.equal(participants.deliveries.weight('m-1'), 1 / 2, 'forgotten: a newcomer again');
  // m-2 is selected now and out of the directory longer than the grace: kept.
  deliveries.listedNow([], next + 5 * GRACE_MS);
  assert.equal(participants.deliveries.weight('m-2'), 1 / 3, 'selected now: kept');
  // m-2 comes back, then is no longer selected: listed, so kept.
  deliveries.listedNow([b], next + 6 * GRACE_MS);
  deliveries.selected([], next + 6 * GRACE_MS);
  deliveries.listedNow([b], next + 100 * GRACE_MS);
  assert.equal(participants.deliveries.weight('m-2'), 1 / 3);
});

test('a round selecting 1,000 remote participants does not push older records out before their grace', () => {
  const participants = registry();
  const deliveries = new RemoteDeliveries(participants);
  const old = remoteRecord('m-old', 10, 'm-old');
  deliveries.listedNow([old], 0);
  participants.deliveries.record('m-old', false);
  deliveries.listedNow([], 1);
  const cohort = Array.from({ length: MAX_DEPARTED_PARTICIPANTS }, (_, i) => remoteRecord(`m-${i}`, 10, `m-${i}`));
  deliveries.listedNow(cohort, 2);
  deliveries.selected(cohort, 3);
  // The cohort trains: out of its nodes' directories.
  deliveries.listedNow([], 4);
  assert.equal(participants.deliveries.weight('m-old'), 1 / 3, 'm-old left 3 ms ago: within its grace');
});
