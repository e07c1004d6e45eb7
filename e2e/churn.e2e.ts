import { expect, test, type Page } from '@playwright/test';
import { SeededRandom } from '../core/random/prng.ts';
import { startCoordinatorProcess } from './helpers/coordinator-process.ts';
import { closeTabs, openTab } from './helpers/tabs.ts';

/**
 * Churn: eight tabs, closed and reopened at random while rounds run. Every
 * round must close by its deadline, every update a tab got accepted must be
 * in an aggregated round, and the federation must still reach its target.
 */
test('eight tabs closed and reopened at random: rounds finish, accepted updates count, target reached', async ({ browser }) => {
  test.setTimeout(8 * 60_000);
  const deadlineSeconds = 30;
  const coordinator = await startCoordinatorProcess([
    '--rounds',
    '25',
    '--target-accuracy',
    '0.9',
    '--min-clients',
    '3',
    '--clients-per-round',
    '8',
    '--min-updates',
    '1',
    '--round-timeout',
    String(deadlineSeconds),
    '--quiet',
  ]);
  const random = new SeededRandom(2024);
  const tabs: { page: Page; shard: number }[] = [];
  const accepted: number[] = [];
  const open = async (shard: number) => ({ page: await openTab(browser, `${coordinator.url}/?shard=${shard}/8&backend=wasm`), shard });
  const uploadedRounds = async (page: Page) =>
    ((await page.locator('#contributed').getAttribute('data-rounds')) ?? '').split(' ').filter(Boolean).map(Number);
  try {
    for (let shard = 1; shard <= 8; shard++) tabs.push(await open(shard));
    let closes = 0;
    while (!(await coordinator.status()).done) {
      await new Promise((resolve) => setTimeout(resolve, 300 + random.next() * 1000));
      const i = Math.floor(random.next() * tabs.length);
      const tab = tabs[i]!;
      accepted.push(...(await uploadedRounds(tab.page)));
      await tab.page.context().close();
      closes++;
      tabs[i] = await open(tab.shard);
    }
    for (const tab of tabs) accepted.push(...(await uploadedRounds(tab.page)));
    expect(closes).toBeGreaterThanOrEqual(5);

    const status = await coordinator.status();
    expect(status.doneReason).toMatch(/target accuracy 0.9 reached/);
    for (const round of status.history) {
      expect(round.durationMs, `round ${round.round} closed by its deadline`).toBeLessThanOrEqual(deadlineSeconds * 1000 + 2000);
    }
    // An update that was acknowledged is never lost: its round was aggregated, counting it.
    const byRound = new Map(status.history.map((r) => [r.round, r]));
    const perRound = new Map<number, number>();
    for (const round of accepted) perRound.set(round, (perRound.get(round) ?? 0) + 1);
    for (const [round, count] of perRound) {
      const record = byRound.get(round);
      expect(record?.outcome, `round ${round}`).toBe('aggregated');
      expect(record!.received).toBeGreaterThanOrEqual(count);
    }
  } finally {
    await closeTabs(tabs.map((tab) => tab.page));
    await coordinator.stop();
  }
});
