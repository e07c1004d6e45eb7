import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { DefaultEventsMap, Namespace, Server, ServerOptions, Socket } from 'socket.io';
import { ackError, ErrorCode } from '../../core/protocol/errors.ts';
import { ConnectionAdmission, defaultMaxPerIp, defaultPendingCap, defaultPendingPerIp, type PendingTransport } from './admission.ts';
import { isAdminPath } from './admin-routes.ts';
import type { SecurityConfig } from './config.ts';
import { ConnectionRateLimiter } from './rate-limit.ts';

export { isAdminPath };

/**
 * The coordinator's gatekeeping on the wire, in one place:
 *
 * - transport: HTTPS/WSS when a certificate is configured;
 * - engine.io handshake (`allowRequest`, and the same check on WebSocket
 *   upgrades so they get HTTP 403 too): the Origin header must be the
 *   coordinator's own or allowlisted, and the connection caps must leave
 *   room (ConnectionAdmission: only authenticated sockets hold slots; raw
 *   transports wait in a small pool that pushes out its oldest);
 * - socket.io handshake (namespace middleware): the join token or a
 *   per-participant credential on `/`, the admin token on `/admin`, and the
 *   connection caps (total, per address, per credential), refused with a
 *   coded `connect_error` (`err.data = { code, message }`);
 * - every incoming message: a per-connection rate limit, before any handler
 *   (and no admin events at all on a dashboard without an admin token);
 * - HTTP: admin routes need `Authorization: Bearer <admin token>`, and
 *   allowlisted origins get CORS headers.
 *
 * Tokens are only ever compared (TokenSet); nothing here logs one.
 */

// The participant and admin namespaces have different event maps; the guard handles both alike and
// only ever reads the credential a participant socket authenticated with.
interface GuardedSocketData {
  credential?: string;
}
type AnyServer = Server<DefaultEventsMap, DefaultEventsMap, DefaultEventsMap, GuardedSocketData>;
type AnyNamespace = Namespace<DefaultEventsMap, DefaultEventsMap, DefaultEventsMap, GuardedSocketData>;
type AnySocket = Socket<DefaultEventsMap, DefaultEventsMap, DefaultEventsMap, GuardedSocketData>;

/**
 * socket.io closes transports that join no namespace within this time (its
 * default is 45 s). A real client sends its namespace handshake as soon as
 * the transport opens; waiting transports hold no slot anyway (admission.ts).
 */
const CONNECT_TIMEOUT_MS = 5_000;
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

/**
 * The most raw transports open at once: every slot taken by an authenticated
 * socket, plus the waiting pool (admission.ts), which pushes out its oldest
 * rather than grow.
 */
export function transportCap(maxConnections: number): number {
  return maxConnections + defaultPendingCap(maxConnections);
}

/** The connection admission of a coordinator with these limits. */
export function createAdmission(security: SecurityConfig): ConnectionAdmission {
  return new ConnectionAdmission({
    maxConnections: security.maxConnections,
    maxPerIp: security.maxConnectionsPerIp ?? defaultMaxPerIp(security.maxConnections),
    pendingCap: defaultPendingCap(security.maxConnections),
    pendingPerIp: defaultPendingPerIp(defaultPendingCap(security.maxConnections)),
  });
}

/** The TCP peer's address (X-Forwarded-For is client-supplied, so it is not used). */
function peerAddress(request: IncomingMessage): string {
  return request.socket.remoteAddress ?? 'unknown';
}

