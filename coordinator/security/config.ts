import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isPositiveInt, numberFlag } from '../flags.ts';
import { parseTokenFile, tokenProblem, TokenSet } from './tokens.ts';

/**
 * Access control, TLS and limits of the coordinator: the flags, their usage
 * text and their parsing. Kept apart from coordinator/config.ts, which only
 * spreads SECURITY_OPTIONS into its flags and calls parseSecurityConfig.
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
}

export const DEFAULT_RATE_LIMIT = 50;
export const DEFAULT_MAX_CONNECTIONS = 1000;

/** No tokens, no TLS, default limits: what a coordinator gets when its config has no `security`. */
export function defaultSecurity(): SecurityConfig {
  return { openByChoice: false, allowedOrigins: [], rateLimit: DEFAULT_RATE_LIMIT, maxConnections: DEFAULT_MAX_CONNECTIONS };
}

/** `parseArgs` options of the security flags. */
export const SECURITY_OPTIONS = {
  'join-token': { type: 'string' },
  'join-token-file': { type: 'string' },
  open: { type: 'boolean' },
  'admin-token': { type: 'string' },
  'admin-token-file': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'allowed-origins': { type: 'string' },
  'rate-limit': { type: 'string' },
  'max-connections': { type: 'string' },
} as const;

export const SECURITY_USAGE = `Access, TLS and limits (see README "Security")
  --join-token T           participants must present token T (16+ characters)
  --join-token-file F      ...or one of the tokens in F (one per line, # comments; both may be given)
  --open                   no join token: anyone who can reach the port may join (the default,
                           with a warning, when no join token is given)
  --admin-token T          the dashboard, /api/status and admin routes need token T
  --admin-token-file F     ...or one of the tokens in F (without one: dashboard open, read-only)
  --tls-cert FILE          serve HTTPS and WSS with this PEM certificate...
  --tls-key FILE           ...and this PEM private key (both needed)
  --allowed-origins A,B    web origins allowed besides the coordinator's own (e.g.
                           https://lab.example.org; * allows any)
  --rate-limit N           messages per second per connection (default ${DEFAULT_RATE_LIMIT}, bursts of 2N)
  --max-connections N      connections at once (default ${DEFAULT_MAX_CONNECTIONS})`;

type MakeError = (message: string) => Error;

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

function positiveInt(text: unknown, flag: string, fallback: number, fail: MakeError): number {
  return numberFlag(text, flag, isPositiveInt, 'a positive integer', fail) ?? fallback;
}

function parseOrigins(text: unknown, fail: MakeError): string[] {
  if (text === undefined) return [];
  const out: string[] = [];
  for (const raw of String(text).split(',').map((s) => s.trim()).filter(Boolean)) {
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
  const certFile = values['tls-cert'] as string | undefined;
  const keyFile = values['tls-key'] as string | undefined;
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
  let privateKey;
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
  let joinTokens = tokenSet(values, 'join-token', fail);
  const open = values.open === true;
  let demoToken: string | undefined;
  if (joinTokens && Number(values['demo-participants'] ?? 0) > 0) {
    demoToken = randomBytes(24).toString('base64url');
    joinTokens = joinTokens.with(demoToken);
  }
  if (open && joinTokens) throw fail('--open and --join-token/--join-token-file contradict each other: pick one');
  const adminTokens = tokenSet(values, 'admin-token', fail);
  if (joinTokens && adminTokens && joinTokens.overlaps(adminTokens)) throw fail('the admin token must differ from every join token');
  return {
    joinTokens,
    demoToken,
    openByChoice: open,
    adminTokens,
    tls: parseTls(values, fail),
    allowedOrigins: parseOrigins(values['allowed-origins'], fail),
    rateLimit: positiveInt(values['rate-limit'], 'rate-limit', DEFAULT_RATE_LIMIT, fail),
    maxConnections: positiveInt(values['max-connections'], 'max-connections', DEFAULT_MAX_CONNECTIONS, fail),
  };
}

/** What the operator should know at start: warnings (for stderr) and a summary line. Never contains a token. */
export function describeSecurity(security: SecurityConfig): { readonly warnings: string[]; readonly summary: string } {
  const warnings: string[] = [];
  if (!security.joinTokens && !security.openByChoice) {
    warnings.push('WARNING: no join token: anyone who can reach this port may join the federation and send updates.');
    warnings.push('         Use --join-token-file FILE (or --open to silence this warning for a demo).');
  }
  const summary =
    `  access:       ${security.joinTokens ? `join token required (${security.joinTokens.size - (security.demoToken ? 1 : 0)} known${security.demoToken ? ', and one made for the demo participants' : ''})` : 'open to anyone'}; ` +
    `dashboard ${security.adminTokens ? 'needs the admin token' : 'open, read-only'}; ` +
    `${security.tls ? 'HTTPS/WSS' : 'plain HTTP (WebGPU needs HTTPS on devices other than localhost)'}`;
  return { warnings, summary };
}
