import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { nodeEntryArgs } from '../helpers/entry-bundle.ts';

/**
 * Tests run spawned entry points from bundles (test/helpers/entry-bundle.ts):
 * the bundle must behave as the .ts entry does when run, and its stack
 * traces must name the .ts files and lines.
 */
describe('test entry bundles', () => {
  let dir = '';

  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('runs the entry as the script run, and stack traces name the .ts module and line that threw', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'fl-entry-bundle-'));
    const helper = path.join(dir, 'helper.ts');
    await writeFile(
      helper,
      ['export function fail(reason: string): never {', "  throw new Error('failed: ' + reason);", '}', ''].join('\n'),
    );
    const entry = path.join(dir, 'entry.ts');
    await writeFile(
      entry,
      [
        "import { pathToFileURL } from 'node:url';",
        "import { fail } from './helper.ts';",
        "const ranDirectly: boolean = import.meta.url === pathToFileURL(process.argv[1] ?? '').href;",
        "console.log('ran directly: ' + ranDirectly + ', arguments: ' + process.argv.slice(2).join(' '));",
        "if (process.argv[2] === 'fail') fail('as asked');",
        '',
      ].join('\n'),
    );

    const result = spawnSync(process.execPath, [...(await nodeEntryArgs(entry)), 'fail', 'now'], { encoding: 'utf8' });

    assert.equal(result.status, 1, result.stderr);
    assert.match(result.stdout, /^ran directly: true, arguments: fail now$/m);
    assert.match(result.stderr, /Error: failed: as asked/);
    assert.ok(result.stderr.includes(`at fail (${helper}:2:`), `the stack names helper.ts line 2:\n${result.stderr}`);
    assert.ok(result.stderr.includes(`(${entry}:5:`), `the stack names entry.ts line 5:\n${result.stderr}`);
  });
});
