import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError, parseConfig, USAGE, type CoordinatorConfig } from '../../coordinator/config.ts';
import { defaultSecurity, describeSecurity, parseSecurityConfig, type SecurityConfig } from '../../coordinator/security/config.ts';
import { isAdminPath, originAllowed, transportCap } from '../../coordinator/security/guard.ts';
import { ConnectionRateLimiter, TokenBucket } from '../../coordinator/security/rate-limit.ts';
import { MIN_TOKEN_LENGTH, parseTokenFile, TokenSet } from '../../coordinator/security/tokens.ts';

const GOOD = 'correct-horse-battery-staple';
const OTHER = 'another-long-enough-token-42';
const fail = (message: string) => new ConfigError(message);

describe('TokenSet', () => {
  it('matches only its own tokens, of any length, and never non-strings', () => {
    const set = new TokenSet([GOOD, OTHER]);
    assert.equal(set.size, 2);
    assert.ok(set.matches(GOOD));
    assert.ok(set.matches(OTHER));
    for (const bad of [
      GOOD.slice(0, -1),
      `${GOOD}x`,
      GOOD.toUpperCase(),
      '',
      'x'.repeat(10_000),
      undefined,
      null,
      42,
      [GOOD],
      { token: GOOD },
    ]) {
      assert.equal(set.matches(bad), false, String(bad));
    }
  });

  it('can grow by one token and detects overlap', () => {
    const set = new TokenSet([GOOD]).with(OTHER);
    assert.ok(set.matches(GOOD) && set.matches(OTHER));
    assert.ok(set.overlaps(new TokenSet([OTHER])));
    assert.ok(!set.overlaps(new TokenSet(['a-third-token-here-0000'])));
  });
});

describe('token files', () => {
  it('reads one token per line with comments and blank lines', () => {
    const text = `# participants\n\n${GOOD}\n  ${OTHER}   # bob's laptop\r\n# done\n`;
    assert.deepEqual(parseTokenFile(text, 'tokens.txt'), [GOOD, OTHER]);
  });

  it('refuses short tokens, two words on a line and empty files, naming the line but not the token', () => {
    assert.throws(
      () => parseTokenFile(`${GOOD}\nshort-token\n`, 'f'),
      (e: Error) => e.message.includes('f:2') && e.message.includes(`minimum of ${MIN_TOKEN_LENGTH}`) && !e.message.includes('short-token'),
    );
    assert.throws(() => parseTokenFile(`${GOOD} ${OTHER}\n`, 'f'), /f:1: one token per line/);
    assert.throws(() => parseTokenFile('# nothing\n\n', 'f'), /holds no token/);
  });
});

describe('rate limit', () => {
  it('a token bucket refills at its rate up to its capacity', () => {
    const bucket = new TokenBucket(10, 3, 0);
    assert.deepEqual(
      [0, 0, 0, 0].map(() => bucket.take(0)),
      [true, true, true, false],
    );
    assert.equal(bucket.take(100), true); // 0.1 s = 1 token
    assert.equal(bucket.take(100), false);
    assert.equal(bucket.take(10_000), true);
  });

  it('allows the burst, refuses beyond the rate, and cuts a connection that stays 10x over for 2 s', () => {
    const limiter = new ConnectionRateLimiter({ rate: 50 }, 0);
    const verdicts: string[] = [];
    // 1,000 messages a second for 3 s.
    for (let i = 0; i < 3000; i++) verdicts.push(limiter.check(i));
    assert.ok(
      verdicts.slice(0, 100).every((v) => v === 'ok'),
      'the burst of 2 x rate passes',
    );
    const firstLimited = verdicts.indexOf('limited');
    assert.ok(firstLimited >= 100 && firstLimited < 120, `first refusal at ${firstLimited} ms (burst 100, refill 50/s)`);
    const firstCut = verdicts.indexOf('disconnect');
    assert.ok(firstCut > 1800 && firstCut < 2300, `cut after about 2 s, at ${firstCut} ms`);
    const passed = verdicts.slice(0, firstCut).filter((v) => v === 'ok').length;
    assert.ok(passed <= 100 + 50 * 2.3, `${passed} passed`);
  });

  it('never limits a participant within its budget', () => {
    const limiter = new ConnectionRateLimiter({ rate: 50 }, 0);
    for (let t = 0; t < 60_000; t += 25) assert.equal(limiter.check(t), 'ok'); // 40 a second for a minute
  });
});

