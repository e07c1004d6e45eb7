import AxeBuilder from '@axe-core/playwright';
import { expect, test, type Page } from '@playwright/test';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { loadMnistDemo } from '../coordinator/task/demo-data.ts';
import { subset, type Dataset } from '../core/data/dataset.ts';
import { SeededRandom } from '../core/random/prng.ts';
import { startCoordinatorProcess, type CoordinatorProcess } from './helpers/coordinator-process.ts';
import { idxImages, idxLabels } from './helpers/idx-files.ts';
import { closeTabs, openTab } from './helpers/tabs.ts';

const screenshots = path.resolve(import.meta.dirname, 'screenshots');
/** Every identifier in the CSV contains this; it must never appear in anything a tab sends. */
const ID_MARKER = 'QZXSUBJECT';

/**
 * Bring your own data: one tab loads a CSV of digits (label, 784 pixel
 * columns and an identifier column the user drops) through the file
 * chooser, another loads MNIST IDX files (images gzipped, labels raw); both
 * train in one federation on the digits task. Every WebSocket frame and
 * every request the CSV tab sends is inspected: no identifier is in any.
 */
test('a CSV tab with a dropped identifier column and an IDX tab train in one federation; the identifiers never leave the tab', async ({
  browser,
}) => {
  const files = mkdtempSync(path.join(tmpdir(), 'fl-own-data-'));
  const coordinator: CoordinatorProcess = await startCoordinatorProcess([
    '--min-clients',
    '2',
    '--clients-per-round',
    '2',
    '--rounds',
    '3',
    '--round-timeout',
    '60',
    '--quiet',
  ]);
  const pages: Page[] = [];
  try {
    const { train } = await loadMnistDemo();
    const csvFile = path.join(files, 'clinic-digits.csv');
    writeFileSync(csvFile, digitsCsv(subset(train, range(0, 1500))));
    const idx = subset(train, range(1500, 3000));
    const imagesFile = path.join(files, 'train-images-idx3-ubyte.gz');
    const labelsFile = path.join(files, 'train-labels-idx1-ubyte');
    writeFileSync(imagesFile, gzipSync(idxImages(idx)));
    writeFileSync(labelsFile, idxLabels(idx));

    const open = (query: string, viewport?: { width: number; height: number }) =>
      openTab(browser, `${coordinator.url}/?${query}`, { into: pages, context: viewport ? { viewport } : {} });

    // The CSV tab: every frame and request it sends is kept for inspection.
    const csvTab = await open('data=own&backend=wasm');
    const sent: { what: string; text: string }[] = [];
    csvTab.on('websocket', (socket) => {
      socket.on('framesent', (frame) => {
        sent.push({
          what: `frame to ${socket.url()}`,
          text: typeof frame.payload === 'string' ? frame.payload : frame.payload.toString('latin1'),
        });
      });
    });
    csvTab.on('request', (request) => {
      const body = request.postDataBuffer();
      sent.push({ what: `${request.method()} ${request.url()}`, text: request.url() + (body ? body.toString('latin1') : '') });
    });
    await expect(csvTab.locator('#status')).toHaveAttribute('data-status', 'choose-data', { timeout: 30_000 });
    await expect(csvTab.locator('#join')).toBeDisabled();
    await csvTab.locator('#csv-file').setInputFiles(csvFile);
    const idColumn = csvTab.locator('#csv-columns select[data-column="subject_id"]');
    await expect(idColumn).toBeVisible({ timeout: 30_000 });
    await idColumn.selectOption('drop');
    await expect(csvTab.locator('#csv-columns select[data-column="label"]')).toHaveValue('label');
    // The 784 pixel columns are one row with one choice, not 784.
    await expect(csvTab.locator('#csv-columns select[data-column-group="pixels"]')).toHaveValue('feature');
    await expect(csvTab.locator('#csv-columns tbody tr')).toHaveCount(3);
    await expect(csvTab.locator('#data-problems li')).toHaveCount(0);
    await expect(csvTab.locator('#data-summary')).toContainText('1,500');
    await expect(csvTab.locator('#join')).toBeEnabled();
    mkdirSync(screenshots, { recursive: true });
    await csvTab.screenshot({ path: path.join(screenshots, 'participant-csv-columns.png'), fullPage: true });
    await expectNoAxeViolations(csvTab);
    await csvTab.locator('#join').click();

    const idxTab = await open('data=own&backend=wasm');
    await expect(idxTab.locator('#status')).toHaveAttribute('data-status', 'choose-data', { timeout: 30_000 });
    await idxTab.locator('#idx-files').setInputFiles([imagesFile, labelsFile]);
    await expect(idxTab.locator('#data-summary')).toContainText('1,500', { timeout: 30_000 });
    await idxTab.locator('#join').click();

    await expect.poll(async () => (await coordinator.status()).done, { timeout: 4 * 60_000, intervals: [1000] }).toBe(true);
    const status = await coordinator.status();
    expect(status.history).toHaveLength(3);
    expect(status.participants.map((p) => p.numExamples).sort()).toEqual([1500, 1500]);
    for (const p of status.participants) expect(p.roundsContributed, `participant ${p.id}`).toBeGreaterThanOrEqual(2);
    expect(status.history.at(-1)!.metrics!.accuracy).toBeGreaterThan(0.8);
    for (const tab of [csvTab, idxTab]) await expect(tab.locator('#contributed')).not.toHaveText('0');

    // What the CSV tab sent: its updates (binary frames) and protocol messages, never an identifier.
    expect(sent.filter((s) => s.what.startsWith('frame')).length).toBeGreaterThan(3);
    const leaks = sent.filter((s) => s.text.includes(ID_MARKER));
    expect(
      leaks.map((s) => s.what),
      'messages carrying an identifier of the dropped column',
    ).toEqual([]);

    await csvTab.screenshot({ path: path.join(screenshots, 'participant-own-data.png'), fullPage: true });
    await expectNoAxeViolations(csvTab);

    // A phone: the page fits a 375 px screen, passes axe and is usable from the keyboard alone.
    const phone = await open('data=own&backend=wasm', { width: 375, height: 667 });
    await expect(phone.locator('#status')).toHaveAttribute('data-status', 'choose-data', { timeout: 30_000 });
    expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    await expectNoAxeViolations(phone);
    const focused: string[] = [];
    for (let i = 0; i < 25; i++) {
      await phone.keyboard.press('Tab');
      focused.push(await phone.evaluate(() => document.activeElement?.id ?? ''));
    }
    expect(focused).toContain('csv-file');
    expect(focused).toContain('idx-files');
    expect(focused).toContain('leave');
    await phone.screenshot({ path: path.join(screenshots, 'participant-phone.png'), fullPage: true });
  } finally {
    await closeTabs(pages);
    await coordinator.stop();
    rmSync(files, { recursive: true, force: true });
  }
});

