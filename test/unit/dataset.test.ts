import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeDataset, encodeDataset, parseShard, shardIndices, splitDataset, type Dataset } from '../../core/data/dataset.ts';

function fakeDataset(count: number): Dataset {
  const labels = Uint8Array.from({ length: count }, (_, i) => i % 10);
  const values = Uint8Array.from({ length: count * 4 }, (_, i) => i % 251);
  return { count, features: 4, numClasses: 10, labels, values };
}

describe('datasets and shards', () => {
  it('round-trips the dataset file and checks it', () => {
    const data = fakeDataset(30);
    const back = decodeDataset(encodeDataset(data));
    assert.deepEqual(back, data);
    const bytes = encodeDataset(data);
    assert.throws(() => decodeDataset(bytes.subarray(0, bytes.length - 1)), /bytes, expected/);
    const badLabel = bytes.slice();
    badLabel[16] = 10;
    assert.throws(() => decodeDataset(badLabel), /label 10/);
    assert.throws(() => decodeDataset(new Uint8Array(20)), /magic/);
  });

  it('splits disjointly and reproducibly', () => {
    const data = fakeDataset(100);
    const [a, b] = splitDataset(data, 30, 5);
    const [a2] = splitDataset(data, 30, 5);
    assert.equal(a.count, 30);
    assert.equal(b.count, 70);
    assert.deepEqual(a, a2);
  });

  for (const skew of ['iid', 'label'] as const) {
    it(`${skew} shards are disjoint and cover every example`, () => {
      const labels = Uint8Array.from({ length: 1003 }, (_, i) => (i * 7) % 10);
      const seen = new Set<number>();
      let total = 0;
      for (let k = 0; k < 5; k++) {
        const idx = shardIndices(labels, { index: k, count: 5, skew });
        total += idx.length;
        for (const i of idx) seen.add(i);
        assert.deepEqual(Array.from(shardIndices(labels, { index: k, count: 5, skew })), Array.from(idx), 'deterministic');
      }
      assert.equal(total, labels.length);
      assert.equal(seen.size, labels.length);
    });
  }

  it('label skew gives each shard only a few labels', () => {
    const labels = Uint8Array.from({ length: 2000 }, (_, i) => i % 10);
    for (let k = 0; k < 10; k++) {
      const idx = shardIndices(labels, { index: k, count: 10, skew: 'label' });
      const distinct = new Set(Array.from(idx, (i) => labels[i]));
      assert.ok(distinct.size <= 4, `shard ${k} has ${distinct.size} labels`);
    }
    const iid = shardIndices(labels, { index: 0, count: 10, skew: 'iid' });
    assert.equal(new Set(Array.from(iid, (i) => labels[i])).size, 10);
  });

  it('parses K/N with 1-based K and explains bad input', () => {
    assert.deepEqual(parseShard('2/3'), { index: 1, count: 3, skew: 'iid' });
    assert.throws(() => parseShard('0/3'), /1 <= K <= N/);
    assert.throws(() => parseShard('4/3'), /1 <= K <= N/);
    assert.throws(() => parseShard('two'), /K\/N/);
  });
});
