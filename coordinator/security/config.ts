import { createPrivateKey, type KeyObject, randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { MakeError } from '../options/option.ts';
import {
  ADMIN_TOKEN,
  ALLOWED_ORIGINS,
  CREDENTIALS,
  JOIN_TOKEN,
  MAX_CONNECTIONS,
  MAX_CONNECTIONS_PER_CREDENTIAL,
  MAX_CONNECTIONS_PER_IP,
  OPEN,
  PARTICIPANT_GRACE,
  RATE_LIMIT,
  TLS_CERT,
  TLS_KEY,
} from '../options/security.ts';
import { CredentialStore } from './credentials.ts';
import { parseTokenFile, tokenProblem, TokenSet } from './tokens.ts';

/**
 * Access control, TLS and limits of the coordinator: parsing the flags
 * declared in coordinator/options/security.ts (reading token files, the
 * certificate and the key). coordinator/config.ts calls parseSecurityConfig.
 */

export interface TlsFiles {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly certFile: string;
  readonly keyFile: string;
}

export interface SecurityConfig {
  /** Join tokens; undefined: anyone who reaches the port may join. */
  readonly joinTokens?: TokenSet;
  /**
   * A join token made at start for the coordinator's own headless demo participants
   * (`--demo-participants` with join tokens), so no operator token is handed to them.
   */
  readonly demoToken?: string;
  /** True when `--open` asked for no join token (no warning then). */
  readonly openByChoice: boolean;
  /** Admin tokens; undefined: the dashboard is open and read-only. */
  readonly adminTokens?: TokenSet;
  /** Certificate and key: serve HTTPS and WSS. */
  readonly tls?: TlsFiles;
  /** Origins (scheme://host[:port]) allowed besides the coordinator's own; ['*'] allows any. */
  readonly allowedOrigins: readonly string[];
  /** Sustained messages per second per connection. */
  readonly rateLimit: number;
  /** Most socket.io connections (participants and dashboards) at once. */
  readonly maxConnections: number;
  /** Per-participant credentials (`--credentials FILE`); each may hold `maxConnectionsPerCredential` connections. */
  readonly credentials?: CredentialStore;
  readonly maxConnectionsPerCredential: number;
  /** Most authenticated connections from one address (absent: defaultMaxPerIp(maxConnections)). */
  readonly maxConnectionsPerIp?: number;
  /** A participant that left without contributing is forgotten after this long (ms). */
  readonly participantGraceMs: number;
}

/** No tokens, no TLS, default limits: what a coordinator gets when its config has no `security`. */
export function defaultSecurity(): SecurityConfig {
  return {
    openByChoice: false,
    allowedOrigins: [],
    rateLimit: RATE_LIMIT.default,
    maxConnections: MAX_CONNECTIONS.default,
    maxConnectionsPerCredential: MAX_CONNECTIONS_PER_CREDENTIAL.default,
    participantGraceMs: PARTICIPANT_GRACE.default * 1000,
  };
}

function strings(value: unknown): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value.map(String) : [String(value)];
}

function readFlagFile(file: string, flag: string, fail: MakeError): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message;
    throw fail(`--${flag} ${file}: cannot read it (${reason})`);
  }
}

function tokenSet(values: Record<string, unknown>, flag: string, fail: MakeError): TokenSet | undefined {
  const tokens: string[] = [];
  for (const token of strings(values[flag])) {
    const problem = tokenProblem(token);
    // Never echo the token: it is a secret.
    if (problem) throw fail(`--${flag}: the token ${problem}`);
    tokens.push(token);
  }
  for (const file of strings(values[`${flag}-file`])) {
    const text = readFlagFile(file, `${flag}-file`, fail).toString('utf8');
    try {
      tokens.push(...parseTokenFile(text, file));
    } catch (error) {
      throw fail(`--${flag}-file ${(error as Error).message}`);
    }
  }
  return tokens.length === 0 ? undefined : new TokenSet(tokens);
}

function parseOrigins(text: unknown, fail: MakeError): string[] {
  if (text === undefined) return [];
  const out: string[] = [];
  for (const raw of String(text)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    if (raw === '*') {
      out.push('*');
      continue;
    }
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw fail(`--allowed-origins: "${raw}" is not an origin like https://host:port`);
    }
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.origin !== raw.replace(/\/$/, '')) {
      throw fail(`--allowed-origins: "${raw}" is not an origin like https://host:port (scheme, host and port only)`);
    }
    out.push(url.origin);
  }
  if (out.length === 0) throw fail('--allowed-origins needs at least one origin');
  return out;
}

