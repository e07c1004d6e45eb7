import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ErrorCode } from '../../core/protocol/errors.ts';
import type { FederationStatus } from '../../core/protocol/status.ts';
import { startTestFederation, type TestFederation } from '../helpers/federation.ts';
import { slowdown } from '../helpers/slowed-trainer.ts';

/**
 * Async mode (docs/async.md) with a real coordinator and real Node
 * participants: three fast ones and one whose training takes four times as
 * long. Versions must advance while the slow one trains, its late updates
 * must go in weighted down (refusal past S: test/unit/async-engine.test.ts), and the federation must
 * reach its version count without waiting for it.
 */
describe('async federation over socket.io', () => {
  let federation: TestFederation | undefined;
  after(() => federation?.close());

  it('advances versions while a slow participant trains, and weighs its stale update down', { timeout: 240_000 }, async () => {
    federation = await startTestFederation(
      [
        '--mode',
        'async',
        '--buffer-size',
        '2',
        '--max-staleness',
        '20',
        '--concurrency',
        '4',
        '--rounds',
        '12',
        '--min-clients',
        '4',
        '--epochs',
        '1',
        '--round-timeout',
        '120',
      ],
      4,
      { paces: [undefined, undefined, undefined, slowdown(4)] },
    );
    const { coordinator, participants } = federation;
    const final: FederationStatus = await coordinator.engine.done;
    assert.equal(final.settings.mode, 'async');
    assert.match(final.doneReason ?? '', /completed 12 rounds/);
    const aggregated = final.history.filter((r) => r.outcome === 'aggregated');
    assert.equal(aggregated.length, 12);
    assert.equal(final.modelVersion, 12);
    for (const record of aggregated) {
      assert.ok(record.staleness, `version record ${record.round} has its staleness`);
      assert.equal(
        record.staleness.counts.reduce((a, b) => a + b, 0),
        2,
        'each version is made of exactly K = 2 updates',
      );
    }
    const slowId = participants[3]!.participant.id!;
    // The slow participant's first update: versions were made while it trained.
    const slowVersions = aggregated.filter((r) => r.participants?.some((p) => p.id === slowId && p.outcome === 'received'));
    assert.equal(final.rejections[ErrorCode.UpdateTooStale], undefined, 'nothing was staler than S = 20');
    const firstSlow = slowVersions[0];
    assert.ok(firstSlow && firstSlow.round > 1, 'versions advanced before the slow update arrived');
    assert.ok(firstSlow.staleness!.max >= 1, 'the slow update was stale, so weighted by 1/sqrt(1 + s) < 1');
    // Fast participants were never held back: together they made most versions.
    const fastOnly = aggregated.filter((r) => !r.participants?.some((p) => p.id === slowId));
    assert.ok(fastOnly.length >= 8, `${fastOnly.length} versions without the slow participant`);
    const last = aggregated.at(-1)!;
    assert.ok((last.metrics?.accuracy ?? 0) > 0.5, `accuracy ${last.metrics?.accuracy} after 12 versions`);
  });
});
