import { createReadStream, type Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.map': 'application/json',
};

/** Page routes that map to the built HTML entry points. */
const PAGES: Record<string, string> = {
  '/': 'index.html',
  '/index.html': 'index.html',
  '/dashboard': 'dashboard.html',
  '/dashboard/': 'dashboard.html',
  '/dashboard.html': 'dashboard.html',
};

/** True for the routes of the participant page and the dashboard. */
export function isPageRoute(pathname: string): boolean {
  return Object.hasOwn(PAGES, pathname);
}

/**
 * Cross-origin isolation for every page, worker and asset: with these the
 * participant page is `crossOriginIsolated`, which is what lets tfjs's WASM
 * backend share memory between threads (SharedArrayBuffer) and run its
 * threaded SIMD binary. COEP require-corp only restricts cross-origin
 * subresources, and the pages load none (everything is bundled and served
 * from this origin); CORP same-origin states that nothing here is meant to be
 * embedded by another origin. docs/performance.md explains the choice.
 */
export const ISOLATION_HEADERS = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'same-origin',
} as const;

/**
 * Serves the Vite build (dist/). Paths are resolved inside the root only:
 * anything that would escape it is a 404. Hashed assets are cached for good.
 */
export async function serveStatic(root: string, request: IncomingMessage, response: ServerResponse): Promise<boolean> {
  const url = new URL(request.url ?? '/', 'http://localhost');
  let pathname: string;
  try {
    pathname = decodeURIComponent(url.pathname);
  } catch {
    return false;
  }
  const relative = PAGES[pathname] ?? pathname.replace(/^\/+/, '');
  const file = path.resolve(root, relative);
  if (file !== root && !file.startsWith(root + path.sep)) return false;
  let info: Stats;
  try {
    info = await stat(file);
  } catch {
    return false;
  }
  if (!info.isFile()) return false;
  const type = CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream';
  const immutable = relative.startsWith('assets/');
  response.writeHead(200, {
    ...ISOLATION_HEADERS,
    'content-type': type,
    'content-length': info.size,
    'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
  });
  if (request.method === 'HEAD') {
    response.end();
    return true;
  }
  createReadStream(file).pipe(response);
  return true;
}