function parseTls(values: Record<string, unknown>, fail: MakeError): TlsFiles | undefined {
  const certFile = TLS_CERT.read(values, fail);
  const keyFile = TLS_KEY.read(values, fail);
  if (certFile === undefined && keyFile === undefined) return undefined;
  if (certFile === undefined || keyFile === undefined) throw fail('--tls-cert and --tls-key go together: give both, or neither');
  const cert = readFlagFile(certFile, 'tls-cert', fail);
  const key = readFlagFile(keyFile, 'tls-key', fail);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (error) {
    throw fail(`--tls-cert ${certFile}: not a PEM certificate (${(error as Error).message})`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (error) {
    throw fail(`--tls-key ${keyFile}: not an unencrypted PEM private key (${(error as Error).message})`);
  }
  if (!x509.checkPrivateKey(privateKey)) throw fail(`--tls-key ${keyFile} does not belong to the certificate in ${certFile}`);
  return { cert, key, certFile, keyFile };
}

/**
 * Parses the security flags out of `parseArgs` values. Files (token files,
 * certificate, key) are read now, so a bad one stops the start with a clear
 * message. `fail` makes the error to throw (the caller's ConfigError).
 */
export function parseSecurityConfig(values: Record<string, unknown>, fail: MakeError): SecurityConfig {
  let joinTokens = tokenSet(values, JOIN_TOKEN.name, fail);
  const open = OPEN.read(values) === true;
  let demoToken: string | undefined;
  if (joinTokens && Number(values['demo-participants'] ?? 0) > 0) {
    demoToken = randomBytes(24).toString('base64url');
    joinTokens = joinTokens.with(demoToken);
  }
  if (open && joinTokens) throw fail('--open and --join-token/--join-token-file contradict each other: pick one');
  const credentialsFile = CREDENTIALS.read(values, fail);
  let credentials: CredentialStore | undefined;
  if (credentialsFile !== undefined) {
    if (open) throw fail('--open and --credentials contradict each other: pick one');
    readFlagFile(credentialsFile, 'credentials', fail);
    try {
      credentials = new CredentialStore(credentialsFile);
    } catch (error) {
      throw fail(`--credentials ${(error as Error).message}`);
    }
    if (credentials.set.size === 0)
      throw fail(
        `--credentials ${credentialsFile}: no active credential (all revoked?): mint some with "npm run tokens -- --file ${credentialsFile} --count N"`,
      );
    if (demoToken === undefined && Number(values['demo-participants'] ?? 0) > 0) {
      // The demo participants get a shared token of their own, as with join tokens.
      demoToken = randomBytes(24).toString('base64url');
      joinTokens = new TokenSet([demoToken]);
    }
  }
  const maxConnections = MAX_CONNECTIONS.read(values, fail);
  const maxConnectionsPerIp = MAX_CONNECTIONS_PER_IP.read(values, fail);
  const graceS = PARTICIPANT_GRACE.read(values, fail);
  const adminTokens = tokenSet(values, ADMIN_TOKEN.name, fail);
  if (joinTokens && adminTokens && joinTokens.overlaps(adminTokens)) throw fail('the admin token must differ from every join token');
  return {
    joinTokens,
    demoToken,
    openByChoice: open,
    adminTokens,
    tls: parseTls(values, fail),
    allowedOrigins: parseOrigins(ALLOWED_ORIGINS.read(values, fail), fail),
    rateLimit: RATE_LIMIT.read(values, fail),
    maxConnections,
    credentials,
    maxConnectionsPerCredential: MAX_CONNECTIONS_PER_CREDENTIAL.read(values, fail),
    maxConnectionsPerIp,
    participantGraceMs: graceS * 1000,
  };
}

function accessSummary(security: SecurityConfig): string {
  const demo = security.demoToken ? ', and one made for the demo participants' : '';
  if (security.credentials) {
    return `per-participant credentials (${security.credentials.set.size} active in ${security.credentials.file}, ${security.maxConnectionsPerCredential} connection(s) each${demo})`;
  }
  if (security.joinTokens) return `join token required (${security.joinTokens.size - (security.demoToken ? 1 : 0)} known${demo})`;
  return 'open to anyone';
}

/** What the operator should know at start: warnings (for stderr) and a summary line. Never contains a token. */
export function describeSecurity(security: SecurityConfig): { readonly warnings: string[]; readonly summary: string } {
  const warnings: string[] = [];
  if (!security.joinTokens && !security.credentials && !security.openByChoice) {
    warnings.push('WARNING: no join token: anyone who can reach this port may join the federation and send updates.');
    warnings.push('         Use --join-token-file FILE (or --open to silence this warning for a demo).');
  }
  const summary =
    `  access:       ${accessSummary(security)}; ` +
    `dashboard ${security.adminTokens ? 'needs the admin token' : 'open, read-only'}; ` +
    `${security.tls ? 'HTTPS/WSS' : 'plain HTTP (WebGPU needs HTTPS on devices other than localhost)'}`;
  return { warnings, summary };
}
