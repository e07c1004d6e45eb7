import { expect, test, type Page } from '@playwright/test';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { startCoordinatorProcess, type CoordinatorProcess } from './helpers/coordinator-process.ts';
import { closeTabs, openTab } from './helpers/tabs.ts';

const screenshots = path.resolve(import.meta.dirname, 'screenshots');

/**
 * The whole product: the coordinator process, three participant tabs (one
 * forced onto WebGPU), a fourth tab closed in the middle of a round, and the
 * dashboard, on the demo task until 90% test accuracy.
 */
test('three tabs, one on WebGPU, reach 90% within 10 rounds; a tab closed mid-round does not stall it', async ({ browser }) => {
  const coordinator: CoordinatorProcess = await startCoordinatorProcess([
    '--rounds',
    '10',
    '--target-accuracy',
    '0.9',
    '--min-clients',
    '3',
    '--clients-per-round',
    '4',
    '--round-timeout',
    '120',
    '--quiet',
  ]);
  const pages: Page[] = [];
  try {
    const open = (query: string) => openTab(browser, `${coordinator.url}/?${query}`, { into: pages });
    const gpuTab = await open('shard=1/3&backend=webgpu');
    await open('shard=2/3&backend=wasm');
    await open('shard=3/3&backend=wasm');
    const doomed = await open('shard=2/3&backend=wasm');

    // WebGPU was really used: the tab says so, with an adapter, and the coordinator saw it.
    await expect(gpuTab.locator('#backend')).toHaveAttribute('data-backend', 'webgpu', { timeout: 60_000 });
    await expect(gpuTab.locator('#adapter')).not.toBeEmpty();

    // Close the fourth tab while it trains.
    await expect(doomed.locator('#status')).toHaveAttribute('data-status', 'training', { timeout: 120_000 });
    const closedInRound = (await coordinator.status()).round;
    await doomed.context().close();

    const dashboard = await openTab(browser, `${coordinator.url}/dashboard`, { into: pages });
    await expect(dashboard.locator('#connection')).toHaveAttribute('data-state', 'live');

    await expect.poll(async () => (await coordinator.status()).done, { timeout: 5 * 60_000, intervals: [1000] }).toBe(true);
    const status = await coordinator.status();
    const last = status.history.at(-1)!;
    expect(status.doneReason).toMatch(/target accuracy 0.9 reached/);
    expect(last.metrics!.accuracy).toBeGreaterThanOrEqual(0.9);
    expect(status.history.length).toBeLessThanOrEqual(10);

    const gpuParticipants = status.participants.filter((p) => p.backend === 'webgpu');
    expect(gpuParticipants).toHaveLength(1);
    expect(gpuParticipants[0]!.roundsContributed).toBeGreaterThan(0);

    // The round the tab was closed in completed, without waiting for its deadline.
    const closedRound = status.history.find((r) => r.round === closedInRound)!;
    expect(closedRound.outcome).toBe('aggregated');
    expect(closedRound.dropped).toBeGreaterThanOrEqual(1);
    expect(closedRound.durationMs).toBeLessThan(120_000);

    // The dashboard shows every round and the participants.
    await expect(dashboard.locator('#rounds tbody tr')).toHaveCount(status.history.length);
    await expect(dashboard.locator('#participants tbody tr')).toHaveCount(status.participants.length);
    await expect(dashboard.locator('#done')).toContainText('target accuracy');

    // The WebGPU tab leaks no tensors: the count after round 2 equals the count at the end.
    const history = (await gpuTab.locator('#tensors').getAttribute('data-history')) ?? '';
    const counts = history.split(' ').map((pair) => Number(pair.split(':')[1]));
    expect(counts.length).toBeGreaterThanOrEqual(2);
    expect(new Set(counts).size, `tensor counts per round: ${history}`).toBe(1);
    await expect(gpuTab.locator('#global-accuracy')).not.toHaveText('–');

    mkdirSync(screenshots, { recursive: true });
    await dashboard.screenshot({ path: path.join(screenshots, 'dashboard.png'), fullPage: true });
    await gpuTab.screenshot({ path: path.join(screenshots, 'participant-webgpu.png'), fullPage: true });
  } finally {
    await closeTabs(pages);
    await coordinator.stop();
  }
});
