import { expect, test, type Page } from '@playwright/test';
import { startCoordinatorProcess, type CoordinatorProcess } from './helpers/coordinator-process.ts';
import { closeTabs, openTab } from './helpers/tabs.ts';

/**
 * Async mode (docs/async.md) in real tabs: three participant tabs train
 * continuously and every two accepted updates make a model version, until
 * the sync demo's 90% test accuracy; the dashboard shows the async panel.
 */
test('three tabs in async mode reach the sync demo accuracy (90%)', async ({ browser }) => {
  const coordinator: CoordinatorProcess = await startCoordinatorProcess([
    '--mode',
    'async',
    '--buffer-size',
    '2',
    '--concurrency',
    '3',
    '--max-staleness',
    '10',
    '--rounds',
    '60',
    '--target-accuracy',
    '0.9',
    '--min-clients',
    '3',
    '--round-timeout',
    '120',
    '--quiet',
  ]);
  const pages: Page[] = [];
  try {
    for (const shard of ['1/3', '2/3', '3/3']) await openTab(browser, `${coordinator.url}/?shard=${shard}&backend=wasm`, { into: pages });
    const dashboard = await openTab(browser, `${coordinator.url}/dashboard`, { into: pages });
    await expect(dashboard.locator('#connection')).toHaveAttribute('data-state', 'live');
    await expect(dashboard.locator('#async-section')).toBeVisible({ timeout: 60_000 });

    await expect.poll(async () => (await coordinator.status()).done, { timeout: 5 * 60_000, intervals: [1000] }).toBe(true);
    const status = await coordinator.status();
    expect(status.settings.mode).toBe('async');
    expect(status.doneReason).toMatch(/target accuracy 0.9 reached/);
    const versions = status.history.filter((r) => r.outcome === 'aggregated');
    expect(versions.at(-1)!.metrics!.accuracy).toBeGreaterThanOrEqual(0.9);
    for (const version of versions) expect(version.staleness!.counts.reduce((a, b) => a + b, 0)).toBe(2);
    // Every tab contributed.
    expect(status.participants.filter((p) => p.roundsContributed > 0)).toHaveLength(3);
    await expect(dashboard.locator('#async-rate')).not.toHaveText('–');
    await expect(dashboard.locator('#async-settings')).toContainText('K = 2');
  } finally {
    await closeTabs(pages);
    await coordinator.stop();
  }
});
