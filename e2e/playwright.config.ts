import { defineConfig } from '@playwright/test';
import { CHROMIUM_ARGS, findChromium } from '../coordinator/browser.ts';

// Debian's Chromium unless CHROMIUM_PATH or Playwright's own browser is there;
// findChromium() fails with a message that says how to get one.
export default defineConfig({
  testDir: '.',
  testMatch: /.*\.e2e\.ts$/,
  timeout: 6 * 60_000,
  workers: 1,
  fullyParallel: false,
  retries: 0,
  reporter: [['list']],
  outputDir: '../test-results',
  use: {
    launchOptions: { executablePath: findChromium(), args: CHROMIUM_ARGS },
    headless: true,
    viewport: { width: 1200, height: 900 },
  },
});
