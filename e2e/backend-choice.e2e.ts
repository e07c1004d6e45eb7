import { expect, test, type Page } from '@playwright/test';
import os from 'node:os';
import { startCoordinatorProcess, type CoordinatorProcess } from './helpers/coordinator-process.ts';
import { closeTabs, openTab } from './helpers/tabs.ts';

/**
 * The backend is chosen by measuring. Headless Chromium with
 * --enable-unsafe-webgpu offers a SwiftShader (software) WebGPU adapter, which
 * trains several times slower than WASM on the CPU: the automatic choice must
 * be WASM, threaded (the page is cross-origin isolated), and say why;
 * `?backend=webgpu` still trains. Nothing the pages load is blocked by COEP.
 */
test('automatic choice is threaded WASM over software WebGPU; ?backend=webgpu still trains', async ({ browser }) => {
  const coordinator: CoordinatorProcess = await startCoordinatorProcess([
    '--rounds',
    '2',
    '--min-clients',
    '2',
    '--clients-per-round',
    '2',
    '--round-timeout',
    '120',
    '--quiet',
  ]);
  const pages: Page[] = [];
  const failed: string[] = [];
  const watch = (page: Page) => {
    page.on('requestfailed', (request) => failed.push(`${request.url()}: ${request.failure()?.errorText}`));
    page.on('console', (message) => {
      if (/cross-origin|COEP|blocked/i.test(message.text())) failed.push(`console: ${message.text()}`);
    });
  };
  try {
    const auto = await openTab(browser, `${coordinator.url}/?shard=1/2`, { into: pages });
    watch(auto);

    const response = await auto.request.get(`${coordinator.url}/`);
    expect(response.headers()['cross-origin-opener-policy']).toBe('same-origin');
    expect(response.headers()['cross-origin-embedder-policy']).toBe('require-corp');
    expect(await auto.evaluate(() => crossOriginIsolated)).toBe(true);

    const choice = auto.locator('#backend-choice');
    await expect(choice).toHaveAttribute('data-how', 'measured', { timeout: 60_000 });
    // The WebGPU tab opens once the choice is made: its software adapter would otherwise take the two cores the
    // 2 s measurement runs on, and the budget would run out before WebGPU got its turn.
    const forced = await openTab(browser, `${coordinator.url}/?shard=2/2&backend=webgpu`, { into: pages });
    watch(forced);
    await expect(auto.locator('#backend')).toHaveAttribute('data-backend', 'wasm');
    await expect(choice).toHaveAttribute('data-isolated', 'true');
    const threads = Number(await choice.getAttribute('data-threads'));
    expect(threads).toBeGreaterThanOrEqual(Math.min(2, os.cpus().length));
    // It says why: its own rate, and the software WebGPU adapter it measured against.
    await expect(choice).toContainText(/^WASM, \d+ threads?: [\d,]+ examples\/s \(/);
    await expect(choice).toContainText('WebGPU, software adapter');
    console.log(`automatic choice: ${await choice.textContent()}`);

    await expect(forced.locator('#backend')).toHaveAttribute('data-backend', 'webgpu', { timeout: 60_000 });
    await expect(forced.locator('#backend-choice')).toHaveAttribute('data-how', 'forced');

    // Both train: each sends an update in round 1, and the coordinator sees the WASM threads.
    for (const page of [auto, forced]) await expect(page.locator('#contributed')).not.toHaveText('0', { timeout: 180_000 });
    const status = await coordinator.status();
    const wasm = status.participants.find((p) => p.backend === 'wasm');
    expect(wasm?.threads).toBe(threads);
    expect(status.participants.find((p) => p.backend === 'webgpu')?.roundsContributed).toBeGreaterThan(0);

    // The dashboard works under the same headers.
    const dashboard = await openTab(browser, `${coordinator.url}/dashboard`, { into: pages });
    watch(dashboard);
    await expect(dashboard.locator('#connection')).toHaveAttribute('data-state', 'live');
    await expect(dashboard.locator('#participants tbody tr')).toHaveCount(2);
    await expect(dashboard.locator('#participants')).toContainText(`wasm · ${threads} thread`);

    // The choice is cached for this device, browser and model: a reload does not measure again.
    await auto.reload();
    await expect(auto.locator('#backend-choice')).toHaveAttribute('data-how', 'cached', { timeout: 60_000 });
    await expect(auto.locator('#backend')).toHaveAttribute('data-backend', 'wasm');

    expect(failed).toEqual([]);
  } finally {
    await closeTabs(pages);
    await coordinator.stop();
  }
});