/** Why an engine.io handshake (a new transport) is refused with HTTP 403, or undefined. */
function handshakeRefusal(request: IncomingMessage, security: SecurityConfig, admission: ConnectionAdmission): string | undefined {
  if (!originAllowed(request, security)) return 'origin not allowed';
  return admission.transportRefusal(peerAddress(request));
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

/** Options for `new Server(...)`: CORS, the engine-level handshake check (HTTP 403 for polling) and a short connect timeout. */
export function socketServerOptions(security: SecurityConfig, admission: ConnectionAdmission): Partial<ServerOptions> {
  const allowed = security.allowedOrigins;
  return {
    connectTimeout: CONNECT_TIMEOUT_MS,
    ...(allowed.length > 0 ? { cors: { origin: allowed.includes('*') ? true : [...allowed], methods: ['GET', 'POST'] } } : {}),
    allowRequest(request, callback) {
      const refusal = handshakeRefusal(request, security, admission);
      if (refusal !== undefined) return callback(refusal, false);
      callback(null, true);
    },
  };
}

/**
 * engine.io answers every refused WebSocket upgrade with HTTP 400, whatever
 * the reason; a refused polling handshake gets 403. This runs the same check
 * in front of engine.io's upgrade handler, so a WebSocket handshake over the
 * cap (or from a foreign origin) gets the documented 403. Call it right after
 * `new Server(httpServer)`, which installs engine.io's handler.
 */
function forbidUpgradesOverCap(httpServer: HttpServer, security: SecurityConfig, admission: ConnectionAdmission): void {
  const engineHandlers = httpServer.listeners('upgrade') as ((
    request: IncomingMessage,
    socket: import('node:stream').Duplex,
    head: Buffer,
  ) => void)[];
  httpServer.removeAllListeners('upgrade');
  httpServer.on('upgrade', (request: IncomingMessage, socket: import('node:stream').Duplex, head: Buffer) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    // Only handshakes: an upgrade of an existing polling session (sid) already holds its place.
    const refusal =
      url.pathname.startsWith('/socket.io/') && !url.searchParams.has('sid') ? handshakeRefusal(request, security, admission) : undefined;
    if (refusal !== undefined) {
      socket.on('error', () => {});
      socket.end(
        `HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(refusal)}\r\n\r\n${refusal}`,
        () => socket.destroy(),
      );
      return;
    }
    for (const handler of engineHandlers) handler.call(httpServer, request, socket, head);
  });
}

type Next = (error?: Error) => void;

/**
 * Installs the handshake middleware, the connection admission and the
 * per-message rate limit on both namespaces. Call it before the server
 * registers its own connection handlers, so the limit runs before them.
 * Returns what to call when the coordinator closes.
 */
