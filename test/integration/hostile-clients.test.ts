import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { io, type Socket } from 'socket.io-client';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { startCoordinator, type Coordinator } from '../../coordinator/server.ts';
import { buildStrategy } from '../../coordinator/strategies.ts';
import { loadMnistDemo, type DemoData } from '../../coordinator/task/demo-data.ts';
import { FedAvg } from '../../core/aggregation/fedavg.ts';
import type { RoundAggregator, RoundContext, Strategy } from '../../core/aggregation/strategy.ts';
import { StrategyWrapper } from '../../core/aggregation/wrapper.ts';
import { l2Norm } from '../../core/privacy/update-privacy.ts';
import { ErrorCode, type Ack } from '../../core/protocol/errors.ts';
import { PROTOCOL_VERSION, type JoinAccepted, type RoundStartMessage, type UpdateMessage } from '../../core/protocol/messages.ts';
import type { FederationStatus, RoundRecord } from '../../core/protocol/status.ts';
import { decodeFrame, encodeFrame, FrameKind } from '../../core/wire/frame.ts';
import { startNodeParticipants, stopNodeParticipants, type NodeParticipant } from '../helpers/node-participants.ts';
import { RawClient } from '../helpers/raw-socket-io.ts';

/**
 * A real coordinator with join tokens, an admin token, a connection cap and
 * an update-norm bound; three honest Node participants; and a scripted
 * attacker that speaks docs/protocol.md but sends every kind of bad message
 * it can think of. Each must be refused with its documented error code, the
 * coordinator must stay up, and the honest participants must get exactly the
 * rounds they would have had without the attacker.
 *
 * "Exactly": the honest participants train with LocalTrainer, which shuffles
 * each epoch with tf.util.createShuffledIndices (Math.random), so two runs
 * never produce the same updates and the final models of two runs cannot be
 * compared byte for byte. Instead the test compares what can be made exact:
 * (1) per round, the set of updates the strategy aggregated is exactly the
 * set of updates the honest participants sent (SHA-256 of the values), the
 * attacker's never among them; (2) the final model equals, byte for byte,
 * FedAvg replayed from the same initial model over those honest updates
 * alone, which is what a run without the attacker computes from the same
 * inputs; (3) the round outcomes (aggregated, how many honest updates, which
 * honest participants) equal those of a run without the attacker.
 */

const HONEST_TOKEN = 'honest-participants-token-0001';
const ATTACKER_TOKEN = 'stolen-but-valid-token-000002';
const ADMIN_TOKEN = 'hostile-test-admin-token-00003';
const TOKENS = [HONEST_TOKEN, ATTACKER_TOKEN, ADMIN_TOKEN];
const HONEST = 3;
const ROUNDS = 4;
// Round 3 waits out this deadline (the half-open participant): long enough for the honest rounds and the attacks of
// round 2 (an honest round trains in about 1.5 s), short enough not to idle the suite.
const ROUND_TIMEOUT_S = 12;
const MAX_CONNECTIONS = 16;
const MAX_UPDATE_NORM = 50;

/** What the strategy really aggregated, in order. */
interface Aggregated {
  readonly round: number;
  readonly participantId: string;
  readonly sha: string;
}

function sha(values: Float32Array): string {
  return createHash('sha256')
    .update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength))
    .digest('hex');
}

