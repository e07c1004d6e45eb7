import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { loadMnistDemo } from '../../coordinator/task/demo-data.ts';
import type { FederationStatus } from '../../core/protocol/status.ts';
import { SeededRandom } from '../../core/random/prng.ts';
import { startNodeParticipants, stopNodeParticipants, type NodeParticipant } from '../helpers/node-participants.ts';
import { freePort } from '../helpers/free-port.ts';
import { fixedDuration } from '../helpers/slowed-trainer.ts';
import { type CoordinatorProcess, launchCoordinator } from '../helpers/coordinator-process.ts';

type Coordinator = CoordinatorProcess;

function launch(port: number, dataDir: string, env: Record<string, string> = {}): Promise<Coordinator> {
  return launchCoordinator(
    [
      '--port',
      String(port),
      '--host',
      '127.0.0.1',
      '--data-dir',
      dataDir,
      '--rounds',
      '40',
      '--target-accuracy',
      '0.88',
      '--min-clients',
      '4',
      '--clients-per-round',
      '4',
      '--round-timeout',
      '30',
      '--seed',
      '3',
    ],
    env,
  );
}

async function status(port: number): Promise<FederationStatus> {
  return (await (await fetch(`http://127.0.0.1:${port}/api/status`)).json()) as FederationStatus;
}

/**
 * SIGKILL the coordinator again and again (in rounds, in aggregation and
 * evaluation, and twice in the middle of a checkpoint write) while real Node
 * participants keep training; each time it must come back from its newest
 * valid checkpoint without losing a completed round or reusing a round
 * number, and the federation must still reach its target.
 */
describe('coordinator crash and resume', () => {
  let dataDir = '';
  let coordinator: Coordinator | undefined;
  let participants: NodeParticipant[] = [];

  after(async () => {
    stopNodeParticipants(participants);
    coordinator?.child.kill('SIGKILL');
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('survives 12 SIGKILLs and finishes at the target accuracy', { timeout: 600_000 }, async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'fl-crash-'));
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    coordinator = await launch(port, dataDir);
    const demo = await loadMnistDemo();
    const task = (await (await fetch(`${url}/api/task`)).json()) as Parameters<typeof startNodeParticipants>[2];
    // Each local run takes 1.5 s whatever this machine's speed: the federation must outlast the 12 kills (on the wasm
    // backend a run takes a fraction of that, and on a fast day the target was reached after 5 kills).
    participants = await startNodeParticipants(url, demo, task, 4, { paces: Array(4).fill(fixedDuration(1500)) });

    const random = new SeededRandom(99);
    let kills = 0;
    let seenHistory: FederationStatus['history'] = [];
    const checkHistory = (history: FederationStatus['history']) => {
      const rounds = history.map((r) => r.round);
      for (let i = 1; i < rounds.length; i++) assert.ok(rounds[i]! > rounds[i - 1]!, `round numbers increase: ${rounds.join(',')}`);
      // Nothing completed before is lost: the old history is a prefix of the new one.
      assert.deepEqual(
        history.slice(0, seenHistory.length).map((r) => r.round),
        seenHistory.map((r) => r.round),
      );
      seenHistory = history;
    };

    for (; kills < 12; kills++) {
      if (kills === 4 || kills === 8) {
        // Die inside the next checkpoint write, after its files and before its manifest.
        coordinator.child.kill('SIGKILL');
        await coordinator.exited;
        coordinator = await launch(port, dataDir, { FL_FAULT_KILL_IN_CHECKPOINT: '1' });
        let timer: NodeJS.Timeout | undefined;
        const code = await Promise.race([
          coordinator.exited,
          new Promise((resolve) => (timer = setTimeout(() => resolve('timeout'), 60_000))),
        ]).finally(() => clearTimeout(timer));
        assert.equal(code, null, 'the coordinator died by SIGKILL inside its checkpoint write');
        coordinator = await launch(port, dataDir);
        checkHistory((await status(port)).history);
        continue;
      }
      await new Promise((resolve) => setTimeout(resolve, 300 + random.next() * 2500));
      const before = await status(port);
      if (before.done) break;
      checkHistory(before.history);
      coordinator.child.kill('SIGKILL');
      await coordinator.exited;
      coordinator = await launch(port, dataDir);
      checkHistory((await status(port)).history);
    }
    assert.ok(kills >= 10, `only ${kills} kills happened before the federation finished`);

    let final: FederationStatus;
    for (;;) {
      final = await status(port);
      if (final.done) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    checkHistory(final.history);
    assert.match(final.doneReason ?? '', /target accuracy 0.88 reached/);

    // Every round a participant saw end as aggregated is in the final history.
    const history = new Set(final.history.filter((r) => r.outcome === 'aggregated').map((r) => r.round));
    for (const p of participants) {
      for (const e of p.events) {
        if (e.type === 'round-end' && e.message.outcome === 'aggregated')
          assert.ok(history.has(e.message.round), `round ${e.message.round} was lost`);
      }
    }
    // No round number was handed out twice, even for rounds a crash cut short.
    for (const p of participants) {
      const starts = p.events
        .filter((e) => e.type === 'status' && e.status === 'downloading')
        .map((e) => (e.type === 'status' ? e.detail : ''));
      assert.equal(new Set(starts).size, starts.length, `round numbers repeated for a participant: ${starts.join(',')}`);
    }
  });
});
