import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CheckpointStore, type Checkpoint } from '../../coordinator/storage/checkpoints.ts';
import { AtRestKey } from '../../coordinator/storage/encryption.ts';

const checkpoint = (round: number): Checkpoint => ({
  state: {
    version: 1,
    task: 't',
    paramCount: 2,
    round,
    modelVersion: round,
    history: [],
    savedAt: 0,
    strategy: { name: 's', state: { r: round } },
  },
  model: { modelJson: JSON.stringify({ round }), weightsBin: new Uint8Array(new Float32Array([round, -round]).buffer) },
});

describe('checkpoints', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'fl-ckpt-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('saves atomically, loads the newest and keeps the last three', async () => {
    const store = new CheckpointStore(path.join(dir, 'plain'));
    for (let round = 1; round <= 5; round++) await store.save(checkpoint(round));
    const scan = await store.loadLatest();
    assert.equal(scan.latest?.state.round, 5);
    assert.deepEqual(scan.latest?.state.strategy, { name: 's', state: { r: 5 } });
    assert.deepEqual(Array.from(new Float32Array(new Uint8Array(scan.latest!.model.weightsBin).buffer)), [5, -5]);
    assert.deepEqual((await readdir(store.dir)).sort(), ['000003', '000004', '000005']);
  });

  it('detects a corrupt file and a torn checkpoint, reports them and falls back', async () => {
    const store = new CheckpointStore(path.join(dir, 'damaged'));
    for (let round = 1; round <= 3; round++) await store.save(checkpoint(round));
    // Round 3: one flipped byte in the weights. Round 2: the manifest never got written.
    const weights = path.join(store.dir, '000003', 'weights.bin');
    const bytes = await readFile(weights);
    bytes[0]! ^= 1;
    await writeFile(weights, bytes);
    await rm(path.join(store.dir, '000002', 'manifest.json'));
    const scan = await store.loadLatest();
    assert.equal(scan.latest?.state.round, 1);
    assert.equal(scan.rejected.length, 2);
    assert.match(scan.rejected[0]!.reason, /weights.bin does not match its checksum/);
    assert.match(scan.rejected[1]!.reason, /manifest.json is missing/);
  });

  it('records the last started round', async () => {
    const store = new CheckpointStore(path.join(dir, 'started'));
    assert.equal(await store.lastStartedRound(), 0);
    await store.markRoundStarted(7);
    assert.equal(await store.lastStartedRound(), 7);
  });

  it('encrypts at rest with AES-256-GCM and refuses the wrong key', async () => {
    const keyFile = path.join(dir, 'key');
    await writeFile(keyFile, `${'ab'.repeat(32)}\n`);
    const store = new CheckpointStore(path.join(dir, 'sealed'), await AtRestKey.fromFile(keyFile));
    await store.save(checkpoint(4));
    const stored = await readFile(path.join(store.dir, '000004', 'state.json'));
    assert.ok(!stored.toString('latin1').includes('"round"'), 'state.json is not readable without the key');
    assert.equal((await store.loadLatest()).latest?.state.round, 4);

    const otherKey = path.join(dir, 'other-key');
    await writeFile(otherKey, 'cd'.repeat(32));
    const wrong = await new CheckpointStore(path.join(dir, 'sealed'), await AtRestKey.fromFile(otherKey)).loadLatest();
    assert.equal(wrong.latest, undefined);
    assert.match(wrong.rejected[0]!.reason, /fails authentication/);
    const none = await new CheckpointStore(path.join(dir, 'sealed')).loadLatest();
    assert.match(none.rejected[0]!.reason, /encrypted: pass --checkpoint-key-file/);

    await writeFile(otherKey, 'too short');
    await assert.rejects(AtRestKey.fromFile(otherKey), /256-bit key/);
    await assert.rejects(AtRestKey.fromFile(path.join(dir, 'missing')), /cannot read the checkpoint key file/);
  });
});
