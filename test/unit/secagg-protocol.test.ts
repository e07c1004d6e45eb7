import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SeededRandom } from '../../core/random/prng.ts';
import { addGaussianNoise, GaussianSampler } from '../../core/privacy/update-privacy.ts';
import { sha256 } from '../../core/secagg/bytes.ts';
import { SecAggAbortError, SecAggError, type SecAggErrorCode } from '../../core/secagg/errors.ts';
import { buildNeighbourGraph, connectedAmong, type NeighbourGraph } from '../../core/secagg/graph.ts';
import {
  recommendedThreshold,
  SecAggClient,
  SecAggServer,
  SHARE_CIPHERTEXT_BYTES,
  validateConfig,
  type SecAggConfig,
  type UnmaskResponseMessage,
} from '../../core/secagg/protocol.ts';
import { quantizationStep } from '../../core/secagg/quantize.ts';
import { runLocalRound, type Transcript } from '../../core/secagg/simulate.ts';

const LENGTH = 20_000;
const N = 10;

async function seedFrom(label: string): Promise<Uint8Array> {
  return sha256(new TextEncoder().encode(label));
}

async function configFor(neighbours: number | 'all', overrides: Partial<SecAggConfig> = {}): Promise<SecAggConfig> {
  return {
    round: 3,
    participants: N,
    neighbours,
    threshold: recommendedThreshold(N, neighbours),
    roundSeed: await seedFrom(`round seed ${String(neighbours)}`),
    vectorLength: LENGTH,
    quantization: { clipRange: 2, quantizationRange: 2 ** 22 },
    ...overrides,
  };
}

/** Updates mostly inside [−2, 2] with a few coordinates that get clipped. */
const updates = new Map<number, Float32Array>();
for (let u = 1; u <= N; u++) {
  const r = new SeededRandom(1000 + u);
  updates.set(
    u,
    Float32Array.from({ length: LENGTH }, (_, i) => (i % 997 === 0 ? 3 * (2 * r.next() - 1) : 0.8 * (2 * r.next() - 1))),
  );
}
const clip = (x: number, c: number): number => Math.max(-c, Math.min(c, x));

function plaintextSum(members: readonly number[], c: number): Float64Array {
  const out = new Float64Array(LENGTH);
  for (const u of members) {
    const x = updates.get(u)!;
    for (let i = 0; i < LENGTH; i++) out[i]! += clip(x[i]!, c);
  }
  return out;
}

/** Per owner: how many holders sent a self-mask share and how many a masking-key share. */
function shareCounts(responses: readonly UnmaskResponseMessage[]): Map<number, { selfMask: number; maskingKey: number }> {
  const out = new Map<number, { selfMask: number; maskingKey: number }>();
  const get = (owner: number) => {
    let counts = out.get(owner);
    if (counts === undefined) {
      counts = { selfMask: 0, maskingKey: 0 };
      out.set(owner, counts);
    }
    return counts;
  };
  for (const r of responses) {
    for (const s of r.selfMaskShares) get(s.owner).selfMask++;
    for (const s of r.maskingKeyShares) get(s.owner).maskingKey++;
  }
  return out;
}

function chiSquareBytes(words: Uint32Array): number {
  const bytes = new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
  const counts = new Array<number>(256).fill(0);
  for (const b of bytes) counts[b]!++;
  const expected = bytes.length / 256;
  return counts.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
}

function correlation(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i]!;
    mb += b[i]!;
  }
  ma /= n;
  mb /= n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = a[i]! - ma;
    const db = b[i]! - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  return sab / Math.sqrt(saa * sbb);
}

