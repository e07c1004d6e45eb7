import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { startCoordinator, type Coordinator } from '../../coordinator/server.ts';
import { ConformanceParticipant, loadShard } from './participant.ts';
import {
  addMask,
  ecdhPair,
  neighbourGraph,
  openShare,
  pairKey,
  prgWords,
  quantize,
  sealShare,
  shamirReconstruct,
  shamirSplit,
  FIELD_PRIME,
} from './secagg-primitives.ts';

/**
 * The doc is enough to build on (issue 16, item 6): a participant written
 * from docs/protocol.md alone (test/conformance/participant.ts, nothing from
 * core/) first reproduces every test vector of the doc with its own
 * primitives, then completes plain rounds and secure-aggregation rounds
 * (sparse SecAgg+ graph, one participant dropping after the key exchange)
 * against the real coordinator. The coordinator is started in-process only
 * to observe what it decoded; the participants talk to it over socket.io.
 */

const DOC = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');
const VECTORS = new Map<string, Map<string, string>>();
for (const match of DOC.matchAll(/```vectors (\S+)\n([\s\S]*?)```/g)) {
  VECTORS.set(
    match[1]!,
    new Map(
      match[2]!
        .trim()
        .split('\n')
        .map((line) => line.split(' = ').map((s) => s.trim()) as [string, string]),
    ),
  );
}
const vec = (block: string, key: string): string => {
  const value = VECTORS.get(block)?.get(key);
  assert.ok(value !== undefined, `docs/protocol.md: no ${key} in vectors ${block}`);
  return value;
};
const hex = (text: string): Buffer => Buffer.from(text, 'hex');
const words = (text: string): number[] => text.split(' ').map((w) => parseInt(w, 16));

const EXAMPLES = 240;

async function coordinatorWith(
  flags: string[],
  observe?: (sum: Float64Array, contributors: readonly string[], errorBound: number) => void,
): Promise<{ coordinator: Coordinator; dataDir: string }> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'fl-conformance-'));
  const config = parseConfig(
    ['--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, '--quiet', '--batch-size', '16', ...flags],
    {},
  ) as CoordinatorConfig;
  const coordinator = await startCoordinator(
    config,
    observe
      ? {
          secaggObserver: {
            masked: () => undefined,
            finished: (_round, result, contributors) => observe(result.sum, contributors, result.errorBound),
          },
        }
      : {},
  );
  return { coordinator, dataDir };
}

async function participants(url: string, count: number, drop?: { k: number; round: number }): Promise<ConformanceParticipant[]> {
  const out: ConformanceParticipant[] = [];
  for (let k = 1; k <= count; k++) {
    const examples = await loadShard(url, k, count, EXAMPLES);
    const p = new ConformanceParticipant(url, { examples, dropAfterForwardedInRound: drop?.k === k ? drop.round : undefined });
    await p.join();
    out.push(p);
  }
  return out;
}

