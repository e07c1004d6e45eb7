import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Namespace, Server, ServerOptions, Socket } from 'socket.io';
import { ackError, ErrorCode } from '../../core/protocol/errors.ts';
import { isAdminPath } from './admin-routes.ts';
import type { SecurityConfig } from './config.ts';
import { ConnectionRateLimiter } from './rate-limit.ts';

export { isAdminPath };

/**
 * The coordinator's gatekeeping on the wire, in one place:
 *
 * - transport: HTTPS/WSS when a certificate is configured;
 * - engine.io handshake (`allowRequest`): the Origin header must be the
 *   coordinator's own or allowlisted, and a hard cap on raw transports;
 * - socket.io handshake (namespace middleware): the join token on `/`, the
 *   admin token on `/admin`, and the connection cap, refused with a coded
 *   `connect_error` (`err.data = { code, message }`);
 * - every incoming message: a per-connection rate limit, before any handler
 *   (and no admin events at all on a dashboard without an admin token);
 * - HTTP: admin routes need `Authorization: Bearer <admin token>`, and
 *   allowlisted origins get CORS headers.
 *
 * Tokens are only ever compared (TokenSet); nothing here logs one.
 */

// The participant and admin namespaces have different event maps; the guard handles both alike.
type AnyServer = Server<any, any, any, any>;
type AnyNamespace = Namespace<any, any, any, any>;
type AnySocket = Socket<any, any, any, any>;

/** socket.io closes transports that join no namespace within this time (its default is 45 s). */
const CONNECT_TIMEOUT_MS = 10_000;
/** How long a refused handshake's transport stays open so the refusal reaches the client. */
const REFUSAL_CLOSE_DELAY_MS = 200;

export interface SecurityHooks {
  /** Counts a refusal in FederationStatus.rejections. */
  countRejection(code: ErrorCode): void;
  log(line: string): void;
}

/** An HTTP server, or an HTTPS one when TLS is configured (socket.io then speaks WSS). */
export function createTransportServer(security: SecurityConfig): HttpServer {
  if (!security.tls) return createHttpServer();
  // https.Server has http.Server's interface; socket.io and the request handler use only that.
  return createHttpsServer({ cert: security.tls.cert, key: security.tls.key }) as unknown as HttpServer;
}

/** The URL the coordinator prints for itself. */
export function publicUrl(security: SecurityConfig, port: number): string {
  return `${security.tls ? 'https' : 'http'}://localhost:${port}`;
}

/** Raw transports (before any socket.io handshake) beyond which new ones get HTTP 403. */
export function transportCap(maxConnections: number): number {
  return maxConnections + Math.max(16, Math.ceil(maxConnections / 10));
}

/**
 * True when a request may come from this Origin: no Origin header (not a
 * browser: the token decides), an allowlisted origin, or the coordinator's
 * own: the Origin's host:port is the Host the request went to. The scheme is
 * not compared, so a TLS-terminating proxy that keeps the Host header works;
 * no other page can be served from this host and port anyway.
 * socket.io checks no origin for WebSocket, so this is the only check there.
 */
export function originAllowed(request: IncomingMessage, security: SecurityConfig): boolean {
  const origin = request.headers.origin;
  if (origin === undefined) return true;
  const allowed = security.allowedOrigins;
  if (allowed.includes('*') || allowed.includes(origin)) return true;
  try {
    return new URL(origin).host === request.headers.host;
  } catch {
    return false;
  }
}

/** Options for `new Server(...)`: CORS, the engine-level handshake check and a short connect timeout. */
export function socketServerOptions(security: SecurityConfig, transports: () => number): Partial<ServerOptions> {
  const cap = transportCap(security.maxConnections);
  const allowed = security.allowedOrigins;
  return {
    connectTimeout: CONNECT_TIMEOUT_MS,
    ...(allowed.length > 0 ? { cors: { origin: allowed.includes('*') ? true : [...allowed], methods: ['GET', 'POST'] } } : {}),
    allowRequest(request, callback) {
      if (transports() >= cap) return callback('too many connections', false);
      if (!originAllowed(request, security)) return callback('origin not allowed', false);
      callback(null, true);
    },
  };
}

type Next = (error?: Error) => void;

/**
 * Installs the handshake middleware and the per-message rate limit on both
 * namespaces. Call it before the server registers its own connection
 * handlers, so the limit runs before them.
 */