async function expectNoAxeViolations(page: Page): Promise<void> {
  const result = await new AxeBuilder({ page }).analyze();
  expect(result.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`)).toEqual([]);
}

function range(start: number, end: number): number[] {
  return Array.from({ length: end - start }, (_, i) => start + i);
}

/** A Kaggle-style digits CSV: an identifier, the label, then 784 pixel columns. */
function digitsCsv(data: Dataset): string {
  const random = new SeededRandom(7);
  const header = ['subject_id', 'label', ...range(0, data.features).map((i) => `pixel${i}`)].join(',');
  const lines = [header];
  for (let i = 0; i < data.count; i++) {
    const id = `${ID_MARKER}-${random.nextUint32().toString(16).padStart(8, '0')}`;
    lines.push(`${id},${data.labels[i]},${Array.from(data.values.subarray(i * data.features, (i + 1) * data.features)).join(',')}`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * The shipped tabular task in browsers: one tab loads a site's CSV through
 * the file chooser (its synthetic "Sample ID" column is suggested for
 * dropping, and dropped), another trains on its shard of the task's public
 * demo CSV; the two reach a useful accuracy on the coordinator's test set.
 */
test('the penguins task: a tab with its own CSV and a tab on the demo CSV train the tabular model together', async ({ browser }) => {
  const coordinator: CoordinatorProcess = await startCoordinatorProcess([
    '--task',
    'tasks/penguins/task.json',
    '--min-clients',
    '2',
    '--clients-per-round',
    '2',
    '--min-updates',
    '2',
    '--rounds',
    '6',
    '--quiet',
  ]);
  const pages: Page[] = [];
  try {
    const open = (query: string) => openTab(browser, `${coordinator.url}/?${query}`, { into: pages });
    const own = await open('data=own&backend=wasm');
    const sent: string[] = [];
    own.on('websocket', (socket) =>
      socket.on('framesent', (frame) => sent.push(typeof frame.payload === 'string' ? frame.payload : frame.payload.toString('latin1'))),
    );
    await expect(own.locator('#status')).toHaveAttribute('data-status', 'choose-data', { timeout: 30_000 });
    await own.locator('#csv-file').setInputFiles(path.resolve(import.meta.dirname, '../tasks/penguins/participants/site-1.csv'));
    await expect(own.locator('#csv-columns select[data-column="Sample ID"]')).toHaveValue('drop', { timeout: 30_000 });
    await expect(own.locator('#csv-columns select[data-column="Sex"]')).toHaveValue('label');
    await expect(own.locator('#csv-columns select[data-column="Island"]')).toHaveValue('feature');
    await expect(own.locator('#data-problems li')).toHaveCount(0);
    await own.locator('#join').click();
    const demo = await open('shard=2/3&backend=wasm');

    await expect.poll(async () => (await coordinator.status()).done, { timeout: 3 * 60_000, intervals: [1000] }).toBe(true);
    const status = await coordinator.status();
    expect(status.history.every((r) => r.outcome === 'aggregated')).toBe(true);
    expect(status.history.at(-1)!.metrics!.accuracy).toBeGreaterThan(0.75);
    for (const tab of [own, demo]) await expect(tab.locator('#contributed')).toHaveText(String(status.history.length));
    expect(sent.length).toBeGreaterThan(3);
    expect(
      sent.filter((payload) => payload.includes('PAL-')),
      'frames carrying a sample id',
    ).toEqual([]);
    await own.screenshot({ path: path.join(screenshots, 'participant-penguins.png'), fullPage: true });
  } finally {
    await closeTabs(pages);
    await coordinator.stop();
  }
});
