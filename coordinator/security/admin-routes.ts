/**
 * The HTTP routes that need the admin token where one is configured. One
 * list for both sides: guard.ts refuses these without the token, and
 * coordinator/report/admin-api.ts serves the downloads from the same list, so
 * a route added there cannot be served without the token.
 */

/** The operator's downloads (served by coordinator/report/admin-api.ts). */
export const ADMIN_DOWNLOAD_PATHS = [
  '/api/model/model.json',
  '/api/model/weights.bin',
  '/api/model/best/model.json',
  '/api/model/best/weights.bin',
  '/api/report.json',
  '/api/report.html',
  '/api/history.csv',
] as const;

/** Every admin route served today: the status (coordinator/server.ts), the Prometheus metrics (coordinator/metrics/) and the downloads. */
export const ADMIN_PATHS: readonly string[] = ['/api/status', '/metrics', ...ADMIN_DOWNLOAD_PATHS];

/** Whole subtrees kept for the admin, served or not: a route added under them is protected before it exists. */
export const ADMIN_PATH_PREFIXES: readonly string[] = ['/api/admin/', '/api/model/'];

/** True for the routes only an admin may use (when an admin token is configured). */
export function isAdminPath(pathname: string): boolean {
  return ADMIN_PATHS.includes(pathname) || ADMIN_PATH_PREFIXES.some((prefix) => pathname.startsWith(prefix));
}
