import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../../coordinator/rounds/clock.ts';
import { secAggConfigFor, SecureRound, type SecureRoundOutcome } from '../../coordinator/rounds/secure-round.ts';
import { toBytes } from '../../core/protocol/secagg-wire.ts';
import type { RoundParticipantOutcome, SecureAggregationSettings } from '../../core/protocol/status.ts';
import {
  SecAggClient,
  type ForwardedSharesMessage,
  type KeyDirectoryMessage,
  type UnmaskRequestMessage,
} from '../../core/secagg/protocol.ts';
import { EngineHarness } from '../helpers/engine-harness.ts';
import { SecureHarness } from '../helpers/secure-harness.ts';

const SECURE: SecureAggregationSettings = { neighbours: 'all', clipRange: 8, quantizationRange: 2 ** 22, stepTimeoutMs: 1000 };

describe('round engine with secure aggregation', () => {
  it('aborts a round whose participants never advertise keys, reveals nothing, and goes on with the next round', async () => {
    const h = new EngineHarness({
      minClients: 3,
      clientsPerRound: 3,
      rounds: 3,
      secureAggregation: { neighbours: 'all', clipRange: 8, quantizationRange: 2 ** 22, stepTimeoutMs: 1000 },
    });
    for (let i = 0; i < 3; i++) h.join();
    h.engine.start();
    await h.settle();
    assert.equal(h.selectedIn(1).length, 3);
    const start = h.starts.find((s) => s.message.round === 1)!.message;
    assert.ok(start.secagg, 'round:start carries the secagg config');
    assert.deepEqual(
      h.starts
        .filter((s) => s.message.round === 1)
        .map((s) => s.message.secagg!.index)
        .sort(),
      [1, 2, 3],
    );
    // Refused: a plain update in a secure round.
    const plain = h.engine.submitUpdate(h.selectedIn(1)[0]!, h.update(1, [1, 1, 1, 1]));
    assert.equal(plain.ok, false);
    h.clock.advance(1000);
    await h.settle();
    const record = h.engine.status().history[0]!;
    assert.equal(record.outcome, 'skipped');
    assert.match(record.reason!, /secure aggregation aborted: fewer than t survivors at step 0/);
    assert.equal(record.secagg?.advertised, 0);
    assert.equal(h.engine.globalModel.version, 0);
    assert.ok(h.selectedIn(2).length > 0, 'the federation went on with round 2');
  });

  it('records who advertised keys in a round that aborts at that step, as its reason counts them', async () => {
    // Three selected (t = 3): one advertises, two never do. The record and the reason must agree on one.
    const h = new SecureHarness({ minClients: 3, clientsPerRound: 3, rounds: 1, secureAggregation: SECURE });
    for (let i = 0; i < 3; i++) h.join();
    h.engine.start();
    await h.settle();
    const { participantId, message } = h.starts.find((s) => s.message.round === 1)!;
    const { config, index } = message.secagg!;
    const client = await SecAggClient.create({ ...config, roundSeed: toBytes(config.roundSeed) }, index);
    assert.ok((await h.engine.submitSecAgg(participantId, 'advertise', client.advertise())).ok);
    h.clock.advance(1000);
    await h.settle();
    const record = h.engine.status().history[0]!;
    assert.equal(record.outcome, 'skipped');
    assert.equal(record.secagg?.advertised, 1);
    assert.doesNotMatch(record.reason!, /1 participants/);
  });

  it('records an operator stop as the reason a secure round ended, not as too few survivors', async () => {
    const h = new EngineHarness({ minClients: 3, clientsPerRound: 3, secureAggregation: SECURE });
    for (let i = 0; i < 3; i++) h.join();
    h.engine.start();
    await h.settle();
    const stopped = h.engine.stop();
    await h.settle(); // the abort runs on the round's queue, the close on the clock
    const final = await stopped;
    const record = final.history[0]!;
    assert.equal(record.outcome, 'skipped');
    assert.match(record.reason!, /^secure aggregation aborted: stopped by the operator at step 0 \(advertise\); the model is unchanged$/);
    assert.equal(record.secagg?.aborted, 'stopped by the operator at step 0 (advertise)');
  });

  it('records parameters the core refuses as refused at setup', async () => {
    // Two selected: a secure sum of two would reveal each update to the other, so the core refuses the config.
    const h = new EngineHarness({ minClients: 2, clientsPerRound: 2, rounds: 1, secureAggregation: SECURE });
    h.join();
    h.join();
    h.engine.start();
    await h.settle();
    const final = await h.engine.done;
    assert.match(
      final.history[0]!.reason!,
      /^secure aggregation aborted: refused \(invalid-config\) at setup: secure aggregation needs at least 3 participants/,
    );
  });
});