/** The checks every successful run must pass. */
function checkRun(
  config: SecAggConfig,
  transcript: Transcript,
  contributors: readonly number[],
  sum: Float64Array,
  errorBound: number,
): void {
  const c = config.quantization.clipRange;
  const expected = plaintextSum(contributors, c);
  assert.equal(errorBound, contributors.length * quantizationStep(config.quantization));
  let worst = 0;
  for (let i = 0; i < LENGTH; i++) worst = Math.max(worst, Math.abs(sum[i]! - expected[i]!));
  assert.ok(worst < errorBound, `worst error ${worst} ≥ bound ${errorBound}`);
  assert.ok(worst > 0, 'quantisation should leave some error: is the sum really decoded?');

  // The server never received t shares of both secrets of anyone; in fact never a share of the wrong kind.
  const survivors = new Set(transcript.request!.survivors);
  for (const [owner, counts] of shareCounts(transcript.unmask)) {
    assert.ok(!(counts.selfMask >= config.threshold && counts.maskingKey >= config.threshold), `both secrets of ${owner} reconstructible`);
    if (survivors.has(owner)) assert.equal(counts.maskingKey, 0, `masking-key share of survivor ${owner}`);
    else assert.equal(counts.selfMask, 0, `self-mask share of dropped ${owner}`);
  }

  // Each stored masked vector looks uniform and is uncorrelated with its plaintext.
  for (const m of transcript.masked) {
    const chi = chiSquareBytes(m.masked);
    assert.ok(chi < 400, `chi-square ${chi} of ${m.from}'s masked bytes (255 dof)`);
    const r = correlation(m.masked, updates.get(m.from)!);
    assert.ok(Math.abs(r) < 5 / Math.sqrt(LENGTH), `correlation ${r} of ${m.from}'s masked vector with its update`);
    const signed = Int32Array.from(m.masked, (w) => w | 0);
    assert.ok(Math.abs(correlation(signed, updates.get(m.from)!)) < 5 / Math.sqrt(LENGTH));
  }
}

/** SecAgg+ with a sparse graph tolerates only so many drop-outs per neighbourhood: pick a schedule the graph survives. */
function feasibleDropouts(graph: NeighbourGraph, t: number): { before: number; after: number[] } {
  const all = Array.from({ length: N }, (_, i) => i + 1);
  for (const before of all) {
    const rest = all.filter((u) => u !== before);
    for (let a = 0; a < rest.length; a++)
      for (let b = a + 1; b < rest.length; b++)
        for (let c = b + 1; c < rest.length; c++) {
          const after = [rest[a]!, rest[b]!, rest[c]!];
          const u4 = new Set(rest.filter((u) => !after.includes(u)));
          const liveHolders = (u: number) => [u, ...graph.neighbours(u)].filter((v) => u4.has(v)).length;
          if (rest.every((u) => liveHolders(u) >= t) && liveHolders(before) >= t && connectedAmong(graph, new Set(rest)))
            return { before, after };
        }
  }
  throw new Error('no drop-out schedule this graph survives');
}

const is = (code: SecAggErrorCode) => (e: unknown) => e instanceof SecAggError && e.code === code;