describe('security flags', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'fl-sec-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('defaults to open with a warning, default limits and no TLS; the usage lists the flags', () => {
    const config = parseConfig([], {}) as CoordinatorConfig;
    const security = config.security!;
    assert.equal(security.joinTokens, undefined);
    assert.equal(security.adminTokens, undefined);
    assert.equal(security.tls, undefined);
    assert.equal(security.rateLimit, 50);
    assert.equal(security.maxConnections, 1000);
    assert.match(describeSecurity(security).warnings[0]!, /WARNING: no join token/);
    assert.deepEqual(describeSecurity((parseConfig(['--open'], {}) as CoordinatorConfig).security!).warnings, []);
    for (const flag of [
      '--join-token',
      '--join-token-file',
      '--open',
      '--admin-token',
      '--tls-cert',
      '--tls-key',
      '--allowed-origins',
      '--rate-limit',
      '--max-connections',
    ]) {
      assert.ok(USAGE.includes(flag), flag);
    }
  });

  it('combines --join-token and a token file; keeps admin tokens apart; never prints a token', async () => {
    const file = path.join(dir, 'join.txt');
    await writeFile(file, `# team\n${OTHER}\nthird-token-for-carol-0000\n`);
    const admin = path.join(dir, 'admin.txt');
    await writeFile(admin, 'the-admin-token-0123456789\n');
    const security = (parseConfig(['--join-token', GOOD, '--join-token-file', file, '--admin-token-file', admin], {}) as CoordinatorConfig)
      .security!;
    assert.equal(security.joinTokens!.size, 3);
    assert.ok(security.joinTokens!.matches('third-token-for-carol-0000'));
    assert.ok(security.adminTokens!.matches('the-admin-token-0123456789'));
    assert.ok(!security.joinTokens!.matches('the-admin-token-0123456789'));
    const printed = JSON.stringify(describeSecurity(security)) + JSON.stringify(security);
    for (const token of [GOOD, OTHER, 'the-admin-token-0123456789']) assert.ok(!printed.includes(token));
  });

  it('refuses bad token flags with clear ConfigErrors', async () => {
    const short = path.join(dir, 'short.txt');
    await writeFile(short, 'tooshort\n');
    const cases: [string[], RegExp][] = [
      [['--join-token', 'tooshort'], /--join-token: the token is 8 characters long, shorter than the minimum of 16/],
      [['--join-token-file', short], /--join-token-file .*short\.txt:1: the token is 8 characters long/],
      [['--join-token-file', path.join(dir, 'missing.txt')], /--join-token-file .*missing\.txt: cannot read it \(no such file\)/],
      [['--join-token', GOOD, '--open'], /--open and --join-token/],
      [['--join-token', GOOD, '--admin-token', GOOD], /admin token must differ/],
      [['--admin-token', 'x'], /--admin-token: the token is 1 characters long/],
      [['--rate-limit', '0'], /--rate-limit must be a positive integer/],
      [['--max-connections', 'many'], /--max-connections must be a positive integer/],
      [['--allowed-origins', 'https://a.example/path'], /not an origin/],
      [['--allowed-origins', 'a.example'], /not an origin/],
      [['--tls-cert', path.join(dir, 'c.pem')], /--tls-cert and --tls-key go together/],
      [
        ['--tls-cert', path.join(dir, 'c.pem'), '--tls-key', path.join(dir, 'k.pem')],
        /--tls-cert .*c\.pem: cannot read it \(no such file\)/,
      ],
    ];
    for (const [args, pattern] of cases) {
      assert.throws(
        () => parseConfig(args, {}),
        (e: Error) => e instanceof ConfigError && pattern.test(e.message) && !e.message.includes('tooshort'),
        args.join(' '),
      );
    }
  });

  it('makes its own token for demo participants when joins need a token', () => {
    const security = parseSecurityConfig({ 'join-token': GOOD, 'demo-participants': '2' }, fail);
    assert.ok(security.demoToken && security.demoToken.length >= 16 && security.demoToken !== GOOD);
    assert.ok(security.joinTokens!.matches(security.demoToken) && security.joinTokens!.matches(GOOD));
    assert.equal(parseSecurityConfig({ 'demo-participants': '2' }, fail).demoToken, undefined);
  });
});

describe('origin check and admin routes', () => {
  const request = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;
  const security = (overrides: Partial<SecurityConfig> = {}): SecurityConfig => ({ ...defaultSecurity(), ...overrides });

  it('allows no Origin, the same origin, and allowlisted ones only', () => {
    assert.ok(originAllowed(request({ host: '10.0.0.5:8080' }), security()));
    assert.ok(originAllowed(request({ host: '10.0.0.5:8080', origin: 'http://10.0.0.5:8080' }), security()));
    assert.ok(
      originAllowed(request({ host: 'fl.example.org', origin: 'https://fl.example.org' }), security()),
      'behind a TLS proxy that keeps Host',
    );
    assert.ok(!originAllowed(request({ host: '10.0.0.5:8080', origin: 'http://10.0.0.5:9090' }), security()), 'another port');
    assert.ok(!originAllowed(request({ host: '10.0.0.5:8080', origin: 'http://evil.example' }), security()));
    assert.ok(!originAllowed(request({ host: '10.0.0.5:8080', origin: 'null' }), security()));
    assert.ok(
      originAllowed(
        request({ host: '10.0.0.5:8080', origin: 'https://lab.example' }),
        security({ allowedOrigins: ['https://lab.example'] }),
      ),
    );
    assert.ok(originAllowed(request({ host: 'x', origin: 'http://anything' }), security({ allowedOrigins: ['*'] })));
  });

  it('knows its admin routes and caps raw transports above the connection cap', () => {
    assert.ok(isAdminPath('/api/status'));
    assert.ok(isAdminPath('/api/admin/model'));
    assert.ok(!isAdminPath('/api/task'));
    assert.ok(!isAdminPath('/'));
    assert.equal(transportCap(1000), 1100);
    assert.equal(transportCap(10), 26);
  });
});
