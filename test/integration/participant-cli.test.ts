import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { startCoordinator, type Coordinator } from '../../coordinator/server.ts';
import { runParticipantCli } from '../../node/participant/cli.ts';
import { nodeEntryArgs } from '../helpers/entry-bundle.ts';
import { freePort } from '../helpers/free-port.ts';

const JOIN_TOKEN = 'cli-test-join-token-0123456789abcdef';

/** One `npm run participant` process (the script it runs, from its bundle: entry-bundle.ts, without npm's start-up), with its output and exit code. */
async function cliProcess(args: readonly string[]): Promise<{ code: number | null; output: string }> {
  const entryArgs = await nodeEntryArgs('node/participant/cli.ts');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...entryArgs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, output }));
  });
}

/** A loopback port nothing listens on (just freed). */

/**
 * The participant CLI: three processes join the penguins task with their
 * site CSVs and a join token, and every round aggregates all three; wrong
 * addresses, refused tokens and data that does not fit are clear errors.
 */
describe('npm run participant (the Node participant CLI)', () => {
  let coordinator: Coordinator;
  let dir: string;
  let tokenFile: string;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'fl-cli-'));
    tokenFile = path.join(dir, 'token.txt');
    await writeFile(tokenFile, `${JOIN_TOKEN}\n`);
    const config = parseConfig(
      [
        '--task',
        'tasks/penguins/task.json',
        '--rounds',
        '3',
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--quiet',
        '--data-dir',
        path.join(dir, 'runs'),
        '--join-token',
        JOIN_TOKEN,
      ],
      {},
    ) as CoordinatorConfig;
    coordinator = await startCoordinator(config);
  });

  after(async () => {
    await coordinator?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('three CLI participants with their own CSVs aggregate every round with all three', { timeout: 120_000 }, async () => {
    const runs = await Promise.all(
      [1, 2, 3].map((k) =>
        cliProcess([
          '--url',
          coordinator.url,
          '--data',
          `tasks/penguins/participants/site-${k}.csv`,
          '--token-file',
          tokenFile,
          '--state-dir',
          path.join(dir, `state-${k}`),
        ]),
      ),
    );
    const final = await coordinator.done;
    assert.equal(final.history.length, 3);
    assert.ok(
      final.history.every((r) => r.outcome === 'aggregated' && r.received === 3),
      JSON.stringify(final.history.map((r) => [r.outcome, r.received])),
    );
    for (const [k, run] of runs.entries()) {
      assert.equal(run.code, 0, `participant ${k + 1}:\n${run.output}`);
      assert.match(run.output, /data: tasks\/penguins\/participants\/site-\d\.csv, \d+ examples \(FEMALE \d+, MALE \d+\)/);
      assert.equal(run.output.match(/^round \d: sent [\d.]+ KiB/gm)?.length, 3, run.output);
      assert.match(run.output, /federation done after round 3: completed 3 rounds/);
    }
  });

  it('a wrong address, a refused token and data that does not fit are clear errors', { timeout: 60_000 }, async () => {
    let out = '';
    const write = (text: string) => (out += text);
    const closedPort = await freePort();
    await assert.rejects(
      runParticipantCli(['--url', `http://127.0.0.1:${closedPort}`, '--data', 'x.csv'], write, false),
      /cannot reach the coordinator at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/,
    );
    await assert.rejects(
      runParticipantCli(['--url', `${coordinator.url}/dashboard`, '--data', 'x.csv'], write, false),
      /answered HTTP 404 for \/api\/task: it is not a federation coordinator/,
    );
    assert.equal(await runParticipantCli(['--url', 'localhost:8080', '--data', 'x.csv'], write, false), 2);
    assert.match(out, /--url must be an http:\/\/ or https:\/\/ address/);

    const wrongColumns = path.join(dir, 'wrong.csv');
    await writeFile(wrongColumns, 'Species,Island,Sex\nAdelie,Dream,MALE\n');
    await assert.rejects(
      runParticipantCli(['--url', coordinator.url, '--data', wrongColumns], write, false),
      /wrong\.csv does not fit the task "penguins-sex": .*Beak Length \(mm\)/s,
    );
    const folder = path.join(dir, 'images');
    await mkdir(folder);
    await assert.rejects(
      runParticipantCli(['--url', coordinator.url, '--data', folder], write, false),
      /images is a folder; the task "penguins-sex" reads a CSV file/,
    );

    const badToken = path.join(dir, 'bad-token.txt');
    await writeFile(badToken, 'not-the-token-0123456789abcdef\n');
    out = '';
    const code = await runParticipantCli(
      [
        '--url',
        coordinator.url,
        '--data',
        'tasks/penguins/participants/site-1.csv',
        '--token-file',
        badToken,
        '--state-dir',
        path.join(dir, 'state-x'),
      ],
      write,
      false,
    );
    assert.equal(code, 1);
    assert.match(out, /error: connection refused: /);
  });
});
