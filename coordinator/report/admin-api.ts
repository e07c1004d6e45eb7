import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'socket.io';
import { ackError, ErrorCode, ProtocolError, type Ack } from '../../core/protocol/errors.ts';
import type { AdminClientToServerEvents, AdminServerToClientEvents } from '../../core/protocol/status.ts';
import { parseControlRequest, parseSettingsChange } from '../../core/protocol/validate.ts';
import type { RoundEngine } from '../rounds/round-engine.ts';
// The list guard.ts protects: a download cannot be served here without the admin token.
import { ADMIN_DOWNLOAD_PATHS } from '../security/admin-routes.ts';
import type { RunReports } from './reports.ts';

/**
 * The operator's side of the coordinator: the dashboard's `control` and
 * `settings` events, and the download routes. The admin token is checked
 * before any of this runs (coordinator/security/guard.ts): socket.io's
 * handshake for the events (a dashboard without one is read-only), and
 * `Authorization: Bearer` for the routes.
 */

export type AdminSocket = Socket<AdminClientToServerEvents, AdminServerToClientEvents>;

const ADMIN_EVENTS: readonly string[] = ['control', 'settings'] satisfies (keyof AdminClientToServerEvents)[];

export function attachAdminSocket(socket: AdminSocket, engine: RoundEngine, log: (line: string) => void): void {
  socket.on('control', (...args: unknown[]) => {
    void answer(args, async () => {
      const request = parseControlRequest(args[0]);
      const result = await engine.applyControl(request.action);
      if (result.ok) log(`operator: ${request.action} (now ${result.value.control})`);
      return result;
    });
  });
  socket.on('settings', (...args: unknown[]) => {
    void answer(args, async () => {
      const change = parseSettingsChange(args[0]);
      const result = engine.updateSettings(change);
      if (result.ok) log(`operator changed the round settings from the next round: ${JSON.stringify(change)}`);
      return result;
    });
  });
  socket.onAny((event: string, ...args: unknown[]) => {
    if (ADMIN_EVENTS.includes(event)) return;
    const ack = args.at(-1);
    if (typeof ack === 'function') ack(ackError(ErrorCode.UnknownEvent, `unknown admin event "${String(event).slice(0, 64)}"`));
  });

  /**
   * Runs a handler and answers through the ack; a malformed payload becomes
   * BAD_PAYLOAD, never a crash. The operator's refusals are not counted with
   * the participants' rejected requests.
   */
  async function answer<T>(args: unknown[], handle: () => Promise<Ack<T>>): Promise<void> {
    const ack = args.at(-1);
    let result: Ack<T>;
    try {
      result = await handle();
    } catch (error) {
      if (error instanceof ProtocolError) {
        result = ackError(error.code, error.message);
      } else {
        console.error('admin request failed:', error);
        result = ackError(ErrorCode.BadPayload, 'the request could not be processed');
      }
    }
    if (typeof ack === 'function') ack(result);
  }
}

/** Content-Security-Policy of the report page: nothing but its inline styles and SVG. */
const REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/** Answers a download route; returns false for any other path. */
export async function serveAdminDownload(
  request: IncomingMessage,
  response: ServerResponse,
  url: URL,
  reports: RunReports,
): Promise<boolean> {
  const pathname = url.pathname;
  if (!(ADMIN_DOWNLOAD_PATHS as readonly string[]).includes(pathname)) return false;
  const send = (status: number, headers: Record<string, string | number>, body: string | Uint8Array) => {
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    response.writeHead(status, { 'cache-control': 'no-store', 'content-length': bytes.byteLength, ...headers });
    response.end(request.method === 'HEAD' ? undefined : bytes);
  };
  /** Answers with an error; true, like every route this function answered. */
  const fail = (status: number, code: string, message: string): true => {
    send(status, { 'content-type': 'application/json' }, JSON.stringify({ error: { code, message } }));
    return true;
  };

  if (pathname === '/api/model/model.json' || pathname === '/api/model/weights.bin') {
    const versionText = url.searchParams.get('version');
    let version: number | undefined;
    if (versionText !== null) {
      version = Number(versionText);
      if (versionText.trim() === '' || !Number.isInteger(version) || version < 0)
        return fail(400, ErrorCode.BadPayload, `version must be a non-negative integer, got "${versionText.slice(0, 32)}"`);
    }
    const model = await reports.modelFiles(version);
    // Only the last few versions are kept: a newer model replaced this one.
    if (!model) return fail(404, 'MODEL_VERSION_GONE', `model version ${version} is no longer available: fetch model.json again`);
    const common = { 'x-model-version': model.version };
    if (pathname.endsWith('model.json')) send(200, { ...common, 'content-type': 'application/json' }, model.files.modelJson);
    else send(200, { ...common, 'content-type': 'application/octet-stream' }, model.files.weightsBin);
    return true;
  }
  if (pathname === '/api/model/best/model.json' || pathname === '/api/model/best/weights.bin') {
    // The best round's model as saved in <data-dir>/<task>/best/; model.json names weights.bin beside it.
    const best = await reports.bestModelFiles();
    if (!best) return fail(404, 'NO_BEST_MODEL', 'no round has been evaluated and saved as the best yet');
    const common = { 'x-model-version': best.version };
    if (pathname.endsWith('model.json')) send(200, { ...common, 'content-type': 'application/json' }, best.files.modelJson);
    else send(200, { ...common, 'content-type': 'application/octet-stream' }, best.files.weightsBin);
    return true;
  }
  if (pathname === '/api/history.csv') {
    send(200, { 'content-type': 'text/csv; charset=utf-8; header=present' }, reports.csv());
    return true;
  }
  const report = await reports.report();
  if (pathname === '/api/report.json') send(200, { 'content-type': 'application/json' }, JSON.stringify(report, null, 2));
  else send(200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': REPORT_CSP }, reports.html(report));
  return true;
}
