import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import type { TaskSummary } from '../../core/protocol/messages.ts';
import type { CoordinatorMetrics } from '../metrics/coordinator-metrics.ts';
import type { FederationStatus } from '../../core/protocol/status.ts';
import { serveAdminDownload } from '../report/admin-api.ts';
import type { RunReports } from '../report/reports.ts';
import type { SecurityConfig } from '../security/config.ts';
import { guardHttp } from '../security/guard.ts';
import type { ServedDemoData } from '../task/load-task.ts';
import { isPageRoute, serveStatic } from './static-files.ts';

export interface HttpRoutes {
  /** What `/api/status` returns: the engine's dashboard status (with the `cluster` field on a cluster). */
  readonly dashboardStatus: () => FederationStatus;
  readonly task: TaskSummary;
  readonly demoData: ServedDemoData | undefined;
  readonly reports: RunReports;
  readonly security: SecurityConfig;
  readonly metrics: CoordinatorMetrics;
  /** On a cluster (`--redis`): whether this node leads, for a load balancer's health check (docs/cluster.md). */
  readonly clusterLeader?: () => { readonly leads: boolean; readonly self: string; readonly leader?: string };
  /** The Vite build (dist/). */
  readonly staticDir: string;
  readonly logError: (line: string) => void;
}

/**
 * The coordinator's HTTP side (docs/protocol.md §2): GET and HEAD only, the
 * status and task APIs, the demo data, the admin downloads and the built web
 * app. socket.io answers its own path.
 */
export function httpHandler(routes: HttpRoutes): (request: IncomingMessage, response: ServerResponse) => void {
  const staticRoot = path.resolve(routes.staticDir);
  return (request, response) => {
    void handle(routes, staticRoot, request, response).catch((error: unknown) => {
      routes.logError(`http handler failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      if (!response.headersSent) response.writeHead(500);
      response.end();
    });
  };
}

async function handle(routes: HttpRoutes, staticRoot: string, request: IncomingMessage, response: ServerResponse): Promise<void> {
  if (request.url?.startsWith('/socket.io/')) return; // socket.io answers these
  if (!guardHttp(request, response, routes.security)) return; // CORS preflight, admin routes without the admin token
  const requestUrl = new URL(request.url ?? '/', 'http://localhost');
  const { pathname } = requestUrl;
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.writeHead(405, { allow: 'GET, HEAD' }).end();
    return;
  }
  if (pathname === '/api/status') {
    const body = JSON.stringify(routes.dashboardStatus());
    response.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(body);
    return;
  }
  if (pathname === '/metrics') {
    const { contentType, body } = await routes.metrics.render();
    response.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' }).end(request.method === 'HEAD' ? undefined : body);
    return;
  }
  if (pathname === '/api/cluster/leader' && routes.clusterLeader) {
    const { leads, ...body } = routes.clusterLeader();
    response.writeHead(leads ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
    return;
  }
  if (pathname === '/api/task') {
    response.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(routes.task));
    return;
  }
  const demoData = routes.demoData;
  if (demoData && pathname === demoData.url) {
    response.writeHead(200, {
      'content-type': demoData.contentType,
      'content-length': demoData.bytes.byteLength,
      'cache-control': 'no-cache',
    });
    response.end(request.method === 'HEAD' ? undefined : demoData.bytes);
    return;
  }
  if (await serveAdminDownload(request, response, requestUrl, routes.reports)) return;
  if (await serveStatic(staticRoot, request, response)) return;
  response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
  // Where the build should be is the operator's business (it was logged at start), not a visitor's.
  response.end(isPageRoute(pathname) ? 'The web app is not built: run "npm run build" on the coordinator.\n' : 'not found\n');
}
