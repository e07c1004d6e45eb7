import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RoundSettings } from '../../core/protocol/status.ts';
import { ConfigError, parseConfig, USAGE, type CoordinatorConfig } from '../../coordinator/config.ts';
import { applySettingsChange, settingsChangeProblem, startSettingsProblem, type StrategyFacts } from '../../coordinator/options/rules.ts';
import { selectedPerRound } from '../../coordinator/options/selection.ts';
import { OPTIONS, PARSE_ARGS_OPTIONS, TASK_FILE_SETTINGS } from '../../coordinator/options/table.ts';

describe('the option table', () => {
  it('declares each option once, and the parser, the help text and the task-file keys all come from it', () => {
    const names = OPTIONS.map((option) => option.name);
    assert.equal(new Set(names).size, names.length, 'no option declared twice');
    assert.deepEqual(Object.keys(PARSE_ARGS_OPTIONS).sort(), [...names].sort());
    for (const option of OPTIONS) {
      assert.equal(PARSE_ARGS_OPTIONS[option.name]?.type, option.type, option.name);
      if (option.help !== undefined) assert.match(USAGE, new RegExp(`^  --${option.name}\\b`, 'm'), option.name);
    }
    assert.doesNotMatch(USAGE, /\{default\}/, 'every default placeholder is filled in');
    const taskKeys = Object.values(TASK_FILE_SETTINGS).flatMap((section) => Object.values(section));
    for (const [flag, kind] of taskKeys) {
      const option = OPTIONS.find((o) => o.name === flag);
      assert.ok(option, `${flag} is an option`);
      assert.equal(kind === 'boolean', option.type === 'boolean', `${flag}: a boolean key is a boolean flag`);
    }
  });

  it('writes the declared defaults into the help text and into the parsed configuration', () => {
    assert.match(USAGE, /--rounds N {15}stop after N rounds \(default 20\)/);
    assert.match(USAGE, /--delta D {16}target delta \(default 1e-5\)/);
    assert.match(USAGE, /--secagg-quantization-range R {3}even integer; step 2C\/R \(default 2\^22\)/);
    const config = parseConfig([], {}) as CoordinatorConfig;
    assert.equal(config.settings.rounds, 20);
    assert.equal(config.security?.participantGraceMs, 120_000);
    assert.equal(config.port, 8080);
    assert.equal((parseConfig([], { PORT: '9000' }) as CoordinatorConfig).port, 9000);
    assert.throws(() => parseConfig(['--client-dp', 'local'], {}), {
      name: 'ConfigError',
      message: '--client-dp must be central or distributed, got "local"',
    });
    assert.throws(() => parseConfig(['--model', 'resnet'], {}), {
      name: 'ConfigError',
      message: '--model must be mlp, 2nn or cnn, got "resnet"',
    });
  });
});

describe('the over-selection count', () => {
  it('is clientsPerRound × (1 + overSelect), rounded up', () => {
    assert.equal(selectedPerRound({ clientsPerRound: 10 }), 10);
    assert.equal(selectedPerRound({ clientsPerRound: 10, overSelect: 0.3 }), 13);
    assert.equal(selectedPerRound({ clientsPerRound: 3, overSelect: 0.1 }), 4);
  });
});

/** The settings parseConfig gives for `flags` (with --clients-per-round 10 unless they set it). */
function parsed(flags: string[]): { settings: RoundSettings; facts: StrategyFacts } {
  const config = parseConfig(flags, {}) as CoordinatorConfig;
  return {
    settings: config.settings,
    facts: { trimFraction: config.strategy?.trimFraction },
  };
}

function startRefuses(flags: string[]): string | undefined {
  try {
    parseConfig(flags, {});
    return undefined;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return error.message;
  }
}

