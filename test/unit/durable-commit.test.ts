import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ErrorCode } from '../../core/protocol/errors.ts';
import { saveWithRetry } from '../../coordinator/rounds/durable-commit.ts';
import { weightsHash } from '../../coordinator/rounds/round-engine.ts';
import { EngineHarness } from '../helpers/engine-harness.ts';

/** A real OS refusal: writing under a path whose parent is a regular file (ENOTDIR), whoever the user is. */
async function blockedWriter(): Promise<{
  write: () => Promise<void>;
  blocked: string;
  unblock: () => Promise<void>;
  cleanup: () => Promise<void>;
}> {
  const dir = await mkdtemp(path.join(tmpdir(), 'fl-durable-'));
  const blocked = path.join(dir, 'checkpoints');
  await writeFile(blocked, 'a file where the folder should be');
  return {
    blocked,
    write: () => writeFile(path.join(blocked, 'state.json'), '{}'),
    // The operator's fix: the file goes, the folder comes back.
    unblock: async () => {
      await rm(blocked);
      await mkdir(blocked);
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** Runs deferred work until `done` holds (real file-system calls take more than a few event-loop turns). */
async function until(h: EngineHarness, done: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !done(); i++) {
    h.clock.advance(0);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.ok(done(), 'timed out waiting for the engine');
}

/** Lets the failing save run through its 3 tries (2 backoff waits on the manual clock) until the engine pauses. */
async function exhaustRetries(h: EngineHarness): Promise<void> {
  for (let retry = 1; retry <= 2; retry++) {
    await until(h, () => h.errors.length >= retry);
    h.clock.advance(150);
  }
  await until(h, () => h.engine.status().control === 'paused');
}

/** Two participants, round 1 with both updates in; returns once the round has closed (or tried to). */
async function roundOneClosed(h: EngineHarness): Promise<void> {
  const [a, b] = [h.join(), h.join()];
  h.engine.start();
  await h.settle();
  assert.ok(h.engine.submitUpdate(a, h.update(1, [0.5, 0, 0, 0])).ok);
  assert.ok(h.engine.submitUpdate(b, h.update(1, [0.5, 0, 0, 0])).ok);
  await h.settle();
}

describe('durable before visible', () => {
  it('shows a closed round, its model and its end only after its save completed', async () => {
    const h = new EngineHarness({ clientsPerRound: 2 });
    let release!: () => void;
    h.saveFault = (what) => (what === 'round' ? new Promise<void>((resolve) => (release = resolve)) : undefined);
    await roundOneClosed(h);
    // The save is under way: nothing of round 1 may be visible.
    const during = h.engine.status();
    assert.equal(during.history.length, 0, 'the round is not in the history before it is saved');
    assert.equal(during.modelVersion, 0);
    assert.equal(h.engine.globalModel.version, 0, 'joins and downloads still get the saved model');
    assert.equal(h.ends.length, 0, 'round:end waits for the save');
    assert.deepEqual(
      h.statusDuringSave.map((s) => s.history.length),
      [0],
    );
    release();
    h.saveFault = undefined;
    await h.settle();
    const after = h.engine.status();
    assert.equal(after.history.length, 1);
    assert.equal(after.modelVersion, 1);
    assert.equal(after.history[0]!.modelHash, weightsHash(h.engine.globalModel.weights), 'the record names the hash of its model');
    assert.equal(after.modelHash, after.history[0]!.modelHash);
    assert.deepEqual(h.log.slice(0, 2), ['checkpoint 1', 'end 1']);
  });

  it('retries a failed save with backoff, then pauses naming the path and OS error; resume saves and goes on once writable', async () => {
    const disk = await blockedWriter();
    try {
      const h = new EngineHarness({ clientsPerRound: 2 });
      h.saveFault = (what) => (what === 'round' ? disk.write() : undefined);
      await roundOneClosed(h);
      await exhaustRetries(h);
      assert.match(h.errors[0]!, /trying again in 100 ms/);
      assert.match(h.errors[1]!, /trying again in 150 ms/);
      const paused = h.engine.status();
      assert.equal(paused.control, 'paused');
      const failure = paused.storageFailure;
      assert.ok(failure, 'the status carries the failure');
      assert.equal(failure.code, 'ENOTDIR');
      assert.equal(failure.path, path.join(disk.blocked, 'state.json'));
      assert.equal(failure.attempts, 3);
      assert.match(paused.waitingFor ?? '', /resume once the folder is writable again: saving round 1 .* ENOTDIR at .*checkpoints/);
      assert.match(h.errors.at(-1)!, /ENOTDIR at .*checkpoints\/state\.json.*paused: round 1 is not shown or announced until it is saved/);
      assert.equal(paused.history.length, 0, 'the unsaved round is not shown');
      assert.equal(paused.modelVersion, 0);
      assert.equal(h.ends.length, 0, 'the unsaved round is not announced');
      h.clock.advance(60_000);
      await h.settle();
      assert.equal(h.selectedIn(2).length, 0, 'no round opens while paused on a failed save');

      const refused = await h.engine.applyControl('resume');
      assert.ok(!refused.ok && refused.error.code === ErrorCode.ControlNotAllowed);
      assert.match(refused.error.message, /saving still fails: .*ENOTDIR/);
      assert.equal(h.engine.status().control, 'paused');

      await disk.unblock();
      assert.deepEqual(await h.engine.applyControl('resume'), { ok: true, value: { control: 'running' } });
      await until(h, () => h.selectedIn(2).length === 2);
      const resumed = h.engine.status();
      assert.equal(resumed.storageFailure, undefined);
      assert.equal(resumed.history.length, 1);
      assert.equal(resumed.history[0]!.outcome, 'aggregated');
      assert.equal(resumed.modelVersion, 1);
      assert.deepEqual(
        h.ends.map((e) => e.round),
        [1],
        'announced once saved',
      );
      assert.equal(h.selectedIn(2).length, 2, 'round 2 opened');
    } finally {
      await disk.cleanup();
    }
  });

  it('a stop while paused on a failed save finishes without ever announcing the unsaved round', async () => {
    const disk = await blockedWriter();
    try {
      const h = new EngineHarness({ clientsPerRound: 2, fit: { epochs: 1, batchSize: 8, learningRate: 0.1 } });
      h.saveFault = (what) => (what === 'round' ? disk.write() : undefined);
      await roundOneClosed(h);
      await exhaustRetries(h);
      const stopped = await h.engine.applyControl('stop');
      assert.ok(stopped.ok);
      assert.match(stopped.value.doneReason ?? '', /round 1 could not be saved, so it was never shown or counted/);
      assert.equal(h.ends.length, 0);
      assert.equal(h.engine.status().history.length, 0);
    } finally {
      await disk.cleanup();
    }
  });

  it('does not start a round whose number could not be recorded: pauses, and resume starts it once the save works', async () => {
    const disk = await blockedWriter();
    try {
      const h = new EngineHarness({ clientsPerRound: 2 });
      h.saveFault = (what) => (what === 'start' ? disk.write() : undefined);
      h.join();
      h.join();
      h.engine.start();
      await exhaustRetries(h);
      const status = h.engine.status();
      assert.equal(status.control, 'paused');
      assert.match(status.storageFailure?.what ?? '', /start of round 1 \(started\.json\)/);
      assert.equal(h.starts.length, 0, 'nobody heard of round 1');
      await disk.unblock();
      assert.deepEqual(await h.engine.applyControl('resume'), { ok: true, value: { control: 'running' } });
      await until(h, () => h.selectedIn(1).length === 2);
    } finally {
      await disk.cleanup();
    }
  });

  it('saveWithRetry waits 1x, 2x, 4x the first delay up to the cap between tries', async () => {
    const waits: number[] = [];
    let tries = 0;
    const outcome = await saveWithRetry({
      what: 'x',
      save: () => {
        tries++;
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', path: '/data/x' });
      },
      wait: async (ms) => void waits.push(ms),
      now: () => 7,
      policy: { attempts: 5, firstDelayMs: 100, maxDelayMs: 300 },
    });
    assert.equal(tries, 5);
    assert.deepEqual(waits, [100, 200, 300, 300]);
    assert.deepEqual(outcome, {
      ok: false,
      failure: { what: 'x', path: '/data/x', code: 'ENOSPC', message: 'ENOSPC: no space left on device, write', attempts: 5, at: 7 },
    });
  });
});