describe('a participant written from docs/protocol.md alone', () => {
  it('imports only node built-ins, socket.io-client and its own files', () => {
    for (const file of ['participant.ts', 'secagg-primitives.ts']) {
      const source = readFileSync(new URL(file, import.meta.url), 'utf8');
      for (const [, from] of source.matchAll(/from '([^']+)'/g)) {
        assert.ok(from!.startsWith('node:') || from === 'socket.io-client' || /^\.\/[\w-]+\.ts$/.test(from!), `${file} imports ${from}`);
      }
    }
  });

  it('reproduces every secure aggregation test vector of the doc', () => {
    const a = ecdhPair(hex(vec('ecdh-p256', 'privateA')));
    assert.equal(a.publicKey.toString('hex'), vec('ecdh-p256', 'publicA'));
    assert.equal(a.agree(hex(vec('ecdh-p256', 'publicB'))).toString('hex'), vec('ecdh-p256', 'shared'));
    const shared = hex(vec('hkdf', 'shared'));
    const [round, u, v] = ['round', 'a', 'b'].map((k) => Number(vec('hkdf', k))) as [number, number, number];
    assert.equal(pairKey(shared, 'fedbrowser/secagg/v1/share-encryption', round, u, v).toString('hex'), vec('hkdf', 'shareKey'));
    assert.equal(pairKey(shared, 'fedbrowser/secagg/v1/pairwise-mask-seed', round, v, u).toString('hex'), vec('hkdf', 'maskSeed'));
    const key = hex(vec('share-ciphertext', 'key'));
    const route = ['round', 'from', 'to'].map((k) => Number(vec('share-ciphertext', k))) as [number, number, number];
    const ciphertext = hex(vec('share-ciphertext', 'ciphertext'));
    assert.equal(
      sealShare(key, hex(vec('share-ciphertext', 'plaintext')), ...route, ciphertext.subarray(0, 12)).toString('hex'),
      vec('share-ciphertext', 'ciphertext'),
    );
    assert.equal(openShare(key, ciphertext, ...route).toString('hex'), vec('share-ciphertext', 'plaintext'));
    assert.equal(FIELD_PRIME.toString(16), vec('shamir', 'prime'));
    const coefficients = [BigInt(`0x${vec('shamir', 'a1')}`), BigInt(`0x${vec('shamir', 'a2')}`)];
    const shares = shamirSplit(hex(vec('shamir', 'secret')), [1, 2, 3, 4], 3, coefficients);
    for (const x of [1, 2, 3, 4]) assert.equal(shares.get(x)!.toString('hex'), vec('shamir', `share${x}`));
    assert.equal(
      shamirReconstruct([2, 4, 1].map((index) => ({ index, value: shares.get(index)! }))).toString('hex'),
      vec('shamir', 'secret'),
    );
    const prg = prgWords(hex(vec('prg', 'seed')), 1048582);
    assert.deepEqual([...prg.subarray(0, 8)], words(vec('prg', 'words0to7')));
    assert.equal(prg[1048581], parseInt(vec('prg', 'word1048581'), 16));
    for (const name of ['graph-7-4', 'graph-8-3']) {
      const n = Number(vec(name, 'n'));
      const graph = neighbourGraph(n, Number(vec(name, 'k')), hex(vec(name, 'roundSeed')));
      for (let p = 1; p <= n; p++) assert.equal(graph.get(p)!.join(','), vec(name, `neighbours${p}`), `${name}: neighbours of ${p}`);
    }
    const encoded = quantize(
      new Float32Array(vec('quantize', 'values').split(' ').map(Number)),
      Number(vec('quantize', 'clipRange')),
      Number(vec('quantize', 'quantizationRange')),
    );
    assert.deepEqual([...encoded], words(vec('quantize', 'encoded')));
    const masked = Uint32Array.from(words(vec('masked-input', 'encoded')));
    addMask(masked, hex(vec('masked-input', 'selfSeed')), 1);
    addMask(masked, hex(vec('masked-input', 'seedWith5')), 1);
    addMask(masked, hex(vec('masked-input', 'seedWith1')), -1);
    assert.deepEqual([...masked], words(vec('masked-input', 'masked')));
  });

  it('completes plain rounds (with clipping) against the real coordinator', { timeout: 120_000 }, async () => {
    const { coordinator, dataDir } = await coordinatorWith([
      '--rounds',
      '2',
      '--min-clients',
      '3',
      '--clients-per-round',
      '3',
      '--min-updates',
      '3',
      '--clip-norm',
      '5',
    ]);
    let clients: ConformanceParticipant[] = [];
    try {
      clients = await participants(coordinator.url, 3);
      const final = await coordinator.done;
      assert.deepEqual(
        final.history.map((r) => [r.round, r.outcome, r.received, r.rejected]),
        [
          [1, 'aggregated', 3, 0],
          [2, 'aggregated', 3, 0],
        ],
      );
      for (const c of clients) {
        assert.deepEqual(c.refusals, []);
        assert.deepEqual(
          c.rounds.map((r) => r.ack?.ok),
          [true, true],
        );
      }
      assert.ok(final.history[1]!.metrics!.accuracy > 0.5, `accuracy ${final.history[1]!.metrics!.accuracy}`);
    } finally {
      for (const c of clients) c.stop();
      await coordinator.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('completes secure-aggregation rounds on a sparse graph, one participant dropping after the key exchange in round 2', {
    timeout: 180_000,
  }, async () => {
    const decoded: { sum: Float64Array; contributors: readonly string[]; errorBound: number }[] = [];
    const { coordinator, dataDir } = await coordinatorWith(
      [
        '--rounds',
        '2',
        '--min-clients',
        '5',
        '--clients-per-round',
        '5',
        '--min-updates',
        '3',
        '--secure-aggregation',
        '--secagg-neighbours',
        '2',
        '--secagg-step-timeout',
        '20',
        '--round-timeout',
        '60',
        '--clip-norm',
        '5',
      ],
      (sum, contributors, errorBound) => decoded.push({ sum, contributors, errorBound }),
    );
    let clients: ConformanceParticipant[] = [];
    try {
      clients = await participants(coordinator.url, 5, { k: 5, round: 2 });
      const final = await coordinator.done;
      const [first, second] = final.history;
      assert.equal(first?.outcome, 'aggregated', first?.reason);
      assert.equal(second?.outcome, 'aggregated', second?.reason);
      assert.deepEqual(
        {
          n: first!.secagg!.participants,
          k: first!.secagg!.neighbours,
          advertised: first!.secagg!.advertised,
          shared: first!.secagg!.shared,
          masked: first!.secagg!.masked,
          recovered: first!.secagg!.dropoutsRecovered,
          excluded: first!.secagg!.excluded,
        },
        { n: 5, k: 2, advertised: 5, shared: 5, masked: 5, recovered: 0, excluded: 0 },
      );
      assert.deepEqual(
        {
          n: second!.secagg!.participants,
          masked: second!.secagg!.masked,
          recovered: second!.secagg!.dropoutsRecovered,
          unmasked: second!.secagg!.unmasked,
        },
        { n: 5, masked: 4, recovered: 1, unmasked: 4 },
      );
      for (const c of clients) assert.deepEqual(c.refusals, [], `participant ${c.id}`);
      // The decoded sum is the sum of what the contributors quantised, to within the quantisation bound.
      assert.equal(decoded.length, 2);
      for (const [r, { sum, contributors, errorBound }] of decoded.entries()) {
        const inputs = contributors.map((id) => clients.find((c) => c.id === id)!.rounds.find((x) => x.round === r + 1 && x.secure)!.sent);
        let worst = 0;
        for (let i = 0; i < sum.length; i++) {
          let plain = 0;
          for (const input of inputs) plain += Math.max(-8, Math.min(8, input[i]!));
          worst = Math.max(worst, Math.abs(sum[i]! - plain));
        }
        assert.ok(worst < errorBound + 1e-9, `round ${r + 1}: decoded sum off by ${worst}, bound ${errorBound}`);
      }
    } finally {
      for (const c of clients) c.stop();
      await coordinator.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