export function installSecurity(
  io: AnyServer,
  admin: AnyNamespace,
  security: SecurityConfig,
  hooks: SecurityHooks,
  admission: ConnectionAdmission,
  httpServer: HttpServer,
): () => void {
  const participants = io.of('/');
  forbidUpgradesOverCap(httpServer, security, admission);
  // Every raw transport waits in the admission pool until a socket on it authenticates.
  const transports = new WeakMap<object, PendingTransport>();
  const transportOf = (conn: object & { remoteAddress?: string; close(): void }): PendingTransport => {
    let transport = transports.get(conn);
    if (!transport) {
      transport = { address: conn.remoteAddress ?? 'unknown', close: () => conn.close() };
      transports.set(conn, transport);
    }
    return transport;
  };
  io.engine.on(
    'connection',
    (conn: object & { remoteAddress?: string; close(): void; once(event: 'close', listener: () => void): void }) => {
      const transport = transportOf(conn);
      admission.transportOpened(transport);
      conn.once('close', () => admission.transportClosed(transport));
    },
  );

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

  /** An authenticated socket takes a slot (total, its address's, its credential's) until it or its transport closes. */
  function admit(socket: AnySocket, next: Next, credential: string | undefined): void {
    const address = socket.handshake.address;
    const refusal = admission.slotRefusal(address, credential, security.maxConnectionsPerCredential);
    if (refusal !== undefined) {
      refuse(socket, next, ErrorCode.TooManyConnections, refusal);
      return;
    }
    admission.authenticate(transportOf(socket.conn), address, credential);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      admission.release(address, credential);
    };
    // Whichever comes first; socket.io may drop a socket whose transport closed before it connected, with no disconnect event.
    socket.conn.once('close', release);
    socket.once('disconnect', release);
    next();
  }

  const joinTokens = security.joinTokens;
  const adminTokens = security.adminTokens;
  const credentials = security.credentials;
  participants.use((socket, next) => {
    const token = socket.handshake.auth?.token;
    if (credentials || joinTokens) {
      const credential = credentials?.identify(token);
      if (credential !== undefined) {
        socket.data.credential = credential;
        return admit(socket, next, credential);
      }
      if (!joinTokens?.matches(token)) {
        const what = credentials ? 'a valid participant credential' : 'a valid join token';
        return refuse(socket, next, ErrorCode.Unauthorized, `${what} is required (socket.io handshake auth: { token })`);
      }
    }
    admit(socket, next, undefined);
  });
  admin.use((socket, next) => {
    if (adminTokens && !adminTokens.matches(socket.handshake.auth?.token)) {
      return refuse(socket, next, ErrorCode.Unauthorized, 'the dashboard needs the admin token (socket.io handshake auth: { token })');
    }
    admit(socket, next, undefined);
  });

  participants.on('connection', (socket: AnySocket) => limitMessages(socket, false));
  // Without an admin token the dashboard is open, so it may only listen.
  admin.on('connection', (socket: AnySocket) => limitMessages(socket, !adminTokens));

  // A revoked credential's connections close at once (the file is re-read when it changes).
  credentials?.watch(
    (active) => {
      for (const socket of participants.sockets.values()) {
        const credential = socket.data.credential;
        if (credential !== undefined && !active.has(credential)) {
          hooks.log(`credential ${credential} was revoked: closing its connection ${socket.id}`);
          socket.disconnect(true);
        }
      }
    },
    (message) => hooks.log(message),
  );

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
        if (typeof ack === 'function')
          ack(ackError(ErrorCode.RateLimited, `more than ${security.rateLimit} messages per second; slow down`));
        if (!warned) {
          warned = true;
          hooks.log(`connection ${socket.id} (${socket.handshake.address}) is over its limit of ${security.rateLimit} messages/s`);
        }
        if (verdict === 'disconnect' && socket.connected) {
          hooks.log(
            `connection ${socket.id} (${socket.handshake.address}) disconnected: it stayed far over its message limit (${limiter.limited} messages refused)`,
          );
          socket.disconnect(true);
        }
        return;
      }
      if (readOnly) {
        refused = true;
        hooks.countRejection(ErrorCode.Unauthorized);
        if (typeof ack === 'function')
          ack(
            ackError(
              ErrorCode.Unauthorized,
              'this dashboard connection is read-only: admin controls need a coordinator started with --admin-token',
            ),
          );
      }
    });
    socket.use((_event, next) => {
      if (!refused) next();
    });
    // An undecodable packet closes the connection; socket.io reports it here (without a listener, on the console).
    socket.on('error', (error: Error) => hooks.log(`connection ${socket.id} (${socket.handshake.address}): ${error.message}`));
  }

  // What closing the coordinator must stop: the credentials file watcher.
  return () => credentials?.close();
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
      response
        .writeHead(204, {
          'access-control-allow-methods': 'GET, HEAD',
          'access-control-allow-headers': 'authorization',
          'access-control-max-age': '600',
        })
        .end();
      return false;
    }
  }
  const adminTokens = security.adminTokens;
  // Only GET and HEAD are served anywhere: other methods get 405 from the router, which reveals nothing.
  const served = request.method === 'GET' || request.method === 'HEAD';
  if (adminTokens && served) {
    const { pathname } = new URL(request.url ?? '/', 'http://localhost');
    if (isAdminPath(pathname) && !adminTokens.matches(bearerToken(request))) {
      const body = JSON.stringify({
        error: { code: ErrorCode.Unauthorized, message: 'this route needs the admin token: send "Authorization: Bearer <token>"' },
      });
      response.writeHead(401, {
        'content-type': 'application/json',
        'cache-control': 'no-store',
        'www-authenticate': 'Bearer realm="coordinator admin"',
      });
      response.end(request.method === 'HEAD' ? undefined : body);
      return false;
    }
  }
  return true;
}
