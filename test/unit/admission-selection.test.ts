import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConnectionAdmission, type PendingTransport } from '../../coordinator/security/admission.ts';
import { CredentialSet, mintCredentials, parseCredentialFile, revokeCredentials } from '../../coordinator/security/credentials.ts';
import { DepartedParticipants } from '../../coordinator/rounds/participant-registry.ts';
import { quorumMet } from '../../coordinator/rounds/quorum.ts';
import { DeliveryRecord, hasOwnSelection, weightedSample } from '../../coordinator/rounds/selection.ts';
import { FedAvg } from '../../core/aggregation/fedavg.ts';
import { DpFedAvg } from '../../core/aggregation/dp-fedavg.ts';
import { StrategyWrapper } from '../../core/aggregation/wrapper.ts';
import { MAX_DEPARTED_PARTICIPANTS, STATUS_PARTICIPANTS_LISTED } from '../../coordinator/rounds/round-engine.ts';
import { SeededRandom } from '../../core/random/prng.ts';
import { runTokensCli } from '../../coordinator/tokens-cli.ts';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { EngineHarness } from '../helpers/engine-harness.ts';
import { ConfigError, parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { writeFile } from 'node:fs/promises';

function transport(address: string, closed: string[], name: string): PendingTransport {
  return { address, close: () => closed.push(name) };
}

describe('connection admission', () => {
  it('waiting transports hold no slot: a full pool pushes out its oldest, per address first', () => {
    const admission = new ConnectionAdmission({ maxConnections: 3, maxPerIp: 3, pendingCap: 4, pendingPerIp: 2 });
    const closed: string[] = [];
    const a1 = transport('A', closed, 'a1');
    admission.transportOpened(a1);
    admission.transportOpened(transport('A', closed, 'a2'));
    admission.transportOpened(transport('A', closed, 'a3'));
    assert.deepEqual(closed, ['a1'], "the address's oldest made room");
    admission.transportOpened(transport('B', closed, 'b1'));
    admission.transportOpened(transport('C', closed, 'c1'));
    assert.deepEqual(closed, ['a1'], 'room left in the pool');
    admission.transportOpened(transport('D', closed, 'd1'));
    assert.deepEqual(closed, ['a1', 'a2'], "the pool's oldest made room");
    assert.equal(admission.waiting, 4);
    assert.equal(admission.transportRefusal('D'), undefined, 'never refused while slots are left');
  });

  it('only authenticated sockets take slots; at the cap, transports beyond the pool are refused', () => {
    const admission = new ConnectionAdmission({ maxConnections: 2, maxPerIp: 2, pendingCap: 2, pendingPerIp: 2 });
    const closed: string[] = [];
    const t1 = transport('A', closed, 't1');
    const t2 = transport('B', closed, 't2');
    admission.transportOpened(t1);
    admission.transportOpened(t2);
    admission.authenticate(t1, 'A', 'c1');
    admission.authenticate(t2, 'B', undefined);
    assert.equal(admission.authenticated, 2);
    assert.equal(admission.waiting, 0);
    assert.match(admission.slotRefusal('C', undefined, 2)!, /limit of 2 connections/);
    assert.equal(admission.transportRefusal('C'), undefined, 'room in the pool: the namespace answers with a code');
    admission.transportOpened(transport('C', closed, 'w1'));
    admission.transportOpened(transport('C', closed, 'w2'));
    assert.match(admission.transportRefusal('C')!, /limit of 2 connections/);
    assert.deepEqual(closed, [], 'at the cap, nobody is pushed out');
    admission.release('A', 'c1');
    assert.equal(admission.slotRefusal('C', undefined, 2), undefined);
  });

  it('per address and per credential', () => {
    const admission = new ConnectionAdmission({ maxConnections: 10, maxPerIp: 2, pendingCap: 10, pendingPerIp: 5 });
    const t = (n: string) => transport('A', [], n);
    admission.authenticate(t('1'), 'A', 'c1');
    assert.match(admission.slotRefusal('B', 'c1', 1)!, /credential already holds 1/);
    assert.equal(admission.slotRefusal('B', 'c2', 1), undefined);
    admission.authenticate(t('2'), 'A', 'c2');
    assert.match(admission.slotRefusal('A', 'c3', 1)!, /address already holds 2/);
  });
});

describe('credentials', () => {
  it('are minted with fresh ids and secret tokens, kept as digests, identified in constant time, and revoked by id', () => {
    const first = mintCredentials([], 3);
    const more = mintCredentials(first.entries, 2);
    assert.deepEqual(
      more.entries.map((e) => e.id),
      ['c0004', 'c0005'],
    );
    const file = parseCredentialFile(JSON.stringify({ version: 1, credentials: [...first.entries, ...more.entries] }), 'test.json');
    const text = JSON.stringify(file);
    for (const { token } of [...first.tokens, ...more.tokens]) assert.ok(!text.includes(token), 'the file holds no token');
    const set = new CredentialSet(file);
    assert.equal(set.identify(first.tokens[1]!.token), 'c0002');
    assert.equal(set.identify('not-a-credential-token-000'), undefined);
    assert.equal(set.identify(undefined), undefined);
    const revoked = new CredentialSet(revokeCredentials(file, ['c0002']));
    assert.equal(revoked.identify(first.tokens[1]!.token), undefined);
    assert.equal(revoked.identify(first.tokens[0]!.token), 'c0001');
    assert.throws(() => revokeCredentials(file, ['c0099']), /no credential with id c0099/);
  });

  it('npm run tokens mints (tokens only in the 0600 --out file), revokes and lists', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'fl-tokens-'));
    try {
      const file = path.join(dir, 'credentials.json');
      const out = path.join(dir, 'tokens.txt');
      const lines: string[] = [];
      await runTokensCli(['--file', file, '--count', '3', '--out', out], (l) => lines.push(l));
      const tokens = (await readFile(out, 'utf8'))
        .trim()
        .split('\n')
        .map((l) => l.split(' ') as [string, string]);
      assert.deepEqual(
        tokens.map(([id]) => id),
        ['c0001', 'c0002', 'c0003'],
      );
      assert.equal((await stat(out)).mode & 0o777, 0o600);
      const stored = await readFile(file, 'utf8');
      for (const [, token] of tokens) assert.ok(!stored.includes(token) && !lines.join('\n').includes(token));
      await runTokensCli(['--file', file, '--revoke', 'c0002', '--list'], (l) => lines.push(l));
      const set = new CredentialSet(parseCredentialFile(await readFile(file, 'utf8'), file));
      assert.deepEqual(
        tokens.map(([, token]) => set.identify(token)),
        ['c0001', undefined, 'c0003'],
      );
      assert.ok(lines.some((l) => /^c0002 +revoked/.test(l)));
      await assert.rejects(
        runTokensCli(['--file', file, '--revoke', 'c0404'], () => {}),
        /no credential with id c0404/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('flags: credentials file, limits and grace are checked at start', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'fl-flags-'));
    try {
      const file = path.join(dir, 'credentials.json');
      await writeFile(file, JSON.stringify({ version: 1, credentials: mintCredentials([], 1).entries }));
      const config = parseConfig(
        ['--credentials', file, '--max-connections-per-ip', '7', '--participant-grace', '30'],
        {},
      ) as CoordinatorConfig;
      assert.ok(config.security);
      assert.equal(config.security.credentials!.set.size, 1);
      assert.equal(config.security.maxConnectionsPerIp, 7);
      assert.equal(config.security.maxConnectionsPerCredential, 2);
      assert.equal(config.security.participantGraceMs, 30_000);
      config.security.credentials!.close();
      for (const [args, pattern] of [
        [['--credentials', path.join(dir, 'missing.json')], /--credentials .*no such file/],
        [['--credentials', file, '--open'], /--open and --credentials contradict/],
        [['--max-connections-per-ip', '0'], /--max-connections-per-ip must be a positive integer/],
        [['--max-connections-per-credential', 'x'], /--max-connections-per-credential must be a positive integer/],
        [['--participant-grace=-1'], /--participant-grace must be a number of seconds/],
      ] as const) {
        assert.throws(
          () => parseConfig([...args], {}),
          (e: Error) => e instanceof ConfigError && pattern.test(e.message),
          args.join(' '),
        );
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a bad file is refused with where, never with a digest', () => {
    assert.throws(() => parseCredentialFile('{', 'f.json'), /f\.json: not JSON/);
    assert.throws(
      () => parseCredentialFile('{"version":1,"credentials":[{"id":"a","sha256":"xyz","created":"t"}]}', 'f.json'),
      /credential #1 \(a\): "sha256"/,
    );
    const entry = { id: 'a', sha256: 'a'.repeat(64), created: 't' };
    assert.throws(() => parseCredentialFile(JSON.stringify({ version: 1, credentials: [entry, entry] }), 'f.json'), /id a appears twice/);
  });
});

describe('reliability-weighted selection', () => {
  it('a newcomer weighs 1/2, a deliverer more, a participant that never delivered less and less; declines are neutral', () => {
    const record = new DeliveryRecord();
    assert.equal(record.weight('new'), 0.5);
    for (let i = 0; i < 3; i++) record.record('good', true);
    record.record('bad', false);
    assert.ok(!record.neverDelivered('bad'), 'one miss is not yet a record');
    record.record('bad', false);
    record.record('bad', undefined);
    assert.equal(record.weight('good'), 4 / 5);
    assert.equal(record.weight('bad'), 1 / 4);
    assert.ok(record.neverDelivered('bad'));
    assert.ok(!record.neverDelivered('good'));
  });

  it('applies unless the strategy, under any wrappers, selects its own way (DP-FedAvg)', () => {
    class Bound extends StrategyWrapper {
      readonly name = 'bound';
    }
    assert.equal(hasOwnSelection(new FedAvg()), false);
    assert.equal(hasOwnSelection(new Bound(new Bound(new FedAvg()))), false, 'wrappers only pass selection on');
    const dp = new DpFedAvg({
      placement: 'central',
      noiseMultiplier: 1,
      clip: { kind: 'fixed', norm: 1 },
      sampleRate: 0.5,
      expectedClients: 4,
      delta: 1e-5,
    });
    assert.equal(hasOwnSelection(new Bound(dp)), true);
  });

  it('draws in proportion to weight, and uniformly (as before) when all weights are equal', () => {
    const items = Array.from({ length: 20 }, (_, i) => i);
    const counts = new Array<number>(20).fill(0);
    const random = new SeededRandom(11);
    for (let t = 0; t < 2000; t++) for (const i of weightedSample(items, 5, (i) => (i < 10 ? 0.9 : 0.1), random)) counts[i]!++;
    const reliable = counts.slice(0, 10).reduce((a, b) => a + b, 0);
    assert.ok(reliable > 0.8 * 2000 * 5, `reliable ones drew ${reliable} of ${2000 * 5} slots`);
    const a = weightedSample(items, 5, () => 0.5, new SeededRandom(4));
    assert.equal(new Set(a).size, 5);
  });
});

describe('quorum', () => {
  const base = { selected: 6, received: 5, clientsPerRound: 5, minUpdates: 1, outstanding: 1, outstandingNeverDelivered: () => 0 };
  it('with over-selection, closes once clientsPerRound updates are in', () => {
    assert.match(quorumMet(base)!, /over-selection/);
    assert.equal(quorumMet({ ...base, received: 4 }), undefined);
    assert.equal(quorumMet({ ...base, selected: 5, received: 4 }), undefined, 'no over-selection: everyone is waited for');
  });
  it('does not wait for participants that never delivered, once minUpdates are in', () => {
    const input = {
      ...base,
      selected: 5,
      received: 2,
      minUpdates: 2,
      outstanding: 3,
      outstandingNeverDelivered: () => 3,
    };
    assert.match(quorumMet(input)!, /never delivered/);
    assert.equal(quorumMet({ ...input, received: 1 }), undefined, 'fewer than minUpdates');
    const notAsked = () => assert.fail('the never-deliverers are counted only when the rest of the rule holds');
    assert.equal(quorumMet({ ...input, received: 1, outstandingNeverDelivered: notAsked }), undefined);
    assert.equal(
      quorumMet({ ...input, outstanding: 2, outstandingNeverDelivered: () => 1 }),
      undefined,
      'someone with no such record is still out',
    );
  });
});

describe('round engine: quorum and behaviour', () => {
  it('with over-selection a round closes as soon as clientsPerRound updates are in', async () => {
    const h = new EngineHarness({ minClients: 4, clientsPerRound: 2, overSelect: 1 });
    for (let i = 0; i < 4; i++) h.join();
    h.engine.start();
    await h.settle();
    const chosen = h.selectedIn(1);
    assert.equal(chosen.length, 4);
    assert.ok(h.engine.submitUpdate(chosen[0]!, h.update(1, [0.1, 0, 0, 0])).ok);
    await h.settle();
    assert.equal(h.ends.length, 0, 'one of two: still open');
    assert.ok(h.engine.submitUpdate(chosen[1]!, h.update(1, [0.1, 0, 0, 0])).ok);
    await h.settle();
    assert.equal(h.ends.length, 1, 'closed before the deadline');
    const record = h.engine.status().history[0]!;
    assert.equal(record.received, 2);
    assert.equal(record.dropped, 2);
    assert.match(record.participants!.find((p) => p.outcome === 'dropped')!.reason!, /quorum/);
  });

  it('40 Sybils that join and never train stall two rounds at most; then each round closes as soon as the honest updates are in', async () => {
    const h = new EngineHarness({ minClients: 3, clientsPerRound: 50, minUpdates: 1, rounds: 6, roundTimeoutMs: 30_000 });
    const honest = [h.join(), h.join(), h.join()];
    for (let i = 0; i < 40; i++) h.join();
    h.engine.start();
    await h.settle();
    const durations: number[] = [];
    for (let round = 1; round <= 5; round++) {
      const start = h.clock.now();
      for (const id of honest.filter((id) => h.selectedIn(round).includes(id)))
        assert.ok(h.engine.submitUpdate(id, h.update(round, [0.1, 0, 0, 0])).ok);
      await h.settle();
      if (h.ends.length < round) {
        h.clock.advance(30_000);
        await h.settle();
      }
      assert.equal(h.ends.length, round);
      durations.push(h.clock.now() - start);
    }
    // Rounds 1 and 2 had no record to go by; from round 3 each closed with the honest updates, at once.
    assert.deepEqual(durations, [30_000, 30_000, 0, 0, 0], `round durations ${durations}`);
    const history = h.engine.status().history;
    assert.deepEqual(
      history.map((r) => [r.outcome, r.received, r.dropped]),
      Array(5).fill(['aggregated', 3, 40]),
    );
    assert.match(history[2]!.participants!.find((p) => !honest.includes(p.id))!.reason!, /never delivered/);
  });
});

/** A full GC, so heap readings compare retained memory (the runner has no --expose-gc). */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

describe('participant records under churn', () => {
  it('10,000 join/leave cycles: the live list, the status and the heap stay flat', () => {
    const h = new EngineHarness({ minClients: 1_000_000 });
    const sizes: number[] = [];
    const heaps: number[] = [];
    const rss: number[] = [];
    const measure = () => {
      sizes.push(JSON.stringify(h.engine.dashboardStatus()).length);
      collectGarbage();
      heaps.push(process.memoryUsage().heapUsed);
      rss.push(process.memoryUsage().rss);
    };
    for (let cycle = 1; cycle <= 10_000; cycle++) {
      const id = h.join();
      h.engine.leave(id);
      h.clock.advance(10);
      if (cycle % 2500 === 0) measure();
    }
    const status = h.engine.dashboardStatus();
    assert.ok(status.participantTotals!.known <= MAX_DEPARTED_PARTICIPANTS, `known ${status.participantTotals!.known}`);
    assert.ok(status.participants.length <= STATUS_PARTICIPANTS_LISTED);
    assert.ok(Math.max(...sizes) <= sizes[0]! * 1.05, `status sizes ${sizes}`);
    // One record kept per cycle would add well over 2 MB of heap over the last 7,500 cycles.
    assert.ok(Math.max(...heaps) - heaps[0]! < 2e6, `heap ${heaps}`);
    // Past the grace period (120 s by default) every departed record is gone.
    h.clock.advance(121_000);
    const after = h.engine.dashboardStatus();
    assert.equal(after.participantTotals!.known, 0);
    assert.ok(JSON.stringify(after).length < 3000, `${JSON.stringify(after).length} bytes`);
    console.log(
      `# status bytes at 2.5k/5k/7.5k/10k cycles: ${sizes.join(', ')}; heap MB: ${heaps.map((b) => (b / 1e6).toFixed(1)).join(', ')}; RSS MB: ${rss.map((b) => (b / 1e6).toFixed(0)).join(', ')}; after the grace: ${JSON.stringify(after).length} bytes`,
    );
  });

  it('departed records: grace period, a hard bound, and selected ones kept for later', () => {
    const d = new DepartedParticipants(1000, 3);
    for (let i = 0; i < 5; i++) d.left(`p${i}`, i);
    assert.deepEqual(
      d.expire(10, () => false),
      ['p0', 'p1'],
      'beyond 3 kept, the oldest go at once',
    );
    d.returned('p2');
    assert.deepEqual(
      d.expire(2000, (id) => id === 'p3'),
      ['p4'],
    );
    assert.equal(d.size, 1, 'p3 is kept while selected');
  });
});
