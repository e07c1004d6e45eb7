import { expect, test, type Page } from '@playwright/test';
import { startCoordinatorProcess, type CoordinatorProcess } from './helpers/coordinator-process.ts';
import { closeTabs, openTab } from './helpers/tabs.ts';

/** tasks/fashion-finetune: 4,810 trainable values (19,256-byte update frames) and 50,240 frozen ones (200,976-byte frame). */
const UPDATE_BYTES = 19_256;
const FROZEN_FRAME_BYTES = 200_976;

/**
 * The shipped fine-tuning task in a tab: the page states the smaller update
 * before the first round and sends exactly that, downloads the frozen
 * weights once, and after a reload takes them from its own IndexedDB cache
 * instead of downloading them again.
 */
test('a fine-tuning tab sends only the trainable weights, and a reloaded tab does not download the frozen ones again', async ({
  browser,
}) => {
  const pages: Page[] = [];
  let coordinator: CoordinatorProcess | undefined;
  try {
    coordinator = await startCoordinatorProcess([
      ...['--task', 'tasks/fashion-finetune/task.json', '--min-clients', '1', '--clients-per-round', '1', '--min-updates', '1'],
      ...['--rounds', '1', '--epochs', '1', '--round-timeout', '120', '--quiet'],
    ]);
    const tab = await openTab(browser, `${coordinator.url}/?shard=1/4&backend=wasm`, { into: pages });
    const frozen = tab.locator('#frozen-weights');
    await expect(frozen).toHaveAttribute('data-source', 'download', { timeout: 60_000 });
    await expect(frozen).toContainText(FROZEN_FRAME_BYTES.toLocaleString('en-US'));
    const sent = tab.locator('#sent');
    await expect(sent).toHaveAttribute('data-bytes-per-round', String(UPDATE_BYTES));
    await expect(sent).toContainText("trains 4,810 of the model's 55,050 parameters");
    await expect(tab.locator('#bytes-sent')).toHaveAttribute('data-bytes', String(UPDATE_BYTES), { timeout: 120_000 });
    await expect(tab.locator('#privacy-note')).toContainText('As stated above.');

    // Same browser profile, new page load: the frozen weights come from IndexedDB.
    await tab.reload();
    await expect(frozen).toHaveAttribute('data-source', 'cache', { timeout: 60_000 });
    await expect(tab.locator('#log')).not.toContainText('downloaded once');
  } finally {
    await closeTabs(pages);
    await coordinator?.stop();
  }
});
