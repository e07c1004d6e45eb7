import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { after, before, describe, it } from 'node:test';
import { io } from 'socket.io-client';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { startCoordinator, type Coordinator } from '../../coordinator/server.ts';
import type { Ack } from '../../core/protocol/errors.ts';
import { PROTOCOL_VERSION, type JoinAccepted } from '../../core/protocol/messages.ts';
import type { FederationStatus } from '../../core/protocol/status.ts';

/**
 * Issue 16 item 4: participants that join and leave, over and over, must not
 * grow the coordinator's memory or /api/status. Join/leave cycles over real
 * loopback socket.io connections (each join answer carries the model, about
 * 20 ms a cycle here), with `--participant-grace 0` so every departed record
 * is forgotten at once and the server's own maps (rejoin secrets, sockets)
 * must follow; no round ever starts (min-clients is out of reach), as in the
 * audit. 10,000 cycles with the default grace, where the hard bound on
 * departed records holds, run in-process in test/unit/admission-selection.test.ts.
 */

const CYCLES = Number(process.env.CHURN_CYCLES ?? 600);
const WORKERS = 3;
const TOKEN = 'churn-test-join-token-000001';

describe('join/leave churn', () => {
  let coordinator: Coordinator;
  let dataDir: string;
  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'fl-churn-'));
    const config = parseConfig(
      [
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--quiet',
        '--data-dir',
        dataDir,
        '--join-token',
        TOKEN,
        '--min-clients',
        '100000',
        '--clients-per-round',
        '100000',
        '--participant-grace',
        '0',
      ],
      {},
    ) as CoordinatorConfig;
    coordinator = await startCoordinator(config, { log: () => {} });
  });
  after(async () => {
    await coordinator.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  async function cycle(): Promise<void> {
    const socket = io(coordinator.url, { transports: ['websocket'], reconnection: false, forceNew: true, auth: { token: TOKEN } });
    try {
      const answer = (await socket
        .timeout(10_000)
        .emitWithAck('join', { protocolVersion: PROTOCOL_VERSION, client: { backend: 'cpu', numExamples: 10 } })) as Ack<JoinAccepted>;
      assert.ok(answer.ok, JSON.stringify(answer));
    } finally {
      socket.close();
    }
  }

  async function status(): Promise<{ bytes: number; status: FederationStatus }> {
    const text = await (await fetch(`${coordinator.url}/api/status`)).text();
    return { bytes: Buffer.byteLength(text), status: JSON.parse(text) as FederationStatus };
  }

  it(`${CYCLES.toLocaleString('en')} cycles: status size and RSS stay flat`, async () => {
    const samples: { cycles: number; bytes: number; known: number; rssMb: number }[] = [];
    let done = 0;
    const sample = async () => {
      // Let the last disconnects reach the coordinator.
      await new Promise((resolve) => setTimeout(resolve, 300));
      // A full GC first (the test runner has no --expose-gc), so RSS compares retained memory.
      setFlagsFromString('--expose-gc');
      (runInNewContext('gc') as () => void)();
      const { bytes, status: s } = await status();
      samples.push({ cycles: done, bytes, known: s.participantTotals!.known, rssMb: Math.round(process.memoryUsage().rss / 1e6) });
    };
    const started = Date.now();
    const perSample = CYCLES / 4;
    for (let phase = 0; phase < 4; phase++) {
      let next = 0;
      await Promise.all(
        Array.from({ length: WORKERS }, async () => {
          while (next < perSample) {
            next++;
            await cycle();
            done++;
          }
        }),
      );
      await sample();
    }
    console.log(`# ${done} cycles in ${((Date.now() - started) / 1000).toFixed(1)} s: ${JSON.stringify(samples)}`);
    const first = samples[0]!;
    for (const s of samples) {
      assert.ok(s.known <= WORKERS, `${s.cycles} cycles: ${s.known} participant records`);
      assert.ok(s.bytes <= first.bytes * 1.1, `${s.cycles} cycles: status ${s.bytes} bytes, ${first.bytes} at first`);
    }
    // A leak of one record per cycle grew RSS by 51 MB per 3,000 cycles in the audit; allow noise well below that.
    const growth = samples.at(-1)!.rssMb - first.rssMb;
    assert.ok(growth < 25, `RSS grew ${growth} MB over ${CYCLES - first.cycles} cycles: ${JSON.stringify(samples)}`);
  });
});
