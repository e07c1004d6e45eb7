import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { settingsChangeProblem } from '../../coordinator/options/rules.ts';
import { TASK_FILE_SETTINGS } from '../../coordinator/options/table.ts';
import { secAggSettingsForModel } from '../../coordinator/secagg-words-config.ts';
import { secAggConfigFor } from '../../coordinator/rounds/secure-round.ts';
import { validateConfig } from '../../core/secagg/protocol.ts';
import { distributedClientDp } from '../helpers/client-dp-flags.ts';

const SECURE = ['--secure-aggregation', '--min-clients', '3', '--clients-per-round', '10', '--min-updates', '3'];
const parse = (...flags: string[]) => parseConfig(flags, {}) as CoordinatorConfig;

const DISTRIBUTED = [...distributedClientDp(10), '--admin-token', 'secagg-compression-admin'];

describe('--update-encoding under secure aggregation', () => {
  it('is the flag of the task file key communication.updateEncoding', () => {
    assert.deepEqual(TASK_FILE_SETTINGS.communication.updateEncoding, ['update-encoding', 'string']);
  });

  it('keeps 32-bit words and the configured quantisation range for float32 (the default)', () => {
    const secure = parse(...SECURE).settings.secureAggregation!;
    assert.equal(secure.quantizationRange, 2 ** 22);
    assert.equal(secure.wordBits, undefined);
    assert.equal(secAggConfigFor(1, 10, 100, secure).wordBits, undefined);
  });

  it('sizes int8 and int4 words for the participants per round: value bits + ⌈log2 n⌉ + 1', () => {
    const int8 = parse(...SECURE, '--update-encoding', 'int8').settings.secureAggregation!;
    assert.deepEqual([int8.quantizationRange, int8.wordBits, int8.maxParticipants], [254, 13, 16]);
    const int4 = parse(...SECURE, '--update-encoding', 'int4', '--clients-per-round', '100').settings.secureAggregation!;
    assert.deepEqual([int4.quantizationRange, int4.wordBits, int4.maxParticipants], [14, 12, 146]);
    // Over-selection counts: 10 × 1.7 = 17 selected need one more bit.
    assert.equal(parse(...SECURE, '--update-encoding', 'int8', '--over-select', '0.7').settings.secureAggregation!.wordBits, 14);
    const round = secAggConfigFor(1, 10, 100, int8);
    assert.equal(round.wordBits, 13);
    validateConfig(round);
  });

  it('refuses what the masked words cannot carry, at start', () => {
    assert.throws(() => parse(...SECURE, '--update-encoding', 'float16'), /float16 cannot run with --secure-aggregation/);
    assert.throws(
      () => parse(...SECURE, '--update-encoding', 'int8', '--secagg-quantization-range', '1024'),
      /--secagg-quantization-range cannot be set with --update-encoding int8/,
    );
    // Without secure aggregation int8 is the plain path's encoding (docs/compression.md): no masked words to size.
    assert.equal(parse('--update-encoding', 'int8').settings.secureAggregation, undefined);
    assert.equal(parse('--update-encoding', 'int8').settings.updateEncoding, 'int8');
    assert.throws(() => parse(...SECURE, '--update-encoding', 'int2'), /must be float32, float16, int8 or int4/);
  });

  it('refuses a dashboard change to more participants than the words hold, and a round that opens with more', () => {
    const settings = parse(...SECURE, '--update-encoding', 'int8').settings;
    assert.equal(settingsChangeProblem(settings, { clientsPerRound: 16 }), undefined);
    assert.match(
      settingsChangeProblem(settings, { clientsPerRound: 17 }) ?? '',
      /overflow the 13-bit masked words sized at start: at most 16/,
    );
    // Before: the 32-bit rule allowed up to ⌊(2^31 − 1)/127⌋ participants of an R = 254 sum.
    const round = secAggConfigFor(1, 17, 100, settings.secureAggregation!);
    assert.throws(() => validateConfig(round), /17 participants could overflow the mod-2\^13 sum/);
  });

  it('refuses a clip range that would clip the Gaussian noise share, rather than clip it silently', () => {
    const gaussian = ['--distributed-noise', 'gaussian'];
    const tight = parse(...SECURE, ...DISTRIBUTED, ...gaussian, '--update-encoding', 'int8', '--secagg-clip-range', '2');
    assert.throws(
      () => secAggSettingsForModel(tight, 100_000),
      /--secagg-clip-range 2 cannot hold the noise share of std 0\.316.*at least 3\.6/,
    );
    // The default c = max(8, C) holds σ = zC/√m = 0.316 with its tail: 1 + 8.4·0.316 ≈ 3.66.
    const roomy = parse(...SECURE, ...DISTRIBUTED, ...gaussian, '--update-encoding', 'int8');
    assert.equal(secAggSettingsForModel(roomy, 100_000), roomy.settings);
  });

  it('widens the words for Skellam noise, which lives in the ring unclipped', () => {
    const config = parse(...SECURE, ...DISTRIBUTED, '--update-encoding', 'int8', '--distributed-noise', 'skellam', '--min-updates', '10');
    // d = 100,000: the conditionally rounded sensitivity grows as √d/2, and so does the sum's noise.
    const secure = secAggSettingsForModel(config, 100_000).secureAggregation!;
    assert.ok(secure.wordBits! > 13, `b = ${secure.wordBits}`);
    assert.ok(secure.maxParticipants! >= 10);
    // Unwidened, 12 std of the sum's noise would not fit the 13-bit half-ring.
    assert.equal(config.settings.secureAggregation!.wordBits, 13);
  });
});
