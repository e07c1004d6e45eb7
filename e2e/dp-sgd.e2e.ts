import { expect, test, type BrowserContext, type Page } from '@playwright/test';
import { startCoordinatorProcess } from './helpers/coordinator-process.ts';

const epsilonOf = async (page: Page) => Number(await page.locator('#epsilon').getAttribute('data-epsilon'));

/**
 * Sample-level DP-SGD in three tabs: each shows its ε, ε only grows, the
 * ledger survives a reload, and the tab with a small budget stops
 * contributing while the others carry on.
 */
test('three tabs with DP-SGD keep per-dataset privacy ledgers', async ({ browser }) => {
  const coordinator = await startCoordinatorProcess([
    '--rounds', '5', '--min-clients', '2', '--clients-per-round', '3', '--round-timeout', '120', '--learning-rate', '0.5',
    '--dp-sgd-clip', '1', '--dp-sgd-noise-multiplier', '1.1', '--dp-sgd-batch-size', '50', '--quiet',
  ]);
  const contexts: BrowserContext[] = [];
  try {
    const open = async (query: string) => {
      const context = await browser.newContext();
      contexts.push(context);
      const page = await context.newPage();
      page.on('pageerror', (error) => console.log(`page error (${query}): ${error.message}`));
      await page.goto(`${coordinator.url}/?${query}`);
      return page;
    };
    // 8,000 / 16 = 500 examples per tab: 10 DP-SGD steps per round.
    const a = await open('shard=1/16&backend=wasm');
    const b = await open('shard=2/16&backend=wasm');
    // One round costs ε ≈ 2.84 and two ≈ 3.50 (npm run privacy -- --sample-rate 0.1 --noise-multiplier 1.1 --steps 10): this tab trains once.
    const small = await open('shard=3/16&backend=wasm&epsilon-budget=3.2');
    for (const page of [a, b, small]) await expect(page.locator('#dp-section')).toBeVisible({ timeout: 60_000 });
    await expect(a.locator('#dp-info')).toContainText('vectorised');

    // ε appears and, after two updates, the tab is reloaded: its ledger continues.
    await expect.poll(async () => ((await a.locator('#epsilon').getAttribute('data-history')) ?? '').split(' ').filter(Boolean).length, { timeout: 120_000 }).toBeGreaterThanOrEqual(2);
    const beforeReload = await epsilonOf(a);
    expect(beforeReload).toBeGreaterThan(0);
    await a.reload();
    await expect(a.locator('#dp-section')).toBeVisible({ timeout: 60_000 });
    await expect.poll(() => epsilonOf(a), { timeout: 30_000 }).toBeGreaterThanOrEqual(beforeReload);
    const history = ((await a.locator('#epsilon').getAttribute('data-history')) ?? '').split(' ').filter(Boolean).map(Number);
    expect(history[0], 'the reloaded tab starts from the saved ε').toBeCloseTo(beforeReload, 12);

    // The small budget is spent and that tab retires; the federation finishes without it.
    await expect(small.locator('#epsilon')).toHaveAttribute('data-exhausted', 'true', { timeout: 180_000 });
    await expect.poll(async () => (await coordinator.status()).done, { timeout: 180_000 }).toBe(true);
    const status = await coordinator.status();
    expect(status.history).toHaveLength(5);
    const retired = status.participants.filter((p) => p.state === 'retired');
    expect(retired).toHaveLength(1);
    expect(retired[0]!.declined).toMatch(/privacy budget spent/);
    expect(retired[0]!.epsilon!).toBeLessThanOrEqual(3.2);
    expect(status.history.at(-1)!.received).toBeGreaterThanOrEqual(1);

    // Every tab's ε only grew, round after round.
    for (const page of [b, small]) {
      const values = ((await page.locator('#epsilon').getAttribute('data-history')) ?? '').split(' ').filter(Boolean).map(Number);
      expect(values.length).toBeGreaterThanOrEqual(1);
      for (let i = 1; i < values.length; i++) expect(values[i]!).toBeGreaterThan(values[i - 1]!);
    }
  } finally {
    for (const context of contexts) await context.close().catch(() => {});
    await coordinator.stop();
  }
});
