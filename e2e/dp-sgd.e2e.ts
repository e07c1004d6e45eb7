import { expect, test, type Page } from '@playwright/test';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadMnistDemo } from '../coordinator/task/demo-data.ts';
import { subset } from '../core/data/dataset.ts';
import { startCoordinatorProcess } from './helpers/coordinator-process.ts';
import { idxImages, idxLabels } from './helpers/idx-files.ts';
import { closeTabs, openTab } from './helpers/tabs.ts';

const epsilonOf = async (page: Page) => Number(await page.locator('#epsilon').getAttribute('data-epsilon'));

/**
 * Sample-level DP-SGD in three tabs: each shows its ε, ε only grows, the
 * ledger survives a reload, and the tab with a small budget stops
 * contributing while the others carry on.
 */
test('three tabs with DP-SGD keep per-dataset privacy ledgers', async ({ browser }) => {
  const coordinator = await startCoordinatorProcess([
    '--rounds',
    '5',
    '--min-clients',
    '2',
    '--clients-per-round',
    '3',
    '--round-timeout',
    '120',
    '--learning-rate',
    '0.5',
    '--dp-sgd-clip',
    '1',
    '--dp-sgd-noise-multiplier',
    '1.1',
    '--dp-sgd-batch-size',
    '50',
    '--quiet',
  ]);
  const pages: Page[] = [];
  try {
    const open = (query: string) => openTab(browser, `${coordinator.url}/?${query}`, { into: pages });
    // 8,000 / 16 = 500 examples per tab: 10 DP-SGD steps per round.
    const a = await open('shard=1/16&backend=wasm');
    const b = await open('shard=2/16&backend=wasm');
    // Under the default accountant (auto: PLD here) one round costs ε ≈ 2.35, two ≈ 2.98, three ≈ 3.48 (RDP: 2.84, 3.50, 4.03;
    // npm run privacy -- --sample-rate 0.1 --noise-multiplier 1.1 --steps 10): this tab trains twice.
    const small = await open('shard=3/16&backend=wasm&epsilon-budget=3.2');
    for (const page of [a, b, small]) await expect(page.locator('#dp-section')).toBeVisible({ timeout: 60_000 });
    await expect(a.locator('#dp-info')).toContainText('vectorised');

    // ε appears and, after two updates, the tab is reloaded: its ledger continues.
    await expect
      .poll(async () => ((await a.locator('#epsilon').getAttribute('data-history')) ?? '').split(' ').filter(Boolean).length, {
        timeout: 120_000,
      })
      .toBeGreaterThanOrEqual(2);
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
    await closeTabs(pages);
    await coordinator.stop();
  }
});

/**
 * A person's own files share one ledger per task in the browser: after a
 * reload, an edited file (here: one example fewer) continues the ε its first
 * version spent instead of starting again at 0.
 */
test('own files with DP-SGD: an edited file continues the same privacy ledger', async ({ browser }) => {
  const files = mkdtempSync(path.join(tmpdir(), 'fl-dp-own-'));
  const coordinator = await startCoordinatorProcess([
    // One round: the ε the first file spent is final before the edited file is loaded.
    '--rounds',
    '1',
    '--min-clients',
    '1',
    '--clients-per-round',
    '1',
    '--round-timeout',
    '60',
    '--dp-sgd-clip',
    '1',
    '--dp-sgd-noise-multiplier',
    '1.1',
    '--dp-sgd-batch-size',
    '50',
    '--quiet',
  ]);
  const context = await browser.newContext();
  try {
    const { train } = await loadMnistDemo();
    const write = (name: string, count: number) => {
      const data = subset(
        train,
        Array.from({ length: count }, (_, i) => i),
      );
      const dir = path.join(files, name);
      mkdirSync(dir);
      writeFileSync(path.join(dir, 'train-images-idx3-ubyte'), idxImages(data));
      writeFileSync(path.join(dir, 'train-labels-idx1-ubyte'), idxLabels(data));
      return [path.join(dir, 'train-images-idx3-ubyte'), path.join(dir, 'train-labels-idx1-ubyte')];
    };
    const page = await context.newPage();
    const join = async (idx: string[]) => {
      await page.goto(`${coordinator.url}/?data=own&backend=wasm`);
      await expect(page.locator('#status')).toHaveAttribute('data-status', 'choose-data', { timeout: 30_000 });
      await page.locator('#idx-files').setInputFiles(idx);
      await expect(page.locator('#join')).toBeEnabled({ timeout: 30_000 });
      await page.locator('#join').click();
      await expect(page.locator('#dp-section')).toBeVisible({ timeout: 60_000 });
    };
    await join(write('first', 500));
    await expect(page.locator('#dp-info')).toContainText('whatever file it came from');
    await expect.poll(async () => (await coordinator.status()).done, { timeout: 120_000 }).toBe(true);
    const spent = await epsilonOf(page);
    expect(spent).toBeGreaterThan(0);

    // The same person edits the file (one row fewer) and joins again from the same browser.
    await join(write('edited', 499));
    // A fresh ledger would show nothing spent (its ε = 0 is not in the history).
    await expect(page.locator('#epsilon')).toHaveAttribute('data-history', String(spent), { timeout: 30_000 });
  } finally {
    await context.close().catch(() => {});
    await coordinator.stop();
    rmSync(files, { recursive: true, force: true });
  }
});