describe('secure aggregation round, in memory', () => {
  it('all pairs, 10 clients: 1 drops before its masked input, 3 before unmasking → the sum of the 9', async () => {
    const config = await configFor('all');
    assert.equal(config.threshold, 6);
    const round = await runLocalRound(config, (u) => updates.get(u)!, { dropouts: { beforeMaskedInput: [3], beforeUnmask: [5, 8, 10] } });
    const contributors = [1, 2, 4, 5, 6, 7, 8, 9, 10];
    assert.deepEqual(round.result.contributors, contributors);
    assert.deepEqual(round.transcript.request!.dropped, [3]);
    assert.equal(round.transcript.unmask.length, 6);
    for (const m of round.transcript.shareKeys) assert.equal(m.shares.length, N - 1);
    checkRun(config, round.transcript, contributors, round.result.sum, round.result.errorBound);
    // the server's own ledger agrees: one kind per owner, nothing left after finishing
    assert.equal(round.server.state, 'done');
  });

  for (const k of [4, 6]) {
    it(`SecAgg+ with k = ${k}, t = ${recommendedThreshold(N, k)}: same drop-outs (placed where the graph survives them)`, async () => {
      const config = await configFor(k);
      const graph = await buildNeighbourGraph(N, k, config.roundSeed);
      const { before, after } = feasibleDropouts(graph, config.threshold);
      const round = await runLocalRound(config, (u) => updates.get(u)!, { dropouts: { beforeMaskedInput: [before], beforeUnmask: after } });
      const contributors = Array.from({ length: N }, (_, i) => i + 1).filter((u) => u !== before);
      assert.deepEqual(round.result.contributors, contributors);
      for (const m of round.transcript.shareKeys) assert.equal(m.shares.length, k);
      for (const m of round.transcript.unmask) assert.ok(m.selfMaskShares.length + m.maskingKeyShares.length <= k + 1);
      checkRun(config, round.transcript, contributors, round.result.sum, round.result.errorBound);
    });
  }

  it('aborts with a clear error when too few answer the unmasking request, having reconstructed nothing', async () => {
    const config = await configFor('all');
    const before = [1, 2, 3, 4, 5];
    await assert.rejects(
      runLocalRound(config, (u) => updates.get(u)!, { dropouts: { beforeUnmask: before } }),
      (e: unknown) => {
        assert.ok(e instanceof SecAggAbortError, String(e));
        assert.match(e.message, /too few shares to unmask/);
        return true;
      },
    );
  });

  it('a participant reveals no share when fewer than the cohort minimum k survived, though the threshold allows it', async () => {
    const config = await configFor('all', { minSurvivors: 9 });
    const { server, clients, forwarded } = await throughShareKeys(config);
    for (const u of [1, 2, 3, 4, 5, 6, 7, 8]) await maskAndSend(server, clients.get(u)!, forwarded);
    const request = server.closeMaskedInput();
    assert.ok(request.survivors.length >= config.threshold, 'the threshold alone would unmask these 8');
    await assert.rejects(
      clients.get(1)!.unmask(request),
      (e: unknown) => e instanceof SecAggAbortError && /8 survivors, cohort minimum 9: no shares revealed/.test(e.message),
    );
    // k itself is enough.
    const enough = await configFor('all', { minSurvivors: 8 });
    const next = await throughShareKeys(enough);
    for (const u of [1, 2, 3, 4, 5, 6, 7, 8]) await maskAndSend(next.server, next.clients.get(u)!, next.forwarded);
    await next.clients.get(1)!.unmask(next.server.closeMaskedInput());
  });

  it('aborts before any share is revealed when fewer than t send masked inputs', async () => {
    const config = await configFor('all');
    const { server, clients, forwarded } = await throughShareKeys(config);
    for (const u of [1, 2, 3, 4, 5]) await maskAndSend(server, clients.get(u)!, forwarded);
    assert.throws(
      () => server.closeMaskedInput(),
      (e: unknown) => e instanceof SecAggAbortError && e.code === 'too-few-survivors',
    );
    assert.equal(server.state, 'aborted');
    assert.throws(() => server.receiveUnmask({ round: 3, from: 1, selfMaskShares: [], maskingKeyShares: [] }), is('aborted'));
    // and a client shown such a list refuses to reveal anything
    await assert.rejects(
      clients.get(1)!.unmask({ round: 3, survivors: [1, 2, 3, 4, 5], dropped: [6, 7, 8, 9, 10] }),
      (e: unknown) => e instanceof SecAggAbortError,
    );
  });

  it('SecAgg+ refuses to unmask survivors that are not connected in the graph (their partial sums would leak)', async () => {
    // k = 2: the graph is a ring; two drop-outs that are not adjacent cut it in two
    const config = await configFor(2, { threshold: 2 });
    const { server, clients, forwarded } = await throughShareKeys(config);
    const everyone = Array.from({ length: N }, (_, i) => i + 1);
    let cut: number[] | undefined;
    for (const a of everyone)
      for (const b of everyone)
        if (a < b && !connectedAmong(server.graph, new Set(everyone.filter((u) => u !== a && u !== b)))) cut ??= [a, b];
    assert.ok(cut !== undefined);
    const survivors = everyone.filter((u) => !cut!.includes(u));
    for (const u of survivors) await maskAndSend(server, clients.get(u)!, forwarded);
    assert.throws(
      () => server.closeMaskedInput(),
      (e: unknown) => e instanceof SecAggAbortError && /connected/.test(e.message),
    );
    // a client shown that list refuses as well
    await assert.rejects(
      clients.get(survivors[0]!)!.unmask({ round: 3, survivors, dropped: cut }),
      (e: unknown) => e instanceof SecAggAbortError && /connected/.test(e.message),
    );
  });

  it('clients add their share of DP noise before quantising (hook on a copy of the update)', async () => {
    const config = await configFor('all');
    const std = 0.05;
    const seen: number[] = [];
    const before = new Map([...updates].map(([u, x]) => [u, x.slice()]));
    const round = await runLocalRound(config, (u) => updates.get(u)!, {
      maskOptions: (u) => ({
        beforeQuantize: (values) => {
          assert.notEqual(values, updates.get(u));
          seen.push(u);
          addGaussianNoise(values, std, new GaussianSampler());
        },
      }),
    });
    assert.equal(seen.length, N);
    const expected = plaintextSum(round.result.contributors, config.quantization.clipRange);
    // noise of the sum: N(0, n·std²) (+ clipping of the few noised coordinates near ±c, + quantisation ≪ std)
    let mean = 0;
    let sq = 0;
    for (let i = 0; i < LENGTH; i++) {
      const d = round.result.sum[i]! - expected[i]!;
      mean += d;
      sq += d * d;
    }
    mean /= LENGTH;
    const sd = Math.sqrt(sq / LENGTH - mean * mean);
    const want = Math.sqrt(N) * std;
    assert.ok(Math.abs(sd / want - 1) < 0.05, `noise sd ${sd}, expected ${want}`);
    assert.ok(Math.abs(mean) < (5 * want) / Math.sqrt(LENGTH), `noise mean ${mean}`);
    // the noise went onto copies: every caller's update is exactly as it was
    for (const [u, x] of updates)
      assert.ok(Buffer.from(x.buffer).equals(Buffer.from(before.get(u)!.buffer)), `update of ${u} was modified`);
  });
});