describe('secure round timeline', () => {
  it('keeps a participant whose masked input was accepted as received, whatever it does next, and counts from the timeline', async () => {
    // Ten selected (t = 6): c leaves before its masked input; after theirs, a disconnects, b declines and
    // d is excluded at unmasking. The other six unmask, so all nine masked inputs are in the decoded sum.
    const h = new SecureHarness({ minClients: 10, clientsPerRound: 10, rounds: 1, secureAggregation: SECURE });
    for (let i = 0; i < 10; i++) h.join();
    h.engine.start();
    await h.settle();
    const starts = h.starts.filter((s) => s.message.round === 1);
    assert.equal(starts.length, 10);
    const clients = new Map<string, SecAggClient>();
    for (const { participantId, message } of starts) {
      const { config, index } = message.secagg!;
      clients.set(participantId, await SecAggClient.create({ ...config, roundSeed: toBytes(config.roundSeed) }, index));
    }
    const [a, b, c, d] = [...clients.keys()] as [string, string, string, string];

    for (const [id, client] of clients) assert.ok((await h.engine.submitSecAgg(id, 'advertise', client.advertise())).ok);
    await h.until(() => h.sent('secagg:keys').size === 10, 'the key directory');
    for (const [id, directory] of h.sent('secagg:keys')) {
      assert.ok((await h.engine.submitSecAgg(id, 'shares', await clients.get(id)!.shareKeys(directory as KeyDirectoryMessage))).ok);
    }
    await h.until(() => h.sent('secagg:forwarded').size === 10, 'the forwarded shares');
    h.engine.leave(c);
    h.clock.advance(3000); // masked inputs arrive 3 s into the round
    for (const [id, forwarded] of h.sent('secagg:forwarded')) {
      if (id === c) continue;
      const masked = await clients.get(id)!.maskInput(forwarded as ForwardedSharesMessage, Float32Array.from([0.5, 0, 0, 0]));
      assert.ok((await h.engine.submitSecAgg(id, 'masked', masked)).ok);
    }
    h.clock.advance(500);
    h.engine.leave(a);
    assert.ok(h.engine.decline(b, { round: 1, reason: 'budget spent', final: false }).ok);
    // The masked step closed with the ninth input, before a and b went: all nine are asked to unmask.
    await h.until(() => h.sent('secagg:unmask-request').size === 9, 'the unmasking request');
    for (const [id, request] of h.sent('secagg:unmask-request')) {
      if (id === a || id === b) continue;
      const response = await clients.get(id)!.unmask(request as UnmaskRequestMessage);
      // d names another index: refused, and d is out of the unmasking step.
      const sent = await h.engine.submitSecAgg(id, 'unmask', id === d ? { ...response, from: response.from === 1 ? 2 : 1 } : response);
      assert.equal(sent.ok, id !== d);
    }
    await h.until(() => h.engine.status().history.length === 1, 'the round to close');

    const record = h.engine.status().history[0]!;
    assert.equal(record.outcome, 'aggregated', record.reason);
    assert.equal(record.secagg?.masked, 9);
    const byId = new Map(record.participants!.map((p) => [p.id, p]));
    for (const id of [a, b, d]) assert.deepEqual(byId.get(id), { id, outcome: 'received', durationMs: 3000 });
    assert.deepEqual(byId.get(c), { id: c, outcome: 'dropped', durationMs: 0, reason: 'disconnected' });
    assert.deepEqual(
      { received: record.received, dropped: record.dropped, rejected: record.rejected, declined: record.declined },
      { received: 9, dropped: 1, rejected: 0, declined: 0 },
    );
    const counted = (o: RoundParticipantOutcome) => record.participants!.filter((p) => p.outcome === o).length;
    assert.deepEqual([counted('received'), counted('dropped'), counted('rejected'), counted('declined')], [9, 1, 0, 0]);
    assert.deepEqual(record.rejectionReasons, {}, 'no one counted as rejected is missing from the timeline');
    assert.equal(h.engine.status().participants.find((p) => p.id === a)?.roundsContributed, 1);
  });
});

