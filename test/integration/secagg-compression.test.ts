import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RoundRecord, SecureAggregationSettings } from '../../core/protocol/status.ts';
import { rotatedLengthFor } from '../../core/compression/update-codec.ts';
import { packedBytes } from '../../core/secagg/word-packing.ts';
import { startTestFederation } from '../helpers/federation.ts';

/**
 * The demo federation under secure aggregation with --update-encoding int8
 * (11-bit masked words for 4 participants) against the same
 * federation with 32-bit words: the int8 run must reach the float32 run's
 * accuracy band, every round must be aggregated from packed words, and the
 * coordinator must have received b/32 of the float32 run's masked bytes.
 */

const PARTICIPANTS = 4;
const ROUNDS = 3;
/** Accuracy points the int8 run may lose against float32 after the same rounds. */
const BAND = 0.03;

async function federation(
  flags: readonly string[],
): Promise<{ history: readonly RoundRecord[]; wordBits: number; paramCount: number; secure: SecureAggregationSettings }> {
  const fed = await startTestFederation(
    [
      ...['--rounds', String(ROUNDS), '--min-clients', String(PARTICIPANTS), '--clients-per-round', String(PARTICIPANTS)],
      ...['--min-updates', String(PARTICIPANTS), '--round-timeout', '120', '--seed', '7'],
      ...['--secure-aggregation', '--secagg-step-timeout', '30'],
      ...flags,
    ],
    PARTICIPANTS,
  );
  try {
    const final = await fed.coordinator.done;
    return {
      history: final.history,
      wordBits: final.settings.secureAggregation?.wordBits ?? 32,
      paramCount: fed.coordinator.task.paramCount,
      secure: final.settings.secureAggregation!,
    };
  } finally {
    await fed.close();
  }
}

describe('secure aggregation with int8 updates (packed small-modulus words)', () => {
  it('reaches the float32 secure run’s accuracy band with 11-bit words', { timeout: 240_000 }, async () => {
    const wide = await federation([]);
    // The default clip range c = 8: Δ = 16/254 per value, unbiased stochastic rounding.
    const narrow = await federation(['--update-encoding', 'int8']);
    assert.equal(wide.wordBits, 32);
    assert.equal(narrow.wordBits, 11, 'int8 for 4 participants: 8 + ⌈log2 4⌉ + 1');
    for (const run of [wide, narrow]) {
      assert.equal(run.history.length, ROUNDS);
      assert.ok(
        run.history.every((r) => r.outcome === 'aggregated'),
        JSON.stringify(run.history.map((r) => [r.outcome, r.reason])),
      );
    }
    const accuracy = (run: { history: readonly RoundRecord[] }) => run.history.at(-1)!.metrics!.accuracy;
    console.log(`accuracy after ${ROUNDS} rounds: float32 ${accuracy(wide)}, int8 ${accuracy(narrow)}`);
    assert.ok(accuracy(wide) > 0.8, `float32 secure accuracy ${accuracy(wide)}`);
    assert.ok(accuracy(narrow) >= accuracy(wide) - BAND, `int8 ${accuracy(narrow)} vs float32 ${accuracy(wide)}`);
    // What arrived: PARTICIPANTS masked vectors per round, packed 11 bits per value instead of 32.
    for (const r of wide.history) assert.equal(r.bytesIn, PARTICIPANTS * 4 * wide.paramCount);
    for (const r of narrow.history) assert.equal(r.bytesIn, PARTICIPANTS * packedBytes(narrow.paramCount, 11));
  });

  it('int4 rotated with the round seed: a derived clip range, the padded vector, and a trained model', { timeout: 240_000 }, async () => {
    // An L2 clip C = 1 and no --secagg-clip-range: c comes from the rotated bound, about 0.26·C (docs/secagg-compression.md).
    const run = await federation(['--update-encoding', 'int4', '--clip-norm', '1']);
    assert.equal(run.secure.rotated, true);
    assert.equal(run.secure.derivedClipRange, true);
    assert.ok(run.secure.clipRange > 0.2 && run.secure.clipRange < 0.3, `c = ${run.secure.clipRange}`);
    assert.equal(run.wordBits, 7, 'int4 for 4 participants: 4 + ⌈log2 4⌉ + 1');
    assert.ok(
      run.history.every((r) => r.outcome === 'aggregated'),
      JSON.stringify(run.history.map((r) => [r.outcome, r.reason])),
    );
    // Every participant rotated and padded its update to whole blocks; the coordinator rotated the sum back once.
    for (const r of run.history) assert.equal(r.bytesIn, PARTICIPANTS * packedBytes(rotatedLengthFor(run.paramCount), 7));
    const accuracy = run.history.at(-1)!.metrics!.accuracy;
    console.log(`accuracy after ${ROUNDS} rounds: int4 rotated ${accuracy}`);
    assert.ok(accuracy > 0.8, `int4 rotated accuracy ${accuracy}`);
  });
});
