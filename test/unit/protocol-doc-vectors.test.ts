import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ErrorCode } from '../../core/protocol/errors.ts';
import { fromHex, toHex } from '../../core/secagg/bytes.ts';
import { buildNeighbourGraph } from '../../core/secagg/graph.ts';
import {
  agree,
  decryptShare,
  derivePairwiseSeed,
  deriveShareKey,
  GCM_IV_BYTES,
  GCM_TAG_BYTES,
  importPrivateScalar,
  importPublicKey,
  PUBLIC_KEY_BYTES,
} from '../../core/secagg/keys.ts';
import { applyMask } from '../../core/secagg/masking.ts';
import { reduceWords } from '../../core/secagg/modulus.ts';
import { expandSeed } from '../../core/secagg/prg.ts';
import { SHARE_CIPHERTEXT_BYTES } from '../../core/secagg/protocol.ts';
import { quantize } from '../../core/secagg/quantize.ts';
import { reconstruct, SHAMIR_PRIME, SHARE_BYTES } from '../../core/secagg/shamir.ts';
import { packWords, unpackWords } from '../../core/secagg/word-packing.ts';

/**
 * docs/protocol.md §10.3 gives test vectors for every secure aggregation
 * primitive, so that a participant can be written from the doc alone. Each
 * vector block is parsed out of the doc and checked against core/secagg
 * here: a change to either side that the other does not follow fails.
 */

const DOC = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');

function vectors(): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  for (const match of DOC.matchAll(/```vectors (\S+)\n([\s\S]*?)```/g)) {
    const fields = new Map<string, string>();
    for (const line of match[2]!.trim().split('\n')) {
      const [key, value] = line.split(' = ');
      fields.set(key!.trim(), value!.trim());
    }
    out.set(match[1]!, fields);
  }
  return out;
}

const ALL = vectors();

function block(name: string): (key: string) => string {
  const fields = ALL.get(name);
  assert.ok(fields, `docs/protocol.md has no vector block ${name}`);
  return (key) => {
    const value = fields.get(key);
    assert.ok(value !== undefined, `vector block ${name} has no ${key}`);
    return value;
  };
}

const words = (text: string): number[] => text.split(' ').map((w) => parseInt(w, 16));
const ascii = (text: string): string => toHex(new TextEncoder().encode(text));