function sameBytes(a: Float32Array, b: Float32Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

/** Passes everything to the configured strategy (norm bound included) and records each update it accepted. */
class RecordingStrategy extends StrategyWrapper {
  readonly name: string;
  constructor(
    inner: Strategy,
    private readonly log: Aggregated[],
  ) {
    super(inner);
    this.name = inner.name;
  }

  override beginRound(context: RoundContext): RoundAggregator {
    const inner = this.inner.beginRound(context);
    const log = this.log;
    return {
      add(result) {
        inner.add(result); // throws (UPDATE_TOO_LARGE) before anything is recorded
        log.push({ round: context.round, participantId: result.participantId, sha: sha(result.update) });
      },
      get count() {
        return inner.count;
      },
      finish: () => inner.finish(),
      abandon: () => inner.abandon?.(),
    };
  }
}

/** An honest participant's update as it left the participant. */
interface SentUpdate {
  readonly participant: number;
  readonly message: UpdateMessage;
  readonly values: Float32Array;
  readonly sha: string;
}

interface Run {
  readonly coordinator: Coordinator;
  readonly participants: NodeParticipant[];
  readonly aggregated: Aggregated[];
  readonly sent: SentUpdate[];
  readonly initial: Float32Array;
  readonly dataDir: string;
  readonly logLines: string[];
}

async function startRun(demo: DemoData, tokenFile: string): Promise<Run> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'fl-hostile-'));
  const config = parseConfig(
    [
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--rounds',
      String(ROUNDS),
      '--min-clients',
      String(HONEST),
      '--clients-per-round',
      '50',
      '--min-updates',
      '1',
    ]
      .concat(['--round-timeout', String(ROUND_TIMEOUT_S), '--seed', '7', '--data-dir', dataDir, '--quiet'])
      .concat(['--join-token-file', tokenFile, '--admin-token', ADMIN_TOKEN, '--max-connections', String(MAX_CONNECTIONS)])
      .concat(['--max-update-norm', String(MAX_UPDATE_NORM)]),
    {},
  ) as CoordinatorConfig;
  const aggregated: Aggregated[] = [];
  const logLines: string[] = [];
  const coordinator = await startCoordinator(config, {
    strategy: new RecordingStrategy(buildStrategy(config), aggregated),
    log: (line) => logLines.push(line),
  });
  const initial = Float32Array.from(coordinator.engine.globalModel.weights);
  const participants = await startNodeParticipants(coordinator.url, demo, coordinator.task, HONEST, { auth: { token: HONEST_TOKEN } });
  const sent: SentUpdate[] = [];
  participants.forEach((p, k) => {
    p.participant.socket.onAnyOutgoing((event: string, message: UpdateMessage) => {
      if (event !== 'update') return;
      const frame = new Uint8Array(message.update instanceof ArrayBuffer ? message.update : message.update.slice().buffer).slice();
      const values = decodeFrame(frame, { kind: FrameKind.Update, expectedCount: coordinator.task.paramCount });
      const digest = sha(values);
      if (!sent.some((s) => s.sha === digest)) sent.push({ participant: k, message: { ...message, update: frame }, values, sha: digest });
    });
  });
  return { coordinator, participants, aggregated, sent, initial, dataDir, logLines };
}

async function endRun(run: Run | undefined): Promise<void> {
  if (!run) return;
  stopNodeParticipants(run.participants);
  await run.coordinator.close();
  await rm(run.dataDir, { recursive: true, force: true });
}

/** Per round: the outcome, the honest participants (by index) whose updates were aggregated, and how many updates were. */
function outcomes(run: Run, history: readonly RoundRecord[]): string[] {
  const indexOf = new Map(run.participants.map((p, k) => [p.participant.id!, k]));
  return history.map((r) => {
    const who = run.aggregated.filter((a) => a.round === r.round).map((a) => indexOf.get(a.participantId) ?? `attacker ${a.participantId}`);
    return `round ${r.round}: ${r.outcome}, ${r.received} received, honest ${JSON.stringify(who.sort())}`;
  });
}

/** Checks (1) and (2) of the header comment: only honest updates were aggregated, and replaying them alone gives the final model. */
function assertOnlyHonestAggregated(run: Run, final: FederationStatus): void {
  const bySha = new Map(run.sent.map((s) => [s.sha, s]));
  for (const record of final.history) {
    const inRound = run.aggregated.filter((a) => a.round === record.round);
    const honestSent = run.sent.filter((s) => s.message.round === record.round).map((s) => s.sha);
    assert.deepEqual(inRound.map((a) => a.sha).sort(), honestSent.sort(), `round ${record.round}: aggregated exactly the honest updates`);
    for (const a of inRound)
      assert.equal(
        bySha.get(a.sha)!.participant,
        run.participants.findIndex((p) => p.participant.id === a.participantId),
      );
    assert.equal(record.received, honestSent.length);
  }
  let weights = run.initial;
  for (const record of final.history) {
    const round = new FedAvg().beginRound({ round: record.round, globalWeights: weights });
    for (const a of run.aggregated.filter((x) => x.round === record.round)) {
      const s = bySha.get(a.sha)!;
      round.add({ participantId: a.participantId, numExamples: s.message.numExamples, update: s.values });
    }
    weights = round.finish() ?? weights;
  }
  assert.ok(
    sameBytes(weights, run.coordinator.engine.globalModel.weights),
    'the final model is FedAvg of the honest updates alone, byte for byte',
  );
}

