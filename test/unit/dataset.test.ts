import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeDataset, encodeDataset, parseShard, shardIndices, splitDataset, subset, type Dataset } from '../../core/data/dataset.ts';

function fakeDataset(count: number): Dataset {
  const labels = Uint8Array.from({ length: count }, (_, i) => i % 10);
  const values = Uint8Array.from({ length: count * 4 }, (_, i) => i % 251);
  return { count, features: 4, numClasses: 10, labels, values };
}

/** A float dataset of `count` examples with 3 features; values that need all 32 bits, negatives and zero. */
function floatDataset(count: number): Dataset {
  const labels = Uint8Array.from({ length: count }, (_, i) => i % 3);
  const values = Float32Array.from({ length: count * 3 }, (_, i) => (i % 5 === 0 ? 0 : (i - 7.3) / 3.1));
  return { count, features: 3, numClasses: 3, labels, values };
}

describe('datasets and shards', () => {
  it('round-trips a float32 dataset, its features 4-byte aligned after an odd number of labels', () => {
    for (const count of [1, 2, 3, 5, 7]) {
      const data = floatDataset(count);
      const bytes = encodeDataset(data);
      assert.equal(String.fromCharCode(...bytes.subarray(0, 4)), 'FLDF');
      // 16 header bytes + labels, padded to a multiple of 4, then 4 bytes per value.
      const offset = Math.ceil((16 + count) / 4) * 4;
      assert.equal(bytes.byteLength, offset + 4 * count * 3, `count ${count}`);
      assert.deepEqual(Array.from(bytes.subarray(16 + count, offset)), new Array(offset - 16 - count).fill(0), 'zero padding');
      assert.equal(
        new DataView(bytes.buffer).getFloat32(offset + 4, true),
        data.values[1],
        'the second value starts 4 bytes after the offset',
      );
      const back = decodeDataset(bytes);
      assert.ok(back.values instanceof Float32Array);
      assert.deepEqual(back, data);
    }
    // The byte format stays as it was.
    assert.equal(String.fromCharCode(...encodeDataset(fakeDataset(2)).subarray(0, 4)), 'FLDS');
  });

  it('reads a float dataset from an unaligned view and rejects non-finite values and a wrong length', () => {
    const bytes = encodeDataset(floatDataset(3));
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    assert.deepEqual(decodeDataset(shifted.subarray(1)), floatDataset(3));
    const nan = bytes.slice();
    new DataView(nan.buffer).setFloat32(20 + 4 * 4, Number.NaN, true);
    assert.throws(() => decodeDataset(nan), /feature 1 of example 1 is not a finite number/);
    assert.throws(() => decodeDataset(bytes.subarray(0, bytes.length - 4)), /bytes, expected/);
  });

  it('subset and split keep float features as Float32Array', () => {
    const data = floatDataset(6);
    const part = subset(data, [4, 1]);
    assert.ok(part.values instanceof Float32Array);
    assert.deepEqual(Array.from(part.values), [...data.values.subarray(12, 15), ...data.values.subarray(3, 6)]);
    assert.deepEqual(Array.from(part.labels), [data.labels[4], data.labels[1]]);
    const [a, b] = splitDataset(data, 2, 1);
    assert.ok(a.values instanceof Float32Array && b.values instanceof Float32Array);
    assert.equal(a.count + b.count, 6);
    assert.ok(subset(fakeDataset(4), [0]).values instanceof Uint8Array);
  });

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