export function installSecurity(io: AnyServer, admin: AnyNamespace, security: SecurityConfig, hooks: SecurityHooks): void {
  const participants = io.of('/');
  // Handshakes admitted but not yet connected (socket.io connects them on a later tick).
  const pending = new Set<string>();
  const liveConnections = () => participants.sockets.size + admin.sockets.size + pending.size;

  function refuse(socket: AnySocket, next: Next, code: ErrorCode, message: string): void {
    hooks.countRejection(code);
    const error = new Error(message) as Error & { data?: unknown };
    error.data = { code, message };
    next(error);
    // A refused transport that carries no other namespace serves nothing: close it once the refusal is out.
    const timer = setTimeout(() => {
      const shared = [...participants.sockets.values(), ...admin.sockets.values()].some((s) => s.conn === socket.conn);
      if (!shared) socket.conn.close();
    }, REFUSAL_CLOSE_DELAY_MS);
    timer.unref();
  }

  function admit(socket: AnySocket, next: Next): void {
    if (liveConnections() >= security.maxConnections) {
      return refuse(socket, next, ErrorCode.TooManyConnections, `the coordinator is at its limit of ${security.maxConnections} connections; retry later`);
    }
    pending.add(socket.id);
    setTimeout(() => pending.delete(socket.id), 1000).unref();
    next();
  }

  const joinTokens = security.joinTokens;
  const adminTokens = security.adminTokens;
  participants.use((socket, next) => {
    if (joinTokens && !joinTokens.matches(socket.handshake.auth?.token)) {
      return refuse(socket, next, ErrorCode.Unauthorized, 'a valid join token is required (socket.io handshake auth: { token })');
    }
    admit(socket, next);
  });
  admin.use((socket, next) => {
    if (adminTokens && !adminTokens.matches(socket.handshake.auth?.token)) {
      return refuse(socket, next, ErrorCode.Unauthorized, 'the dashboard needs the admin token (socket.io handshake auth: { token })');
    }
    admit(socket, next);
  });

  participants.on('connection', (socket: AnySocket) => {
    pending.delete(socket.id);
    limitMessages(socket, false);
  });
  // Without an admin token the dashboard is open, so it may only listen.
  admin.on('connection', (socket: AnySocket) => {
    pending.delete(socket.id);
    limitMessages(socket, !adminTokens);
  });

  function limitMessages(socket: AnySocket, readOnly: boolean): void {
    const limiter = new ConnectionRateLimiter({ rate: security.rateLimit }, Date.now());
    let warned = false;
    // socket.io calls the "any" listeners, then the socket's middleware, synchronously for each
    // incoming event: the first any-listener decides, the middleware drops what it refused.
    let refused = false;
    socket.prependAny((...args: unknown[]) => {
      refused = false;
      const ack = args.at(-1);
      const verdict = limiter.check(Date.now());
      if (verdict !== 'ok') {
        refused = true;
        hooks.countRejection(ErrorCode.RateLimited);
        if (typeof ack === 'function') ack(ackError(ErrorCode.RateLimited, `more than ${security.rateLimit} messages per second; slow down`));
        if (!warned) {
          warned = true;
          hooks.log(`connection ${socket.id} (${socket.handshake.address}) is over its limit of ${security.rateLimit} messages/s`);
        }
        if (verdict === 'disconnect' && socket.connected) {
          hooks.log(`connection ${socket.id} (${socket.handshake.address}) disconnected: it stayed far over its message limit (${limiter.limited} messages refused)`);
          socket.disconnect(true);
        }
        return;
      }
      if (readOnly) {
        refused = true;
        hooks.countRejection(ErrorCode.Unauthorized);
        if (typeof ack === 'function') ack(ackError(ErrorCode.Unauthorized, 'this dashboard connection is read-only: admin controls need a coordinator started with --admin-token'));
      }
    });
    socket.use((_event, next) => {
      if (!refused) next();
    });
    // An undecodable packet closes the connection; socket.io reports it here (without a listener, on the console).
    socket.on('error', (error: Error) => hooks.log(`connection ${socket.id} (${socket.handshake.address}): ${error.message}`));
  }
}

function bearerToken(request: IncomingMessage): string | undefined {
  const header = request.headers.authorization;
  const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

/**
 * Runs first for every HTTP request (not socket.io's). Adds CORS headers for
 * allowlisted origins, answers their preflight, and refuses admin routes
 * without the admin token (401, JSON `{error: {code, message}}`). Returns
 * false when it has answered the request itself.
 */
export function guardHttp(request: IncomingMessage, response: ServerResponse, security: SecurityConfig): boolean {
  const origin = request.headers.origin;
  const allowed = security.allowedOrigins;
  const listed = origin !== undefined && (allowed.includes('*') || allowed.includes(origin));
  if (listed) {
    response.setHeader('access-control-allow-origin', allowed.includes('*') ? '*' : origin);
    response.setHeader('vary', 'Origin');
    if (request.method === 'OPTIONS') {
      response.writeHead(204, { 'access-control-allow-methods': 'GET, HEAD', 'access-control-allow-headers': 'authorization', 'access-control-max-age': '600' }).end();
      return false;
    }
  }
  const adminTokens = security.adminTokens;
  if (adminTokens) {
    const { pathname } = new URL(request.url ?? '/', 'http://localhost');
    if (isAdminPath(pathname) && !adminTokens.matches(bearerToken(request))) {
      const body = JSON.stringify({ error: { code: ErrorCode.Unauthorized, message: 'this route needs the admin token: send "Authorization: Bearer <token>"' } });
      response.writeHead(401, { 'content-type': 'application/json', 'cache-control': 'no-store', 'www-authenticate': 'Bearer realm="coordinator admin"' });
      response.end(request.method === 'HEAD' ? undefined : body);
      return false;
    }
  }
  return true;
}