describe('the settings rules', () => {
  it('refuse at start exactly the participants per round that a dashboard change would be refused', () => {
    // `base`: the participants per round the federation started with, before the dashboard changes it to each of `counts`.
    // (A strategy's own rules, e.g. trimmed mean's, are its own check on a change: StrategyFacts.changeProblem.)
    const cases: { flags: string[]; base: number; counts: number[] }[] = [
      { flags: ['--min-updates', '4'], base: 20, counts: [1, 3, 4, 8] },
      // 2^30 steps leave room for at most 3 participants in the mod-2^32 sum; over-selection counts.
      {
        flags: ['--secure-aggregation', '--min-clients', '3', '--secagg-quantization-range', String(2 ** 30), '--over-select', '0.5'],
        base: 1,
        counts: [2, 3, 4],
      },
      { flags: ['--secure-aggregation', '--min-clients', '3', '--secagg-quantization-range', String(2 ** 30)], base: 1, counts: [3, 4, 5] },
    ];
    let refusedSomewhere = 0;
    for (const { flags, base, counts } of cases) {
      const started = parsed([...flags, '--clients-per-round', String(base)]);
      for (const n of counts) {
        const atStart = startRefuses([...flags, '--clients-per-round', String(n)]);
        const onChange = settingsChangeProblem(started.settings, { clientsPerRound: n }, started.facts);
        assert.equal(
          atStart !== undefined,
          onChange !== undefined,
          `${flags.join(' ')} with ${n} per round: at start "${atStart}", on change "${onChange}"`,
        );
        if (atStart !== undefined) refusedSomewhere++;
      }
    }
    assert.ok(refusedSomewhere >= 6, 'the cases reach every rule');
  });

  it('word each problem for where it arises: flags at start, setting names on the dashboard', () => {
    const trimmed = parsed(['--strategy', 'trimmed-mean']);
    assert.equal(
      startSettingsProblem('strategy', { ...trimmed.settings, clientsPerRound: 5 }, trimmed.facts),
      '--trim-fraction 0.1 trims ⌊0.1 × 5⌋ = 0 updates at each end with --clients-per-round 5: it would be a plain mean; use --trim-fraction of at least 0.200, or more participants per round',
    );
    const plain = parsed(['--min-updates', '3']);
    assert.equal(
      startSettingsProblem('settings', { ...plain.settings, clientsPerRound: 2 }),
      '--clients-per-round (2) must be at least --min-updates (3)',
    );
    assert.equal(
      settingsChangeProblem(plain.settings, { clientsPerRound: 2 }, plain.facts),
      'clientsPerRound (2) must be at least minUpdates (3), as --clients-per-round must be at least --min-updates',
    );
  });

  it("keep for a change what only a change can break: the strategy's own rules, DP-SGD steps and the three-party secure sum", () => {
    // The strategy's own check runs after the range and min-updates rules and before the secure-sum ones.
    const strategyRefuses: StrategyFacts = {
      changeProblem: (change) => (change.clientsPerRound === 7 ? 'the strategy refuses 7' : undefined),
    };
    const plain = parsed(['--min-updates', '5']);
    assert.equal(settingsChangeProblem(plain.settings, { clientsPerRound: 7 }, strategyRefuses), 'the strategy refuses 7');
    assert.match(settingsChangeProblem(plain.settings, { clientsPerRound: 4 }, strategyRefuses) ?? '', /must be at least minUpdates/);
    assert.match(settingsChangeProblem(plain.settings, { clientsPerRound: 0 }, strategyRefuses) ?? '', /must be an integer in/);
    assert.equal(settingsChangeProblem(plain.settings, { clientsPerRound: 8 }, strategyRefuses), undefined);
    const dpSgd = parsed(['--dp-sgd-clip', '1', '--dp-sgd-noise-multiplier', '1.1']);
    assert.match(settingsChangeProblem(dpSgd.settings, { epochs: 2 }, dpSgd.facts) ?? '', /^epochs cannot change under DP-SGD/);
    assert.match(settingsChangeProblem(dpSgd.settings, { batchSize: 64 }, dpSgd.facts) ?? '', /^batchSize cannot change under DP-SGD/);
    assert.equal(
      settingsChangeProblem(dpSgd.settings, { epochs: 1, batchSize: 32, learningRate: 0.2 }, dpSgd.facts),
      undefined,
      'unchanged values pass',
    );
    // Two selected are allowed at start (three share holders are required of --min-clients instead), never as a change.
    const secure = parsed(['--secure-aggregation', '--min-clients', '3', '--clients-per-round', '2', '--min-updates', '1']);
    assert.match(
      settingsChangeProblem({ ...secure.settings, clientsPerRound: 4 }, { clientsPerRound: 2 }, secure.facts) ?? '',
      /a secure sum of fewer than three updates/,
    );
    assert.match(
      settingsChangeProblem(secure.settings, { roundTimeoutMs: 500 }, secure.facts) ?? '',
      /^roundTimeoutMs must be between 1000/,
    );
  });

  it('apply a change to the settings it names only', () => {
    const { settings } = parsed([]);
    const next = applySettingsChange(settings, { clientsPerRound: 4, learningRate: 0.5 });
    assert.deepEqual(next, { ...settings, clientsPerRound: 4, fit: { ...settings.fit, learningRate: 0.5 } });
  });
});