describe('SecureRound aborts', () => {
  it("keeps the caller's reason for an abort (the round deadline), with the step it came at", async () => {
    const clock = new ManualClock();
    const outcomes: SecureRoundOutcome[] = [];
    const round = new SecureRound(
      secAggConfigFor(1, 3, 4, SECURE),
      ['a', 'b', 'c'],
      {
        clock,
        send: () => {},
        out: () => {},
        accepted: () => {},
        done: (outcome) => outcomes.push(outcome),
      },
      { stepMs: 1000, maskedMs: 5000 },
    );
    round.abort('the round deadline passed');
    await round.settled();
    assert.deepEqual(outcomes, [{ ok: false, reason: 'secure aggregation aborted: the round deadline passed at step 0 (advertise)' }]);
    assert.equal(round.stats.aborted, 'the round deadline passed at step 0 (advertise)');
    // The step's own timer was cleared with the abort: nothing more is reported.
    clock.advance(1000);
    await round.settled();
    assert.equal(outcomes.length, 1);
  });
});

describe('SecureRound with a cohort minimum k (a cluster node, docs/cluster.md)', () => {
  it('aborts before any unmask request when fewer than k masked inputs arrived, though t would allow unmasking', async () => {
    const clock = new ManualClock();
    const ids = ['a', 'b', 'c', 'd'];
    const config = secAggConfigFor(1, ids.length, 4, SECURE);
    assert.ok(config.threshold <= 3, 't lets three survivors unmask: only k stops them');
    const outcomes: SecureRoundOutcome[] = [];
    const sent: string[] = [];
    const inbox = new Map<string, KeyDirectoryMessage | ForwardedSharesMessage | UnmaskRequestMessage>();
    const round = new SecureRound(
      config,
      ids,
      {
        clock,
        send: (id, out) => {
          sent.push(out.event);
          inbox.set(id, out.message);
        },
        out: () => {},
        accepted: () => {},
        done: (outcome) => outcomes.push(outcome),
      },
      { stepMs: 1000, maskedMs: 5000 },
      undefined,
      undefined,
      4,
    );
    const clients = await Promise.all(ids.map((_, i) => SecAggClient.create(config, i + 1)));
    for (const [i, id] of ids.entries()) assert.ok((await round.submit(id, 'advertise', clients[i]!.advertise())).ok);
    await round.settled();
    for (const [i, id] of ids.entries())
      assert.ok((await round.submit(id, 'shares', await clients[i]!.shareKeys(inbox.get(id) as KeyDirectoryMessage))).ok);
    await round.settled();
    // Three of the four send their masked input; the fourth misses the step's deadline.
    for (const [i, id] of ids.slice(0, 3).entries()) {
      const masked = await clients[i]!.maskInput(inbox.get(id) as ForwardedSharesMessage, new Float32Array([0.5, -0.25, 1, 0]));
      assert.ok((await round.submit(id, 'masked', masked)).ok);
    }
    clock.advance(5000);
    await round.settled();
    assert.deepEqual(
      sent.filter((event) => event === 'secagg:unmask-request'),
      [],
      'no unmask request went out',
    );
    assert.deepEqual(outcomes, [
      { ok: false, reason: 'secure aggregation aborted: cohort below k: 3 masked inputs, at least 4 needed at step 2 (masked)' },
    ]);
  });
});
