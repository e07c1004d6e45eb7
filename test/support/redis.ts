import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { Redis } from 'ioredis';
import { freePort } from '../helpers/free-port.ts';

/** Debian's redis-server (CI installs it; .ci/run). */
export const REDIS_SERVER_BINARY = '/usr/bin/redis-server';

/**
 * A real redis-server for a test: its own free port on 127.0.0.1, its data
 * (append-only file) in a fresh temporary folder, removed by `cleanup()`.
 * `kill()` is a crash (SIGKILL, nothing flushed beyond what appendfsync
 * wrote), `stop()` a clean shutdown, `restart()` starts it again on the same
 * port and folder, so what the append-only file holds comes back.
 */
export class TestRedis {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private cleaned = false;

  private constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  /** Starts one; resolves once it accepts connections. */
  static async start(): Promise<TestRedis> {
    // Spawning a missing binary fails with no exit event, which would leave the test waiting on nothing.
    if (!existsSync(REDIS_SERVER_BINARY))
      throw new Error(
        `${REDIS_SERVER_BINARY} is missing: the cluster tests start their own Redis (apt-get install redis-server; .ci/run does)`,
      );
    const dir = mkdtempSync(path.join(tmpdir(), 'fl-redis-'));
    const redis = new TestRedis(await freePort(), dir);
    liveServers.add(redis);
    try {
      await redis.launch();
    } catch (error) {
      await redis.cleanup();
      throw error;
    }
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  private async launch(): Promise<void> {
    const child = spawn(
      REDIS_SERVER_BINARY,
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--dir',
        this.dir,
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        '--save',
        '',
        '--daemonize',
        'no',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child = child;
    this.exited = new Promise((resolve) =>
      child.once('exit', () => {
        if (this.child === child) this.child = undefined;
        resolve();
      }),
    );
    await new Promise<void>((resolve, reject) => {
      let output = '';
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) resolve();
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', (code) => reject(new Error(`redis-server exited (${code}) before it was ready:\n${output}`)));
      child.once('error', reject);
    });
  }

  /** A crash: SIGKILL. */
  async kill(): Promise<void> {
    this.child?.kill('SIGKILL');
    await this.exited;
  }

  /** A clean shutdown (SIGTERM: redis-server flushes its append-only file and exits). */
  async stop(): Promise<void> {
    this.child?.kill('SIGTERM');
    await this.exited;
  }

  /** Starts it again on the same port with the same data folder. */
  async restart(): Promise<void> {
    if (this.child) await this.stop();
    await this.launch();
  }

  /** Kills it if it runs and removes its folder; safe to call twice. */
  async cleanup(): Promise<void> {
    if (this.cleaned) return;
    this.cleaned = true;
    liveServers.delete(this);
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** At process exit (synchronous): kill and remove what a test left behind. */
  killAndRemoveNow(): void {
    this.child?.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Servers not yet cleaned up: killed when the test process exits, whatever the test did. */
const liveServers = new Set<TestRedis>();
process.once('exit', () => {
  for (const server of liveServers) server.killAndRemoveNow();
});

/** A test file's Redis: a real redis-server and one client on it, started before the file's tests and stopped (its folder removed) after them. */
export interface RedisForTests {
  redis: TestRedis;
  client: Redis;
}

/** Registers the file's before/after hooks; the fields are set once `before` has run. */
export function useTestRedis(): RedisForTests {
  const shared = {} as RedisForTests;
  before(async () => {
    shared.redis = await TestRedis.start();
    shared.client = new Redis(shared.redis.url);
  });
  after(async () => {
    shared.client?.disconnect();
    await shared.redis?.cleanup();
  });
  return shared;
}