describe('docs/protocol.md against core: secure aggregation test vectors, payload fields, error codes', () => {
  it('has every vector block', () => {
    assert.deepEqual([...ALL.keys()].sort(), [
      'ecdh-p256',
      'graph-7-4',
      'graph-8-3',
      'hkdf',
      'masked-input',
      'packed-masked-input',
      'prg',
      'quantize',
      'shamir',
      'share-ciphertext',
    ]);
  });

  it('ECDH P-256: the shared secret of A and B, either way round', async () => {
    const v = block('ecdh-p256');
    const [privateA, publicA, privateB, publicB] = [v('privateA'), v('publicA'), v('privateB'), v('publicB')].map(fromHex) as [
      Uint8Array,
      Uint8Array,
      Uint8Array,
      Uint8Array,
    ];
    assert.equal(publicA.length, PUBLIC_KEY_BYTES);
    const ab = await agree(await importPrivateScalar(privateA, publicA), await importPublicKey(publicB));
    const ba = await agree(await importPrivateScalar(privateB, publicB), await importPublicKey(publicA));
    assert.equal(toHex(ab), v('shared'));
    assert.equal(toHex(ba), v('shared'));
  });

  it('HKDF: the info strings, the share key (through a ciphertext core opens) and the mask seed', async () => {
    const v = block('hkdf');
    const context = { round: Number(v('round')), a: Number(v('a')), b: Number(v('b')) };
    const lo = Math.min(context.a, context.b);
    const hi = Math.max(context.a, context.b);
    const suffix = [context.round, lo, hi].map((x) => x.toString(16).padStart(8, '0')).join('');
    assert.equal(v('shareInfo'), ascii('fedbrowser/secagg/v1/share-encryption') + suffix);
    assert.equal(v('maskInfo'), ascii('fedbrowser/secagg/v1/pairwise-mask-seed') + suffix);
    assert.equal(toHex(await derivePairwiseSeed(fromHex(v('shared')), context)), v('maskSeed'));
    // The share-ciphertext vector was sealed with `shareKey`: core's own derived key must open it.
    const c = block('share-ciphertext');
    assert.equal(c('key'), v('shareKey'));
    const key = await deriveShareKey(fromHex(v('shared')), context);
    const route = { round: Number(c('round')), from: Number(c('from')), to: Number(c('to')) };
    assert.equal(toHex(await decryptShare(key, fromHex(c('ciphertext')), route)), c('plaintext'));
  });

  it('share ciphertext: 92 bytes, IV ‖ AES-256-GCM ‖ tag, route bound as associated data', async () => {
    const c = block('share-ciphertext');
    const ciphertext = fromHex(c('ciphertext'));
    assert.equal(ciphertext.length, 92);
    assert.equal(SHARE_CIPHERTEXT_BYTES, 92);
    assert.equal(GCM_IV_BYTES + 2 * SHARE_BYTES + GCM_TAG_BYTES, 92);
    assert.equal(
      c('aad'),
      ascii('fedbrowser/secagg/v1/share') + [c('round'), c('from'), c('to')].map((x) => Number(x).toString(16).padStart(8, '0')).join(''),
    );
    const h = block('hkdf');
    const key = await deriveShareKey(fromHex(h('shared')), { round: Number(h('round')), a: Number(h('a')), b: Number(h('b')) });
    // The other direction of the same pair must fail: the route is authenticated.
    await assert.rejects(
      decryptShare(key, ciphertext, { round: Number(c('round')), from: Number(c('to')), to: Number(c('from')) }),
      /fails authentication/,
    );
  });

  it('Shamir: the field prime, and any t of the shares give the secret', () => {
    const v = block('shamir');
    assert.equal(BigInt(`0x${v('prime')}`), SHAMIR_PRIME);
    const t = Number(v('threshold'));
    const shares = [1, 2, 3, 4].map((index) => ({ index, value: fromHex(v(`share${index}`)) }));
    for (const pick of [
      [0, 1, 2],
      [1, 2, 3],
      [0, 2, 3],
      [3, 0, 1],
    ]) {
      assert.equal(
        toHex(
          reconstruct(
            pick.map((i) => shares[i]!),
            t,
          ),
        ),
        v('secret'),
      );
    }
    // The shares are f(x) = secret + a1·x + a2·x² mod p.
    const [s, a1, a2] = [v('secret'), v('a1'), v('a2')].map((x) => BigInt(`0x${x}`)) as [bigint, bigint, bigint];
    for (const { index, value } of shares) {
      const x = BigInt(index);
      assert.equal(toHex(value), ((s + a1 * x + a2 * x * x) % SHAMIR_PRIME).toString(16).padStart(64, '0'));
    }
  });

  it('PRG: the first words, the raw keystream and a word past the first chunks', async () => {
    const v = block('prg');
    const stream = await expandSeed(fromHex(v('seed')), 1048582);
    assert.deepEqual([...stream.subarray(0, 8)], words(v('words0to7')));
    assert.equal(toHex(new Uint8Array(stream.buffer, 0, 32)), v('keystream0to31'));
    assert.equal(stream[1048581], parseInt(v('word1048581'), 16));
  });

  for (const name of ['graph-7-4', 'graph-8-3']) {
    it(`neighbour graph ${name}`, async () => {
      const v = block(name);
      const n = Number(v('n'));
      const k = Number(v('k'));
      const seed = fromHex(v('roundSeed'));
      const graph = await buildNeighbourGraph(n, k, seed);
      for (let u = 1; u <= n; u++) assert.equal(graph.neighbours(u).join(','), v(`neighbours${u}`), `neighbours of ${u}`);
      const digest = new Uint8Array(
        await crypto.subtle.digest(
          'SHA-256',
          new Uint8Array([...new TextEncoder().encode('fedbrowser/secagg/v1/graph'), ...seed, 0, 0, 0, n, 0, 0, 0, k]),
        ),
      );
      assert.equal(toHex(digest), v('graphSeed'));
    });
  }

  it('quantisation of values on the grid', () => {
    const v = block('quantize');
    const values = new Float32Array(v('values').split(' ').map(Number));
    const encoded = quantize(values, { clipRange: Number(v('clipRange')), quantizationRange: Number(v('quantizationRange')) });
    assert.deepEqual([...encoded], words(v('encoded')));
  });

  it('masked input: z + PRG(b) + PRG(s_25) − PRG(s_12), sent little-endian', async () => {
    const v = block('masked-input');
    assert.equal(v('seedWith5'), block('hkdf')('maskSeed'));
    const h = block('hkdf');
    assert.equal(toHex(await derivePairwiseSeed(fromHex(h('shared')), { round: Number(h('round')), a: 1, b: 2 })), v('seedWith1'));
    const masked = Uint32Array.from(words(v('encoded')));
    await applyMask(masked, fromHex(v('selfSeed')), 1);
    await applyMask(masked, fromHex(v('seedWith5')), 1);
    await applyMask(masked, fromHex(v('seedWith1')), -1);
    assert.deepEqual([...masked], words(v('masked')));
    assert.equal(toHex(new Uint8Array(masked.buffer)), v('maskedBytes'));
  });

  it('packed masked input: the masked-input vector mod 2^13, 13 bits per word, least significant bit first', () => {
    const v = block('packed-masked-input');
    const bits = Number(v('wordBits'));
    const masked = Uint32Array.from(words(block('masked-input')('masked')));
    reduceWords(masked, bits);
    assert.deepEqual([...masked], words(v('words')));
    assert.equal(toHex(packWords(masked, bits)), v('packed'));
    assert.deepEqual([...unpackWords(fromHex(v('packed')), masked.length, bits)], [...masked]);
  });

  it('names every field of every payload and status interface (core/protocol/messages.ts, status.ts)', () => {
    // A name-level check: each field must appear in the doc's code spans; its meaning is the doc's job.
    const documented = new Set<string>();
    for (const span of DOC.matchAll(/`([^`\n]+)`/g)) for (const id of span[1]!.matchAll(/[A-Za-z_]\w*/g)) documented.add(id[0]);
    const missing: string[] = [];
    for (const file of ['messages.ts', 'status.ts']) {
      const source = readFileSync(new URL(`../../core/protocol/${file}`, import.meta.url), 'utf8');
      for (const block of source.matchAll(/export interface (\w+)[^{]*\{([\s\S]*?)\n\}/g)) {
        if (block[1]!.endsWith('Events')) continue;
        for (const field of block[2]!.matchAll(/^ {2}readonly (\w+)\??:/gm))
          if (!documented.has(field[1]!)) missing.push(`${block[1]}.${field[1]}`);
      }
    }
    assert.deepEqual(missing, []);
  });

  it('the error table (§6) lists every error code', () => {
    const section = DOC.slice(DOC.indexOf('## 6. Error codes'), DOC.indexOf('## 7. Rounds'));
    for (const code of Object.values(ErrorCode)) assert.ok(section.includes(`| \`${code}\` |`), `§6 has no row for ${code}`);
  });
});
