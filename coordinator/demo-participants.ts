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
export interface DemoParticipantOptions {
  /** Join token the tabs present (`?token=`), when the coordinator needs one. */
  readonly token?: string;
  /** The coordinator serves HTTPS with a certificate the browser may not trust (it is this machine's own). */
  readonly ignoreHttpsErrors?: boolean;
}

export async function launchDemoParticipants(
  url: string,
  count: number,
  log: (line: string) => void,
  options: DemoParticipantOptions = {},
): Promise<DemoParticipants> {
  const browserPath = findChromium();
  const browser: Browser = await chromium.launch({ executablePath: browserPath, args: CHROMIUM_ARGS, headless: true });
  for (let k = 1; k <= count; k++) {
    const context = await browser.newContext({ ignoreHTTPSErrors: options.ignoreHttpsErrors ?? false });
    const page = await context.newPage();
    page.on('pageerror', (error) => log(`demo participant ${k}: page error: ${error.message}`));
    await page.goto(`${url}/?shard=${k}/${count}${options.token ? `&token=${encodeURIComponent(options.token)}` : ''}`);
  }
  return {
    browserPath,
    async close() {
      await browser.close();
    },
  };
}