async function waitFor<T>(what: string, check: () => T | undefined | false, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// --- the attacker's tools ------------------------------------------------------

const opened: Socket[] = [];

function client(url: string, auth?: Record<string, string>): Socket {
  const socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true, auth: auth ?? {} });
  opened.push(socket);
  return socket;
}

function connected(socket: Socket): Promise<void> {
  if (socket.connected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', (error) => reject(new Error(`refused: ${error.message}`)));
  });
}

/** 'connected', or the code of the refused handshake (`connect_error`, `err.data.code`). */
function handshake(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    socket.once('connect', () => resolve('connected'));
    socket.once('connect_error', (error: Error & { data?: { code?: string } }) =>
      resolve(error.data?.code ?? `no code (${error.message})`),
    );
  });
}

/** Sends a request and returns the code of its answer ('ok' when accepted). */
async function request(socket: Socket, event: string, ...args: unknown[]): Promise<string> {
  const answer = (await socket.timeout(15_000).emitWithAck(event, ...args)) as Ack<unknown>;
  return answer.ok ? 'ok' : answer.error.code;
}

async function joinAs(socket: Socket, backend: string): Promise<string> {
  const answer = (await socket
    .timeout(15_000)
    .emitWithAck('join', { protocolVersion: PROTOCOL_VERSION, client: { backend, numExamples: 100 } })) as Ack<JoinAccepted>;
  assert.ok(answer.ok, JSON.stringify(answer));
  return answer.value.participantId;
}

function closed(socket: Socket): Promise<string> {
  if (!socket.connected) return Promise.resolve('already closed');
  return new Promise((resolve) => socket.once('disconnect', (reason) => resolve(reason)));
}

// --- the test ------------------------------------------------------------------

