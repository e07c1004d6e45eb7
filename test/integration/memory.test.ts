import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { loadMnistDemo } from '../../coordinator/task/demo-data.ts';
import type { FederationStatus } from '../../core/protocol/status.ts';
import type { TaskSummary } from '../../core/protocol/messages.ts';
import { nodeEntryArgs } from '../helpers/entry-bundle.ts';
import { startNodeParticipants, stopNodeParticipants, type NodeParticipant } from '../helpers/node-participants.ts';

const root = path.resolve(import.meta.dirname, '../..');
const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

/**
 * 50 rounds with Node participants: the coordinator's resident memory after
 * round 50 is what it was after round 10 (give or take the garbage
 * collector), so nothing accumulates per round or per update.
 */
describe('coordinator memory over 50 rounds', () => {
  let dataDir = '';
  let participants: NodeParticipant[] = [];
  let kill: (() => void) | undefined;

  after(async () => {
    stopNodeParticipants(participants);
    kill?.();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('keeps RSS flat', { timeout: 300_000 }, async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'fl-mem-'));
    const child = spawn(
      process.execPath,
      [
        ...(await nodeEntryArgs('coordinator/cli.ts')),
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--data-dir',
        dataDir,
        '--rounds',
        '50',
        '--min-clients',
        '4',
        '--clients-per-round',
        '4',
        '--round-timeout',
        '60',
        '--quiet',
      ],
      { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    kill = () => child.kill('SIGKILL');
    const url = await new Promise<string>((resolve) => {
      let out = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const match = /dashboard:\s+(http:\/\/\S+)\/dashboard/.exec(out);
        if (match) resolve(match[1]!);
      });
    });
    const task = (await (await fetch(`${url}/api/task`)).json()) as TaskSummary;
    participants = await startNodeParticipants(url, await loadMnistDemo(), task, 4, { totalShards: 80 });

    const samples = new Map<number, number>();
    for (;;) {
      const status = (await (await fetch(`${url}/api/status`)).json()) as FederationStatus;
      const round = status.history.length;
      if (!samples.has(round)) samples.set(round, rssMb(child.pid!));
      if (status.done) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const at10 = samples.get(10)!;
    const at50 = samples.get(50) ?? rssMb(child.pid!);
    console.log(`coordinator RSS: ${at10.toFixed(1)} MB after round 10, ${at50.toFixed(1)} MB after round 50`);
    assert.ok(at50 - at10 < 40, `RSS grew by ${(at50 - at10).toFixed(1)} MB from round 10 to round 50`);
  });
});
