import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RoundRecord } from '../../core/protocol/status.ts';
import { SocketTrace } from '../../bench/async-trace.ts';

/** A version's record as the breakdown reads it: when it opened, when it was evaluated, when its updates were taken. */
function version(round: number, startedAt: number, evaluatedAt: number, receivedAt: number[]): RoundRecord {
  return {
    round,
    startedAt,
    durationMs: evaluatedAt - startedAt,
    participants: receivedAt.map((at, k) => ({ id: `p${k}`, outcome: 'received', durationMs: at - startedAt })),
  } as unknown as RoundRecord;
}

describe('bench/async.ts --trace breakdown', () => {
  it('times local runs, waits for the next model, same-base hand-outs and each round’s steps', () => {
    const trace = new SocketTrace();
    // Device 0 uploads into round 1 while it collects and is handed version 0 again at once.
    trace.record(0, { at: 0, kind: 'start', round: 1, version: 0 });
    trace.record(0, { at: 2500, kind: 'update', round: 1, baseVersion: 0 });
    trace.record(0, { at: 2510, kind: 'start', round: 1, version: 0 });
    trace.record(0, { at: 5000, kind: 'update', round: 1, baseVersion: 0 });
    trace.record(0, { at: 5600, kind: 'end', round: 2 });
    trace.record(0, { at: 5610, kind: 'start', round: 3, version: 2 });
    // Device 1's update closes round 1; it waits for version 1 (saved, published, round 2 opened).
    trace.record(1, { at: 0, kind: 'start', round: 1, version: 0 });
    trace.record(1, { at: 2600, kind: 'update', round: 1, baseVersion: 0 });
    trace.record(1, { at: 2950, kind: 'end', round: 1 });
    trace.record(1, { at: 2960, kind: 'start', round: 2, version: 1 });
    trace.record(1, { at: 5600, kind: 'end', round: 2 });
    // After `until`: not counted.
    trace.record(1, { at: 9000, kind: 'update', round: 2, baseVersion: 1 });
    const history = [version(1, 0, 2900, [2500, 2600]), version(2, 2955, 5500, [5000]), version(3, 5605, 9500, [])];
    const b = trace.breakdown(history, [0, 1], 8000);
    assert.deepEqual(b.training, [2500, 2490, 2600]);
    assert.deepEqual(b.waits, [10, 610, 360]);
    assert.equal(b.sameBase, 1, 'device 0 was handed the version its update was trained from');
    assert.deepEqual(b.evaluate, [300, 500]);
    assert.deepEqual(b.save, [50, 100]);
    assert.deepEqual(b.open, [10, 10]);
    assert.equal(b.rounds, 2);
    assert.equal(b.filledAtOpen, 0);
  });

  it('counts the versions filled as they opened from their records, whatever round:starts went out', () => {
    const trace = new SocketTrace();
    // Round 2 was filled by updates held while round 1 was made (taken 0 and 2 ms after it opened), and round:starts of it went out.
    trace.record(0, { at: 0, kind: 'start', round: 1, version: 0 });
    trace.record(0, { at: 3010, kind: 'start', round: 2, version: 1 });
    trace.record(0, { at: 3410, kind: 'start', round: 3, version: 2 });
    const history = [
      version(1, 0, 2900, [2500, 2600]),
      version(2, 3000, 3300, [3000, 3002]),
      // One held update and one trained: not filled at its opening.
      version(3, 3400, 6000, [3400, 5900]),
    ];
    assert.equal(trace.breakdown(history, [0], 10_000).filledAtOpen, 1);
  });
});
