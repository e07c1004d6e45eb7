import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { io, type Socket } from 'socket.io-client';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { weightsHash } from '../../coordinator/rounds/round-engine.ts';
import { startCoordinator, type Coordinator } from '../../coordinator/server.ts';
import { CheckpointStore } from '../../coordinator/storage/checkpoints.ts';
import { parseCsv } from '../../core/data/csv.ts';
import type { Dataset } from '../../core/data/dataset.ts';
import type { TabularInput } from '../../core/data/schema.ts';
import { prepareTable, suggestRoles } from '../../core/data/tabular.ts';
import type { AdminClientToServerEvents, AdminServerToClientEvents, FederationStatus } from '../../core/protocol/status.ts';
import { startNodeParticipants, stopNodeParticipants, type NodeParticipant } from '../helpers/node-participants.ts';

type AdminSocket = Socket<AdminServerToClientEvents, AdminClientToServerEvents>;
const ADMIN_TOKEN = 'admin-token-for-the-unwritable-folder-test';

interface Unwritable {
  /** How the folder was made unwritable, and the OS error codes that means. */
  readonly how: string;
  readonly codes: readonly string[];
  undo(): Promise<void>;
}

/**
 * Makes `dir` refuse writes even to root (tests run as root, so chmod would
 * not stop them). First choice: the immutable attribute (`chattr +i`, ext4
 * and most local file systems): the kernel refuses to create, rename or
 * remove anything in the folder with EPERM, root included, and the old
 * checkpoints stay where they are. Where chattr is missing or unsupported
 * (tmpfs, overlayfs), the folder is moved aside and a regular file takes
 * its name: every write under it then fails with ENOTDIR (mkdir: EEXIST).
 */
async function makeUnwritable(dir: string): Promise<Unwritable> {
  try {
    execFileSync('chattr', ['+i', dir], { stdio: 'ignore' });
    try {
      await writeFile(path.join(dir, 'probe'), 'x');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EPERM') {
        return { how: 'chattr +i (immutable folder)', codes: ['EPERM'], undo: async () => void execFileSync('chattr', ['-i', dir]) };
      }
    }
    execFileSync('chattr', ['-i', dir], { stdio: 'ignore' });
    await rm(path.join(dir, 'probe'), { force: true });
  } catch {
    // no chattr here: the fallback below
  }
  const aside = `${dir}.aside`;
  await rename(dir, aside);
  await writeFile(dir, 'a file where the checkpoint folder was');
  return {
    how: 'folder replaced by a file',
    codes: ['ENOTDIR', 'EEXIST'],
    undo: async () => {
      await rm(dir);
      await rename(aside, dir);
    },
  };
}

async function siteDataset(file: string, schema: TabularInput, classes: readonly string[]): Promise<Dataset> {
  const table = parseCsv(await readFile(file, 'utf8'));
  return prepareTable(table, suggestRoles(table, schema), schema, classes).dataset;
}

