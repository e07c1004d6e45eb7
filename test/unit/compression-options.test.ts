import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError, parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';

function settingsOf(argv: string[]): CoordinatorConfig['settings'] {
  return (parseConfig(argv, {}) as CoordinatorConfig).settings;
}

describe('--update-encoding and --model-encoding', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'fl-compression-options-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('default to float32, which the settings leave out', () => {
    const settings = settingsOf([]);
    assert.equal('updateEncoding' in settings, false);
    assert.equal('modelEncoding' in settings, false);
  });

  it('reach the round settings from the flags', () => {
    const settings = settingsOf(['--update-encoding', 'int4', '--model-encoding', 'float16']);
    assert.equal(settings.updateEncoding, 'int4');
    assert.equal(settings.modelEncoding, 'float16');
  });

  it('refuse an unknown encoding with a clear message', () => {
    assert.throws(
      () => parseConfig(['--update-encoding', 'int2'], {}),
      (e: unknown) => e instanceof ConfigError && /--update-encoding must be float32, float16, int8 or int4, got "int2"/.test(e.message),
    );
    assert.throws(
      () => parseConfig(['--model-encoding', 'int8'], {}),
      (e: unknown) => e instanceof ConfigError && /--model-encoding must be float32 or float16/.test(e.message),
    );
  });

  it('come from the task file communication section, and a flag overrides it', async () => {
    const file = path.join(dir, 'task.json');
    await writeFile(
      file,
      JSON.stringify({
        name: 'x',
        description: 'a test task',
        model: 'mlp',
        input: { kind: 'tabular', labelColumn: 'y', features: [{ name: 'a', type: 'numeric' }] },
        classes: ['no', 'yes'],
        data: { train: './train.csv', test: './test.csv' },
        communication: { updateEncoding: 'int8', modelEncoding: 'float16' },
      }),
    );
    const fromFile = settingsOf(['--task', file]);
    assert.equal(fromFile.updateEncoding, 'int8');
    assert.equal(fromFile.modelEncoding, 'float16');
    const overridden = settingsOf(['--task', file, '--update-encoding', 'float16']);
    assert.equal(overridden.updateEncoding, 'float16');
  });
});
