import { chromium, type Browser } from 'playwright';
import { CHROMIUM_ARGS, findChromium } from './browser.ts';

export interface DemoParticipants {
  readonly browserPath: string;
  close(): Promise<void>;
}

/**
 * Opens `count` participant tabs in one headless Chromium, each in its own
 * browser context (its own storage, like a separate device) and with its own
 * shard of the demo data.
 */
export async function launchDemoParticipants(url: string, count: number, log: (line: string) => void): Promise<DemoParticipants> {
  const browserPath = findChromium();
  const browser: Browser = await chromium.launch({ executablePath: browserPath, args: CHROMIUM_ARGS, headless: true });
  for (let k = 1; k <= count; k++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on('pageerror', (error) => log(`demo participant ${k}: page error: ${error.message}`));
    await page.goto(`${url}/?shard=${k}/${count}`);
  }
  return {
    browserPath,
    async close() {
      await browser.close();
    },
  };
}
