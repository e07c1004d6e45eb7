import { expect, test, type Page } from '@playwright/test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startCoordinatorProcess, type CoordinatorProcess } from './helpers/coordinator-process.ts';
import { SHAPES, writeShapeImages } from './helpers/shape-images.ts';
import { closeTabs, openTab } from './helpers/tabs.ts';

const PER_SHAPE_PER_TAB = 80;
const ROUNDS = 3;

/**
 * A colour image task from the folder picker: a task file with 32x32x3
 * inputs and three classes (circle, square, triangle) whose test set is a
 * folder of generated PNGs; two tabs each choose their own folder of such
 * pictures (one subfolder per shape) with the page's folder input, join, and
 * train the federation's rounds. The coordinator's test accuracy must beat
 * chance (1/3) by a wide margin: 0.5 is more than 4 standard deviations of
 * a guesser's score on 180 test images above chance; runs measured 0.72–0.87.
 */
test('a colour image task trains from the folder picker', async ({ browser }) => {
  const files = mkdtempSync(path.join(tmpdir(), 'fl-colour-shapes-'));
  const pages: Page[] = [];
  let coordinator: CoordinatorProcess | undefined;
  try {
    writeShapeImages(path.join(files, 'task', 'test'), { perShape: 60, seed: 1 });
    const folders = [path.join(files, 'site-a'), path.join(files, 'site-b')];
    for (const [k, folder] of folders.entries()) writeShapeImages(folder, { perShape: PER_SHAPE_PER_TAB, seed: 100 + k });
    const taskFile = path.join(files, 'task', 'task.json');
    writeFileSync(
      taskFile,
      JSON.stringify({
        name: 'colour-shapes',
        model: 'mlp',
        input: { kind: 'image', shape: [32, 32, 3] },
        classes: [...SHAPES],
        data: { test: './test' },
        training: { epochs: 8, batchSize: 16, learningRate: 0.05 },
      }),
    );
    coordinator = await startCoordinatorProcess([
      '--task',
      taskFile,
      '--min-clients',
      '2',
      '--clients-per-round',
      '2',
      '--min-updates',
      '2',
      '--rounds',
      String(ROUNDS),
      '--round-timeout',
      '120',
      '--quiet',
    ]);

    for (const folder of folders) {
      const tab = await openTab(browser, `${coordinator.url}/?data=own&backend=wasm`, { into: pages });
      await expect(tab.locator('#status')).toHaveAttribute('data-status', 'choose-data', { timeout: 30_000 });
      await expect(tab.locator('#image-choice')).toBeVisible();
      await expect(tab.locator('#image-help')).toContainText('32 × 32');
      // The folder picker: Playwright hands the whole directory to the webkitdirectory input.
      await tab.locator('#image-files').setInputFiles(folder);
      await expect(tab.locator('#data-summary')).toContainText((3 * PER_SHAPE_PER_TAB).toLocaleString('en-US'), { timeout: 60_000 });
      await expect(tab.locator('#data-problems li')).toHaveCount(0);
      await expect(tab.locator('#join')).toBeEnabled();
      await tab.locator('#join').click();
    }

    await expect.poll(async () => (await coordinator!.status()).done, { timeout: 4 * 60_000, intervals: [1000] }).toBe(true);
    const status = await coordinator.status();
    expect(status.history.map((r) => [r.outcome, r.received])).toEqual(Array.from({ length: ROUNDS }, () => ['aggregated', 2]));
    expect(status.participants.map((p) => p.numExamples)).toEqual([3 * PER_SHAPE_PER_TAB, 3 * PER_SHAPE_PER_TAB]);
    const accuracy = status.history.at(-1)!.metrics!.accuracy;
    console.log(`colour shapes: test accuracy ${accuracy} after ${ROUNDS} rounds (chance 0.333)`);
    expect(accuracy).toBeGreaterThan(0.5);
    for (const tab of pages) await expect(tab.locator('#contributed')).not.toHaveText('0');
  } finally {
    await closeTabs(pages);
    await coordinator?.stop();
    rmSync(files, { recursive: true, force: true });
  }
});