describe('hostile clients', () => {
  let dir: string;
  let tokenFile: string;
  let demo: DemoData;
  let baseline: Run | undefined;
  let attacked: Run | undefined;
  let baselineOutcomes: string[] = [];
  const raw: RawClient[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'fl-hostile-tokens-'));
    tokenFile = path.join(dir, 'join-tokens.txt');
    await writeFile(
      tokenFile,
      `# participants of the hostile-clients test\n${HONEST_TOKEN}   # the honest ones\n\n${ATTACKER_TOKEN}  # leaked to the attacker\n`,
    );
    demo = await loadMnistDemo();
  });

  after(async () => {
    for (const s of opened) s.close();
    for (const r of raw) r.tcp.destroy();
    await endRun(baseline);
    await endRun(attacked);
    await rm(dir, { recursive: true, force: true });
  });

  it('a run without the attacker: the reference outcomes', { timeout: 240_000 }, async () => {
    baseline = await startRun(demo, tokenFile);
    const final = await baseline.coordinator.done;
    assert.equal(final.history.length, ROUNDS);
    assertOnlyHonestAggregated(baseline, final);
    baselineOutcomes = outcomes(baseline, final.history);
    assert.ok(
      final.history.every((r) => r.outcome === 'aggregated' && r.received === HONEST),
      baselineOutcomes.join('\n'),
    );
    for (const s of baseline.sent)
      assert.ok(l2Norm(s.values) < MAX_UPDATE_NORM / 4, `honest update norm ${l2Norm(s.values)} is far below the bound`);
    await endRun(baseline);
    baseline = undefined;
  });

  it('refuses 28 kinds of hostile message with their documented codes; the honest rounds are unchanged', { timeout: 300_000 }, async () => {
    const seen: { kind: string; expected: string; got: string }[] = [];
    const expect = (kind: string, expected: string, got: string) => seen.push({ kind, expected, got });

    // Everything the coordinator logs or prints during the attack, to check no token shows.
    const printed: string[] = [];
    const saved = { log: console.log, warn: console.warn, error: console.error };
    for (const name of ['log', 'warn', 'error'] as const) {
      console[name] = (...args: unknown[]) => {
        printed.push(args.map(String).join(' '));
        saved[name](...args);
      };
    }

    try {
      attacked = await startRun(demo, tokenFile);
      const run = attacked;
      const { coordinator } = run;
      const url = coordinator.url;
      const engine = coordinator.engine;
      const paramCount = coordinator.task.paramCount;
      const zeros = () => new Float32Array(paramCount);

      // ---- Round 1 is open: the attacker arrives (and is not selected). ----
      await waitFor('round 1', () => engine.status().phase === 'training' && engine.currentRound === 1);

      // First of all, the attacker's participants for round 2: six identities with the leaked token, joined
      // while round 1 trains (so they are selected in round 2, and hold it open until they answer).
      const mallory = Array.from({ length: 6 }, () => client(url, { token: ATTACKER_TOKEN }));
      const round2Starts = mallory.map(
        (m) =>
          new Promise<RoundStartMessage>((resolve) =>
            m.on('round:start', (message: RoundStartMessage) => message.round === 2 && resolve(message)),
          ),
      );
      const malloryIds = await Promise.all(
        mallory.map(async (m, i) => {
          await connected(m);
          return joinAs(m, `evil-${i}`);
        }),
      );
      assert.equal(engine.currentRound, 1, 'the attacker joined while round 1 was open');

      // 1-2. The handshake without a token, and with a wrong one.
      expect('no token', ErrorCode.Unauthorized, await handshake(client(url)));
      expect('wrong token', ErrorCode.Unauthorized, await handshake(client(url, { token: 'guessed-token-0000000000000' })));

      // 3. Admin without the admin token: the /admin namespace with none, with a join token, and the admin HTTP route.
      expect('admin namespace, no token', ErrorCode.Unauthorized, await handshake(client(`${url}/admin`)));
      expect('admin namespace, join token', ErrorCode.Unauthorized, await handshake(client(`${url}/admin`, { token: ATTACKER_TOKEN })));
      const statusApi = await fetch(`${url}/api/status`);
      const statusBody = (await statusApi.json()) as { error?: { code: string } };
      expect(
        'admin HTTP route, no token',
        ErrorCode.Unauthorized,
        statusApi.status === 401 ? statusBody.error!.code : `HTTP ${statusApi.status}`,
      );
      const wrongBearer = await fetch(`${url}/api/status`, { headers: { authorization: `Bearer ${ATTACKER_TOKEN}` } });
      assert.equal(wrongBearer.status, 401);
      // ...and the admin token does open it (the refusals above are not a broken route).
      const dashboard = client(`${url}/admin`, { token: ADMIN_TOKEN });
      await new Promise((resolve) => dashboard.once('status', resolve));
      dashboard.close();

      // 4-5. Protocol errors before joining: an update first, an unknown protocol version.
      const probe = client(url, { token: ATTACKER_TOKEN });
      await connected(probe);
      expect(
        'update before join',
        ErrorCode.NotJoined,
        await request(probe, 'update', {
          round: 1,
          baseVersion: 0,
          numExamples: 1,
          trainMs: 1,
          update: encodeFrame(FrameKind.Update, zeros()),
        }),
      );
      expect(
        'unsupported protocol version',
        ErrorCode.UnsupportedProtocol,
        await request(probe, 'join', { protocolVersion: 99, client: { backend: 'evil', numExamples: 1 } }),
      );
      expect(
        'join with 0 examples',
        ErrorCode.BadPayload,
        await request(probe, 'join', { protocolVersion: PROTOCOL_VERSION, client: { backend: 'evil', numExamples: 0 } }),
      );
      probe.close();

      // 6. An oversize payload (twice a full frame: over the limit, which fits a full frame as base64): the coordinator closes the connection (no ack).
      const big = client(url, { token: ATTACKER_TOKEN });
      await connected(big);
      const bigClosed = closed(big);
      big.emit('update', { round: 1, baseVersion: 0, numExamples: 1, trainMs: 1, update: new Uint8Array(8 * paramCount + 200_000) });
      expect('oversize payload', 'transport close', await bigClosed);

      // 7. An undecodable packet (an unknown socket.io packet type; a malformed event gets UNKNOWN_EVENT, hostile-protocol.test.ts): the connection is closed.
      const garbage = await RawClient.open(coordinator.port, ATTACKER_TOKEN);
      raw.push(garbage);
      garbage.send('49["update",{"round":1}]');
      await garbage.closedByServer;
      garbage.tcp.destroy();
      expect('undecodable packet', 'connection closed', 'connection closed');

      // 8. Too many connections: fill up to --max-connections, then one more is refused.
      const fillers: Socket[] = [];
      let capCode = 'not reached';
      for (let i = 0; i < MAX_CONNECTIONS + 2 && capCode === 'not reached'; i++) {
        const s = client(url, { token: ATTACKER_TOKEN });
        fillers.push(s);
        const result = await handshake(s);
        if (result !== 'connected') capCode = result;
      }
      expect('too many connections', ErrorCode.TooManyConnections, capCode);
      assert.ok(
        run.participants.every((p) => p.participant.socket.connected),
        'the honest participants kept their connections',
      );
      for (const s of fillers) s.close();
      // The slots come back once the coordinator has seen the closes.
      for (let free = false; !free; ) {
        const s = client(url, { token: ATTACKER_TOKEN });
        free = (await handshake(s)) === 'connected';
        s.close();
        if (!free) await new Promise((resolve) => setTimeout(resolve, 100));
      }

      // ---- Round 2: the attacker's identities are selected and hold the round open. ----
      const starts = await Promise.all(round2Starts);
      assert.equal(starts[0]!.model.version, 1);
      const round1Update = run.sent.find((s) => s.message.round === 1 && s.participant === 0)!;
      assert.ok(round1Update, 'captured an honest round-1 update');

      // A late joiner (not selected in round 2) for the non-excluding checks.
      const late = client(url, { token: ATTACKER_TOKEN });
      await connected(late);
      await joinAs(late, 'evil-late');
      const base = { round: 2, baseVersion: 1, numExamples: 100, trainMs: 1 };
      const okFrame = () => encodeFrame(FrameKind.Update, zeros());

      // 9. An unselected sender.
      expect('unselected sender', ErrorCode.NotSelected, await request(late, 'update', { ...base, update: okFrame() }));
      // 10. Malformed fields, each a BAD_PAYLOAD.
      const malformed: [string, unknown][] = [
        ['round as a string', { ...base, round: '2', update: okFrame() }],
        ['update as base64 text', { ...base, update: Buffer.from(encodeFrame(FrameKind.Update, new Float32Array(4))).toString('base64') }],
        ['numExamples too large', { ...base, numExamples: 1e12, update: okFrame() }],
        ['metrics.loss null (NaN in JSON)', { ...base, metrics: { loss: null, accuracy: 0 }, update: okFrame() }],
        ['trainMs a string', { ...base, trainMs: 'fast', update: okFrame() }],
        ['payload an array', [base]],
        ['payload null', null],
      ];
      for (const [what, payload] of malformed) expect(`malformed: ${what}`, ErrorCode.BadPayload, await request(late, 'update', payload));
      expect('malformed: decline without final', ErrorCode.BadPayload, await request(late, 'decline', { round: 2, reason: 'x' }));
      expect(
        'malformed: join as another id',
        ErrorCode.BadPayload,
        await request(late, 'join', {
          protocolVersion: PROTOCOL_VERSION,
          participantId: 'someone-else',
          client: { backend: 'evil', numExamples: 1 },
        }),
      );
      // 11. Unknown events, an admin-sounding one and a server event name among them.
      expect('unknown event', ErrorCode.UnknownEvent, await request(late, 'steal-model', {}));
      expect('admin event on the participant namespace', ErrorCode.UnknownEvent, await request(late, 'admin:set-task', { name: 'evil' }));
      expect(
        'server event sent by a client',
        ErrorCode.UnknownEvent,
        await request(late, 'round:end', { round: 2, outcome: 'aggregated', modelVersion: 9 }),
      );

      // 12. A half-open connection: joins now (eligible for round 3), then never reads or answers again.
      const halfOpen = await RawClient.open(coordinator.port, ATTACKER_TOKEN);
      raw.push(halfOpen);
      halfOpen.send(
        `420${JSON.stringify(['join', { protocolVersion: PROTOCOL_VERSION, client: { backend: 'half-open', numExamples: 100 } }])}`,
      );
      await halfOpen.next((f) => f.startsWith('461-0') || f.startsWith('430'));
      halfOpen.tcp.pause(); // from here on: silence, no pong, no reading

      // 13. A second update in a round: the honest participant's own accepted update, sent again on its connection.
      await waitFor(
        'the honest round-2 updates',
        () => run.participants.every((p) => p.events.some((e) => e.type === 'uploaded' && e.round === 2)),
        ROUND_TIMEOUT_S * 1000,
      );
      const honest0 = run.sent.find((s) => s.message.round === 2 && s.participant === 0)!;
      expect(
        'second update in a round',
        ErrorCode.DuplicateUpdate,
        await request(run.participants[0]!.participant.socket as unknown as Socket, 'update', {
          ...honest0.message,
          update: honest0.message.update,
        }),
      );

      // 14. Replays of an old update: as it was (round 1), and relabelled for round 2 (model version 0).
      const [m0, m1, m2, m3, m4, m5] = mallory as [Socket, Socket, Socket, Socket, Socket, Socket];
      expect('replay of an old update (its round)', ErrorCode.WrongRound, await request(m0, 'update', round1Update.message));
      expect('wrong round', ErrorCode.WrongRound, await request(m0, 'update', { ...base, round: 99, update: okFrame() }));
      expect(
        'replay of an old update (relabelled)',
        ErrorCode.StaleModel,
        await request(m0, 'update', { ...round1Update.message, round: 2 }),
      );
      expect('update after being excluded', ErrorCode.NotSelected, await request(m0, 'update', { ...base, update: okFrame() }));
      // 15-19. Bad updates from selected senders, each excluded from the round.
      expect(
        'wrong length',
        ErrorCode.WrongLength,
        await request(m1, 'update', { ...base, update: encodeFrame(FrameKind.Update, new Float32Array(10)) }),
      );
      const nan = zeros();
      nan[1234] = NaN;
      expect('NaN', ErrorCode.NonFinite, await request(m2, 'update', { ...base, update: encodeFrame(FrameKind.Update, nan) }));
      const inf = zeros();
      inf[paramCount - 1] = -Infinity;
      expect('Infinity', ErrorCode.NonFinite, await request(m3, 'update', { ...base, update: encodeFrame(FrameKind.Update, inf) }));
      expect(
        'norm above the bound',
        ErrorCode.UpdateTooLarge,
        await request(m4, 'update', { ...base, update: encodeFrame(FrameKind.Update, new Float32Array(paramCount).fill(1)) }),
      );
      const badMagic = new Uint8Array(okFrame());
      badMagic[0] = 0x58;
      expect('bad frame magic', ErrorCode.BadFrame, await request(m5, 'update', { ...base, update: badMagic }));

      await waitFor('round 2 to close', () => engine.status().history.length >= 2);
      for (const s of [...mallory, late]) s.close();

      // ---- Round 3: a flood, while the half-open participant holds the round until its deadline. ----
      await waitFor('round 3', () => engine.currentRound === 3 && engine.status().phase === 'training');
      // 20. 1,000 messages a second.
      const flood = client(url, { token: ATTACKER_TOKEN });
      await connected(flood);
      const floodCodes = new Map<string, number>();
      const floodClosed = closed(flood);
      const floodStart = Date.now();
      let floodSent = 0;
      const floodEnd = new Promise<string>((resolve) => {
        const timer = setInterval(() => {
          const elapsed = Date.now() - floodStart;
          if (!flood.connected || elapsed > 6000) {
            clearInterval(timer);
            resolve(flood.connected ? 'still connected after 6 s' : `disconnected after ${elapsed} ms`);
            return;
          }
          for (; floodSent < elapsed; floodSent++) {
            if (floodSent % 2) flood.emit('progress', { round: 3, epoch: 0, epochs: 1, fraction: 0.5 });
            else
              flood.emit('decline', { round: 3, reason: 'flood', final: false }, (a: Ack<unknown>) =>
                floodCodes.set(a.ok ? 'ok' : a.error.code, (floodCodes.get(a.ok ? 'ok' : a.error.code) ?? 0) + 1),
              );
          }
        }, 5);
      });
      const floodResult = await floodEnd;
      expect('flood of 1,000 messages/s: disconnected', 'io server disconnect', await floodClosed);
      expect(
        'flood of 1,000 messages/s: refused requests',
        ErrorCode.RateLimited,
        (floodCodes.get(ErrorCode.RateLimited) ?? 0) >= 500 ? ErrorCode.RateLimited : JSON.stringify([...floodCodes]),
      );
      assert.match(floodResult, /disconnected after (\d+) ms/);
      const floodMs = Number(/(\d+) ms/.exec(floodResult)![1]);
      assert.ok(floodMs >= 1500 && floodMs < 4000, `cut after ${floodMs} ms of flooding (about 2 s expected)`);
      assert.ok((floodCodes.get(ErrorCode.NotJoined) ?? 0) > 0, 'requests within the budget were answered normally');

      // The half-open participant is dropped at the deadline at the latest; the round still aggregates the honest updates.
      await waitFor('round 3 to close at its deadline', () => engine.status().history.length >= 3, (ROUND_TIMEOUT_S + 10) * 1000);
      const round3 = engine.status().history[2]!;
      expect(
        'half-open connection: dropped at the round deadline',
        'dropped',
        round3.dropped >= 1 ? 'dropped' : `dropped ${round3.dropped}`,
      );
      assert.ok(round3.durationMs >= ROUND_TIMEOUT_S * 1000 - 1000, `round 3 waited for its deadline (${round3.durationMs} ms)`);
      halfOpen.tcp.destroy();

      // ---- The end: the coordinator is up and the honest rounds are what they would have been. ----
      const final = await coordinator.done;
      assert.equal(final.history.length, ROUNDS);

      const failures = seen.filter((s) => s.got !== s.expected);
      assert.deepEqual(failures, [], `refused with the documented codes:\n${seen.map((s) => `${s.kind}: ${s.got}`).join('\n')}`);
      const kinds = new Set(seen.map((s) => s.kind.replace(/:.*/, '')));
      assert.ok(kinds.size >= 15, `${kinds.size} kinds of hostile message`);
      assert.equal(kinds.size, 28, 'the count in the title');

      // The coordinator counted the refusals and still answers.
      for (const code of [
        ErrorCode.Unauthorized,
        ErrorCode.TooManyConnections,
        ErrorCode.RateLimited,
        ErrorCode.BadPayload,
        ErrorCode.UnknownEvent,
        ErrorCode.WrongLength,
        ErrorCode.NonFinite,
        ErrorCode.UpdateTooLarge,
        ErrorCode.BadFrame,
        ErrorCode.StaleModel,
        ErrorCode.WrongRound,
        ErrorCode.NotSelected,
        ErrorCode.DuplicateUpdate,
      ]) {
        assert.ok((final.rejections[code] ?? 0) > 0, `${code} counted in rejections: ${JSON.stringify(final.rejections)}`);
      }
      const task = await fetch(`${url}/api/task`);
      assert.equal(task.status, 200);
      const status = (await (
        await fetch(`${url}/api/status`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
      ).json()) as FederationStatus;
      assert.equal(status.done, true);
      const after = client(url, { token: HONEST_TOKEN });
      await connected(after);
      assert.ok((await joinAs(after, 'wasm')).length > 0, 'a participant can still join');

      // The honest participants: only their updates were aggregated, the model is theirs alone, the outcomes are the reference ones.
      assertOnlyHonestAggregated(run, final);
      assert.ok(!run.aggregated.some((a) => malloryIds.includes(a.participantId)));
      assert.deepEqual(outcomes(run, final.history), baselineOutcomes);
      for (const p of run.participants)
        assert.ok(!p.events.some((e) => e.type === 'rejected' || e.type === 'error'), 'no honest request was refused');

      // Tokens never in the logs, the console or the status.
      const everything = [...printed, ...run.logLines, JSON.stringify(status)].join('\n');
      for (const token of TOKENS) assert.ok(!everything.includes(token), 'a token was printed');
      assert.ok(
        run.logLines.some((l) => /over its limit/.test(l)),
        'the rate limit was logged',
      );
    } finally {
      Object.assign(console, saved);
    }
  });
});
