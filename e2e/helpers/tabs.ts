import type { Browser, BrowserContextOptions, Page } from '@playwright/test';

/**
 * Opens `url` in a tab of its own browser context (its own storage, so each
 * tab is a separate participant) and logs the page's uncaught errors. With
 * `into`, the page is added there for closeTabs.
 */
export async function openTab(
  browser: Browser,
  url: string,
  options: { readonly into?: Page[]; readonly context?: BrowserContextOptions } = {},
): Promise<Page> {
  const page = await (await browser.newContext(options.context)).newPage();
  page.on('pageerror', (error) => console.log(`page error (${url}): ${error.message}`));
  await page.goto(url);
  options.into?.push(page);
  return page;
}

/** Closes each page's browser context, ignoring ones already closed. */
export async function closeTabs(pages: readonly Page[]): Promise<void> {
  for (const page of pages)
    await page
      .context()
      .close()
      .catch(() => {});
}
