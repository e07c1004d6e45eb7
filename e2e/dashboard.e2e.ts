import AxeBuilder from '@axe-core/playwright';
import { expect, test, type Page } from '@playwright/test';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadMnistDemo } from '../coordinator/task/demo-data.ts';
import { initNodeBackend } from '../coordinator/tf-node.ts';
import { accuracyOn, loadSavedModel } from '../test/helpers/saved-model.ts';
import { startCoordinatorProcess, type CoordinatorProcess } from './helpers/coordinator-process.ts';
import { closeTabs, openTab } from './helpers/tabs.ts';

const screenshots = path.resolve(import.meta.dirname, 'screenshots');
const ADMIN_TOKEN = 'dashboard-e2e-admin-token-0123456789';

/**
 * The operator's side: a coordinator that waits for the operator, two tabs,
 * and the dashboard with its admin token. Start, pause (the open round
 * finishes, no new one opens), change the round settings, download the
 * global model and load it in tfjs (its test accuracy is the one the
 * coordinator reported), the run report and the history CSV, resume, stop.
 */
test('dashboard controls start, pause, resume and stop a federation; its downloads load and match the status', async ({ browser }) => {
  const coordinator: CoordinatorProcess = await startCoordinatorProcess(
    [
      '--manual-start',
      '--admin-token',
      ADMIN_TOKEN,
      '--min-clients',
      '2',
      '--clients-per-round',
      '2',
      '--rounds',
      '12',
      '--round-timeout',
      '60',
      '--quiet',
    ],
    { adminToken: ADMIN_TOKEN },
  );
  const pages: Page[] = [];
  const downloads = mkdtempSync(path.join(tmpdir(), 'fl-dashboard-e2e-'));
  try {
    const open = (url: string) => openTab(browser, url, { into: pages, context: { acceptDownloads: true } });
    const tabs = [await open(`${coordinator.url}/?shard=1/2&backend=wasm`), await open(`${coordinator.url}/?shard=2/2&backend=wasm`)];
    const dashboard = await open(`${coordinator.url}/dashboard?token=${ADMIN_TOKEN}`);
    await expect(dashboard.locator('#connection')).toHaveAttribute('data-state', 'live', { timeout: 30_000 });

    // --manual-start: both tabs joined, no round opens until the operator says so.
    await expect.poll(async () => (await coordinator.status()).participants.length, { timeout: 60_000 }).toBe(2);
    let status = await coordinator.status();
    expect(status.control).toBe('awaiting-start');
    expect(status.round).toBe(0);
    await expect(dashboard.locator('#control-pause')).toBeDisabled();
    await dashboard.locator('#control-start').click();
    await expect(dashboard.locator('#control-message')).not.toBeEmpty();
    await expect
      .poll(async () => (await coordinator.status()).history.length, { timeout: 120_000, intervals: [500] })
      .toBeGreaterThanOrEqual(1);

    // Pause: the open round (if any) finishes, then nothing new opens.
    await dashboard.locator('#control-pause').click();
    await expect.poll(async () => (await coordinator.status()).control, { timeout: 10_000 }).toBe('paused');
    await expect.poll(async () => (await coordinator.status()).phase, { timeout: 120_000, intervals: [500] }).toBe('waiting');
    const pausedAt = (await coordinator.status()).history.length;
    await expect(dashboard.locator('#control-resume')).toBeEnabled();

    // Round settings for the next rounds, between rounds.
    await dashboard.locator('#setting-epochs').fill('2');
    await dashboard.locator('#setting-learning-rate').fill('0.05');
    await dashboard.locator('#settings-apply').click();
    await expect.poll(async () => (await coordinator.status()).settings.fit.epochs, { timeout: 10_000 }).toBe(2);
    status = await coordinator.status();
    expect(status.settings.fit.learningRate).toBe(0.05);
    // A bad value is refused with a reason and changes nothing.
    await dashboard.locator('#setting-batch-size').fill('0');
    await dashboard.locator('#settings-apply').click();
    await expect(dashboard.locator('#control-message')).toContainText(/batch/i);
    expect((await coordinator.status()).settings.fit.batchSize).toBe(status.settings.fit.batchSize);

    // Still paused: no round has opened meanwhile.
    status = await coordinator.status();
    expect(status.history.length).toBe(pausedAt);
    expect(status.phase).toBe('waiting');

    // The model download is the current global model: it loads in tfjs and scores what the coordinator reported.
    const save = async (id: string, name: string): Promise<string> => {
      const [download] = await Promise.all([dashboard.waitForEvent('download'), dashboard.locator(id).click()]);
      expect(download.suggestedFilename()).toBe(name);
      const file = path.join(downloads, name);
      await download.saveAs(file);
      return file;
    };
    const modelJson = await save('#download-model-json', 'model.json');
    const weightsBin = await save('#download-model-weights', 'weights.bin');
    const reported = status.history.filter((r) => r.outcome === 'aggregated').at(-1)!.metrics!.accuracy;
    expect(await accuracyOfDownloadedModel(modelJson, weightsBin)).toBeCloseTo(reported, 3);

    // The best round's model is offered beside the last one, and scores what the status says of it.
    await expect(dashboard.locator('#best')).toContainText(`round ${status.best!.round}`);
    const bestJson = await save('#download-best-json', 'model.json');
    const bestWeights = await save('#download-best-weights', 'weights.bin');
    expect(await accuracyOfDownloadedModel(bestJson, bestWeights)).toBeCloseTo(status.best!.metrics.accuracy, 3);

    const reportHtml = readFileSync(await save('#download-report-html', 'report.html'), 'utf8');
    expect(reportHtml).toMatch(/AUC/);
    expect(reportHtml, 'the report is self-contained').not.toMatch(/<script[^>]+src=|<link[^>]+href=/i);
    const report = JSON.parse(readFileSync(await save('#download-report-json', 'report.json'), 'utf8')) as { audit?: { auc?: number } };
    expect(report.audit?.auc).toBeGreaterThan(0);
    expect(report.audit?.auc).toBeLessThan(1);
    const csv = readFileSync(await save('#download-history-csv', 'history.csv'), 'utf8')
      .trim()
      .split('\n');
    expect(csv.length).toBe(1 + status.history.length);

    // Resume: rounds go on, with the new settings.
    await dashboard.locator('#control-resume').click();
    await expect
      .poll(async () => (await coordinator.status()).history.length, { timeout: 180_000, intervals: [500] })
      .toBeGreaterThan(pausedAt);
    await expect(tabs[0]!.locator('#epoch-progress')).toHaveAttribute('max', '2');

    // The dashboard's tables are the status, row for row.
    status = await coordinator.status();
    await expect(dashboard.locator('#participants tbody tr')).toHaveCount(status.participants.length);
    await expect(dashboard.locator('#rounds tbody tr')).toHaveCount((await coordinator.status()).history.length);

    mkdirSync(screenshots, { recursive: true });
    await dashboard.screenshot({ path: path.join(screenshots, 'dashboard-controls.png'), fullPage: true });
    const axe = await new AxeBuilder({ page: dashboard }).analyze();
    expect(axe.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.length})`)).toEqual([]);

    // Stop ends the federation for everyone.
    await dashboard.locator('#control-stop').click();
    await expect.poll(async () => (await coordinator.status()).done, { timeout: 120_000, intervals: [500] }).toBe(true);
    expect((await coordinator.status()).doneReason).toMatch(/operator/);
    for (const tab of tabs) await expect(tab.locator('#status')).toHaveAttribute('data-status', 'done', { timeout: 30_000 });
  } finally {
    await closeTabs(pages);
    await coordinator.stop();
    rmSync(downloads, { recursive: true, force: true });
  }
});

/** Loads the downloaded model.json + weights.bin with tf.loadLayersModel and scores it on the demo test set. */
async function accuracyOfDownloadedModel(modelJsonFile: string, weightsFile: string): Promise<number> {
  await initNodeBackend();
  const manifest = JSON.parse(readFileSync(modelJsonFile, 'utf8')) as { weightsManifest: { paths: string[] }[] };
  expect(manifest.weightsManifest.flatMap((group) => group.paths)).toEqual(['weights.bin']);
  const model = await loadSavedModel(modelJsonFile, weightsFile);
  const accuracy = accuracyOn(model, (await loadMnistDemo()).test);
  model.dispose();
  return accuracy;
}