async function until<T>(what: string, get: () => T | undefined | false, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = get();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Issue 15: the checkpoint folder becomes unwritable mid-run. The federation
 * must pause with the path and OS error in the status, the dashboard's push
 * and the log, show and announce nothing unsaved, refuse to resume while the
 * folder is still unwritable, and go on from where it was once the folder is
 * writable again and the operator resumes.
 */
describe('an unwritable checkpoint folder', () => {
  let dataDir = '';
  let coordinator: Coordinator | undefined;
  let participants: NodeParticipant[] = [];
  let admin: AdminSocket | undefined;
  let unwritable: Unwritable | undefined;

  after(async () => {
    await unwritable?.undo().catch(() => {});
    admin?.disconnect();
    stopNodeParticipants(participants);
    // Stopping closes and saves the open round, so no save is still writing into the folder being removed.
    await coordinator?.engine.stop('test over');
    await coordinator?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('pauses with the error shown, loses nothing, and resumes once writable', { timeout: 180_000 }, async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'fl-unwritable-'));
    const logs: string[] = [];
    const config = parseConfig(
      [
        '--task',
        'tasks/penguins/task.json',
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--data-dir',
        dataDir,
        '--rounds',
        '100',
        '--epochs',
        '1',
        '--round-timeout',
        '20',
        '--admin-token',
        ADMIN_TOKEN,
      ],
      {},
    ) as CoordinatorConfig;
    coordinator = await startCoordinator(config, { log: (line) => logs.push(line) });
    const c = coordinator;
    admin = io(`${c.url}/admin`, { transports: ['websocket'], auth: { token: ADMIN_TOKEN }, forceNew: true });
    let pushed: FederationStatus | undefined;
    admin.on('status', (s) => (pushed = s));
    const schema = c.task.input as TabularInput;
    const sites = await Promise.all([1, 2, 3].map((k) => siteDataset(`tasks/penguins/participants/site-${k}.csv`, schema, c.task.classes)));
    participants = await startNodeParticipants(c.url, sites, c.task, 3);
    const status = () => c.engine.dashboardStatus();
    await until('round 2', () => status().history.length >= 2);

    const checkpointDir = path.join(dataDir, 'penguins-sex', 'checkpoints');
    unwritable = await makeUnwritable(checkpointDir);
    const how = unwritable.how;
    const paused = await until('the pause', () => (status().storageFailure ? status() : undefined), 60_000);
    const failure = paused.storageFailure!;
    assert.equal(paused.control, 'paused');
    assert.ok(unwritable.codes.includes(failure.code ?? ''), `${unwritable.how}: OS error ${failure.code} (${failure.message})`);
    assert.ok(failure.path?.startsWith(checkpointDir), `the failure names the checkpoint folder: ${failure.path}`);
    assert.match(failure.what, /^round \d+ \(checkpoint, history, model files\)$/);
    assert.match(paused.waitingFor ?? '', new RegExp(`resume once the folder is writable again: .*${failure.code}`));
    assert.ok(
      logs.some((l) => l.includes(failure.path!) && l.includes(failure.code!) && /paused/.test(l)),
      `the log names the path and the error:\n${logs.join('\n')}`,
    );
    const heldRound = Number(/^round (\d+)/.exec(failure.what)![1]);
    await until('the dashboard push', () => pushed?.storageFailure?.code === failure.code);

    // Nothing unsaved is shown or announced, and nothing completed is lost: the history is what is on disk.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const during = status();
    assert.ok(
      during.history.every((r) => r.round < heldRound),
      'the unsaved round is not in the history',
    );
    assert.equal(during.history.length, paused.history.length, 'no round completes while paused');
    for (const p of participants)
      for (const e of p.events)
        if (e.type === 'round-end') assert.ok(e.message.round < heldRound, `round ${e.message.round} was announced unsaved`);
    const onDisk = (await new CheckpointStore(path.join(dataDir, 'penguins-sex')).loadLatest()).latest!;
    assert.equal(onDisk.state.round, during.history.at(-1)!.round, 'the last round shown is the last checkpoint');
    assert.equal(
      weightsHash(new Float32Array(new Uint8Array(onDisk.model.weightsBin).buffer)),
      during.modelHash,
      'the model shown is the one on disk',
    );

    const refused = await admin.timeout(10_000).emitWithAck('control', { action: 'resume' });
    assert.ok(!refused.ok && /saving still fails/.test(refused.error.message), JSON.stringify(refused));

    await unwritable.undo();
    unwritable = undefined;
    assert.deepEqual(await admin.timeout(10_000).emitWithAck('control', { action: 'resume' }), { ok: true, value: { control: 'running' } });
    const resumed = await until('two more rounds', () => (status().history.some((r) => r.round > heldRound) ? status() : undefined));
    assert.equal(resumed.storageFailure, undefined);
    assert.ok(
      resumed.history.some((r) => r.round === heldRound && r.outcome === 'aggregated'),
      'the held round was saved and shown on resume',
    );
    const rounds = resumed.history.map((r) => r.round);
    assert.deepEqual(
      rounds,
      [...rounds].sort((a, b) => a - b),
    );

    // The best round's model is in best/ and offered for download beside the last one.
    const best = status().best!;
    const bestInfo = JSON.parse(await readFile(path.join(dataDir, 'penguins-sex', 'best', 'best.json'), 'utf8')) as {
      round: number;
      modelHash: string;
    };
    assert.equal(bestInfo.round, best.round);
    assert.equal(bestInfo.modelHash, best.modelHash);
    const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const bestWeights = await fetch(`${c.url}/api/model/best/weights.bin`, { headers: auth });
    assert.equal(bestWeights.status, 200);
    assert.equal(weightsHash(new Float32Array(await bestWeights.arrayBuffer())), best.modelHash);
    assert.equal((await fetch(`${c.url}/api/model/best/model.json`, { headers: auth })).status, 200);
    assert.equal((await fetch(`${c.url}/api/model/best/model.json`)).status, 401, 'an admin download like the others');
    console.log(`unwritable-checkpoints: ${how} -> ${failure.code} at ${failure.path}; round ${heldRound} held, saved and shown on resume`);
  });
});
