import { expect, test, type Page } from '@playwright/test';
import { startCoordinatorProcess, type CoordinatorProcess } from './helpers/coordinator-process.ts';
import { closeTabs, openTab } from './helpers/tabs.ts';

/**
 * Compressed traffic in real tabs (docs/compression.md): three tabs send int8
 * updates and receive the model as float16, and the demo federation still
 * reaches the float32 demo's 90% within 10 rounds; each page states the
 * encoding and the bytes it really sent.
 */
test('three tabs with int8 updates and a float16 model reach 90% within 10 rounds, sending a quarter of the bytes', async ({ browser }) => {
  const coordinator: CoordinatorProcess = await startCoordinatorProcess([
    ...['--update-encoding', 'int8', '--model-encoding', 'float16'],
    ...['--rounds', '10', '--target-accuracy', '0.9', '--min-clients', '3', '--clients-per-round', '3', '--round-timeout', '120'],
    '--quiet',
  ]);
  const pages: Page[] = [];
  try {
    for (const shard of ['1/3', '2/3', '3/3']) await openTab(browser, `${coordinator.url}/?shard=${shard}&backend=wasm`, { into: pages });

    await expect.poll(async () => (await coordinator.status()).done, { timeout: 5 * 60_000, intervals: [1000] }).toBe(true);
    const status = await coordinator.status();
    expect(status.settings.updateEncoding).toBe('int8');
    expect(status.doneReason).toMatch(/target accuracy 0.9 reached/);
    expect(status.history.at(-1)!.metrics!.accuracy).toBeGreaterThanOrEqual(0.9);
    for (const round of status.history.filter((r) => r.outcome === 'aggregated')) {
      expect(round.encoding).toMatchObject({ update: 'int8', model: 'float16' });
      expect(round.bytesIn / round.encoding!.bytesInFloat32).toBeLessThanOrEqual(0.26);
      expect(round.bytesOut / round.encoding!.bytesOutFloat32).toBeLessThanOrEqual(0.51);
    }
    // "What leaves this device" names the encoding, and the bytes sent are the ones the page announced.
    for (const page of pages) {
      await expect(page.locator('#bytes-sent')).toHaveAttribute('data-encoding', 'int8');
      await expect(page.locator('#bytes-sent')).toContainText('as int8');
      await expect(page.locator('#privacy-note')).toContainText('As stated above.');
    }
  } finally {
    await closeTabs(pages);
    await coordinator.stop();
  }
});
