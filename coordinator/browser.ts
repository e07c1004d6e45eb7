import { existsSync } from 'node:fs';
import { chromium } from 'playwright';

/**
 * Finds a Chromium to drive: $CHROMIUM_PATH first, then Playwright's own
 * download (`npx playwright install chromium`), then the system's
 * (Debian's `chromium` package). Throws an error that says how to get one.
 */
export function findChromium(env: Record<string, string | undefined> = process.env): string {
  const fromEnv = env.CHROMIUM_PATH;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`CHROMIUM_PATH is set to ${fromEnv}, but there is no file there`);
    return fromEnv;
  }
  try {
    const bundled = chromium.executablePath();
    if (bundled && existsSync(bundled)) return bundled;
  } catch {
    // Playwright has no browser of its own installed.
  }
  for (const candidate of ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable']) {
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(
    'no Chromium found. Install one (Debian/Ubuntu: `sudo apt-get install chromium`; elsewhere: `npx playwright install chromium`) ' +
      'or point CHROMIUM_PATH at a Chromium or Chrome binary.',
  );
}

/**
 * Flags for headless participants: no sandbox (containers, root), no
 * background traffic to Google, and WebGPU enabled (headless Chromium then
 * offers a real adapter, SwiftShader in software when there is no GPU).
 */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--enable-unsafe-webgpu',
  // Hidden or occluded tabs must keep training at full speed.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];