async function throughShareKeys(config: SecAggConfig) {
  const server = await SecAggServer.create(config);
  const clients = new Map<number, SecAggClient>();
  for (let u = 1; u <= config.participants; u++) clients.set(u, await SecAggClient.create(config, u));
  for (const c of clients.values()) await server.receiveAdvertise(c.advertise());
  const directory = server.closeAdvertise();
  for (const c of clients.values()) server.receiveShareKeys(await c.shareKeys(directory));
  const forwarded = server.closeShareKeys();
  return { server, clients, forwarded };
}

async function maskAndSend(
  server: SecAggServer,
  client: SecAggClient,
  forwarded: ReturnType<SecAggServer['closeShareKeys']>,
): Promise<void> {
  const inbox = forwarded.find((f) => f.to === client.index)!;
  server.receiveMaskedInput(await client.maskInput(inbox, updates.get(client.index)!));
}

describe('protocol errors', () => {
  it('refuses unsafe or unusable configurations', async () => {
    const base = await configFor('all');
    assert.throws(() => validateConfig({ ...base, threshold: 5 }), is('invalid-config')); // not a majority of 10
    assert.throws(() => validateConfig({ ...base, threshold: 11 }), is('invalid-config'));
    assert.throws(() => validateConfig({ ...base, neighbours: 3, participants: 9 }), is('invalid-config')); // no 3-regular graph on 9
    assert.throws(() => validateConfig({ ...base, quantization: { clipRange: 1, quantizationRange: 2 ** 29 } }), is('invalid-config')); // 10 > max 7
    assert.throws(() => validateConfig({ ...base, roundSeed: new Uint8Array(8) }), is('invalid-config'));
    assert.throws(() => validateConfig({ ...base, participants: 2, threshold: 2 }), is('invalid-config'));
    assert.equal(validateConfig({ ...base, neighbours: 4, threshold: 3 }), 4);
  });

  it('server step 0/1: duplicates, wrong sizes, wrong round, unknown recipients, late and early messages', async () => {
    const config = await configFor(4);
    const server = await SecAggServer.create(config);
    const clients = await Promise.all(Array.from({ length: N }, (_, i) => SecAggClient.create(config, i + 1)));
    const ads = clients.map((c) => c.advertise());
    assert.throws(() => server.receiveShareKeys({ round: 3, from: 1, shares: [] }), is('out-of-order'));
    await assert.rejects(server.receiveAdvertise({ ...ads[0]!, round: 4 }), is('wrong-round'));
    await assert.rejects(server.receiveAdvertise({ ...ads[0]!, from: 11 }), is('unknown-participant'));
    await assert.rejects(server.receiveAdvertise({ ...ads[0]!, maskingKey: ads[0]!.maskingKey.subarray(1) }), is('wrong-size'));
    const offCurve = new Uint8Array(65);
    offCurve[0] = 4;
    await assert.rejects(server.receiveAdvertise({ ...ads[0]!, encryptionKey: offCurve }), is('invalid-crypto'));
    for (const ad of ads.slice(0, 9)) await server.receiveAdvertise(ad);
    await assert.rejects(server.receiveAdvertise(ads[0]!), is('duplicate'));
    const directory = server.closeAdvertise();
    await assert.rejects(server.receiveAdvertise(ads[9]!), is('late'));
    assert.equal(directory.keys.length, 9);

    const msg = await clients[0]!.shareKeys(directory);
    const nonNeighbour = [2, 3, 4, 5, 6, 7, 8, 9].find((v) => !server.graph.areNeighbours(1, v))!;
    assert.throws(
      () =>
        server.receiveShareKeys({ ...msg, shares: [...msg.shares.slice(1), { to: nonNeighbour, ciphertext: msg.shares[0]!.ciphertext }] }),
      is('unknown-recipient'),
    );
    assert.throws(() => server.receiveShareKeys({ ...msg, shares: [...msg.shares, msg.shares[0]!] }), is('duplicate'));
    assert.throws(() => server.receiveShareKeys({ ...msg, shares: msg.shares.slice(1) }), is('inconsistent'));
    assert.throws(
      () =>
        server.receiveShareKeys({
          ...msg,
          shares: msg.shares.map((s, i) => (i === 0 ? { ...s, ciphertext: s.ciphertext.subarray(0, SHARE_CIPHERTEXT_BYTES - 1) } : s)),
        }),
      is('wrong-size'),
    );
    assert.throws(() => server.receiveShareKeys({ ...msg, from: 10 }), is('unknown-participant')); // 10 never advertised
    server.receiveShareKeys(msg);
    assert.throws(() => server.receiveShareKeys(msg), is('duplicate'));
    // the client refuses a second directory, without aborting: it is a repeated call
    await assert.rejects(clients[0]!.shareKeys(directory), is('out-of-order'));
    assert.equal(clients[0]!.state, 'masked-input');
  });

  it('server step 2/3: wrong lengths, late inputs, and shares of the wrong kind (never both secrets of anyone)', async () => {
    const config = await configFor('all');
    const { server, clients, forwarded } = await throughShareKeys(config);
    assert.throws(() => server.receiveMaskedInput({ round: 3, from: 1, masked: new Uint32Array(LENGTH - 1) }), is('wrong-length'));
    for (let u = 1; u <= 9; u++) await maskAndSend(server, clients.get(u)!, forwarded);
    assert.throws(() => server.receiveMaskedInput({ round: 3, from: 1, masked: new Uint32Array(LENGTH) }), is('duplicate'));
    const request = server.closeMaskedInput();
    assert.deepEqual(request.dropped, [10]);
    await assert.rejects(maskAndSend(server, clients.get(10)!, forwarded), is('late'));

    const response = await clients.get(1)!.unmask(request);
    assert.equal(response.selfMaskShares.length, 9);
    assert.deepEqual(
      response.maskingKeyShares.map((s) => s.owner),
      [10],
    );
    // asking for a survivor's masking key, or a dropped participant's self mask, is refused whole
    assert.throws(
      () => server.receiveUnmask({ ...response, maskingKeyShares: [...response.maskingKeyShares, response.selfMaskShares[1]!] }),
      is('wrong-share-kind'),
    );
    assert.throws(
      () => server.receiveUnmask({ ...response, selfMaskShares: [...response.selfMaskShares, response.maskingKeyShares[0]!] }),
      is('wrong-share-kind'),
    );
    assert.throws(
      () => server.receiveUnmask({ ...response, selfMaskShares: [...response.selfMaskShares, response.selfMaskShares[0]!] }),
      is('duplicate'),
    );
    assert.throws(() => server.receiveUnmask({ ...response, selfMaskShares: [{ owner: 2, share: new Uint8Array(31) }] }), is('wrong-size'));
    assert.throws(() => server.receiveUnmask({ ...response, from: 10 }), is('unknown-participant'));
    assert.equal(
      [...server.shareLedger().values()].reduce((n, e) => n + e.count, 0),
      0,
      'refused messages leave nothing behind',
    );
    server.receiveUnmask(response);
    assert.throws(() => server.receiveUnmask(response), is('duplicate'));
    const ledger = server.shareLedger();
    assert.equal(ledger.get(10)!.kind, 'masking-key');
    assert.equal(ledger.get(2)!.kind, 'self-mask');
    // a client answers once: a second request (perhaps with other lists) is refused
    await assert.rejects(
      clients.get(1)!.unmask({ ...request, survivors: request.survivors.filter((u) => u !== 2), dropped: [2, 10] }),
      is('out-of-order'),
    );
  });

  it('clients refuse inconsistent requests and tampered ciphertexts, and then abort', async () => {
    const config = await configFor('all');
    const { server, clients, forwarded } = await throughShareKeys(config);
    const c1 = clients.get(1)!;
    const inbox = forwarded.find((f) => f.to === 1)!;
    const tampered = {
      ...inbox,
      shares: inbox.shares.map((s, i) => (i === 0 ? { ...s, ciphertext: s.ciphertext.map((b, j) => (j === 30 ? b ^ 1 : b)) } : s)),
    };
    await assert.rejects(c1.maskInput(tampered, updates.get(1)!), is('invalid-crypto'));
    assert.equal(c1.state, 'aborted');
    await assert.rejects(c1.maskInput(inbox, updates.get(1)!), is('aborted'));

    const c2 = clients.get(2)!;
    const inbox2 = forwarded.find((f) => f.to === 2)!;
    await assert.rejects(c2.maskInput(inbox2, new Float32Array(LENGTH + 1)), is('wrong-length'));
    const c3 = clients.get(3)!;
    await assert.rejects(
      c3.maskInput(
        {
          ...forwarded.find((f) => f.to === 3)!,
          shares: [...forwarded.find((f) => f.to === 3)!.shares, forwarded.find((f) => f.to === 3)!.shares[0]!],
        },
        updates.get(3)!,
      ),
      is('duplicate'),
    );
    const c4 = clients.get(4)!;
    server.receiveMaskedInput(await c4.maskInput(forwarded.find((f) => f.to === 4)!, updates.get(4)!));
    const everyone = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    await assert.rejects(c4.unmask({ round: 3, survivors: everyone.filter((u) => u !== 4), dropped: [4] }), is('inconsistent'));
    const c5 = clients.get(5)!;
    server.receiveMaskedInput(await c5.maskInput(forwarded.find((f) => f.to === 5)!, updates.get(5)!));
    await assert.rejects(c5.unmask({ round: 3, survivors: everyone.slice(0, 8), dropped: [] }), is('inconsistent')); // 9, 10 shared keys: must be listed
    const c6 = clients.get(6)!;
    server.receiveMaskedInput(await c6.maskInput(forwarded.find((f) => f.to === 6)!, updates.get(6)!));
    await assert.rejects(c6.unmask({ round: 3, survivors: everyone.slice(0, 8), dropped: [8, 9, 10] }), is('inconsistent')); // 8 in both
  });
});
