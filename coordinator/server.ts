import { randomBytes, randomUUID } from 'node:crypto';
import { withSkellam } from './distributed-noise-config.ts';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Server, type Namespace, type Socket } from 'socket.io';
import type { Strategy } from '../core/aggregation/strategy.ts';
import type { WeightShape } from '../core/protocol/messages.ts';
import { ackError, ackOk, ErrorCode, ProtocolError, type Ack } from '../core/protocol/errors.ts';
import {
  CLIENT_EVENTS,
  PROTOCOL_VERSION,
  type ClientToServerEvents,
  type ServerToClientEvents,
  type TaskSummary,
} from '../core/protocol/messages.ts';
import type { AdminClientToServerEvents, AdminServerToClientEvents, FederationStatus } from '../core/protocol/status.ts';
import {
  parseDeclineMessage,
  parseJoinRequest,
  parseProgressMessage,
  parseSecAggAdvertise,
  parseSecAggMasked,
  parseSecAggShares,
  parseSecAggUnmask,
  parseUpdateMessage,
} from '../core/protocol/validate.ts';
import { SeededRandom } from '../core/random/prng.ts';
import { FRAME_HEADER_BYTES } from '../core/wire/frame.ts';
import type { CoordinatorConfig } from './config.ts';
import { buildStrategy } from './strategies.ts';
import { TestSetEvaluator } from './evaluator.ts';
import { serveStatic } from './http/static-files.ts';
import { defaultSecurity } from './security/config.ts';
import { createAdmission, createTransportServer, guardHttp, installSecurity, publicUrl, socketServerOptions } from './security/guard.ts';
import { TokenSet } from './security/tokens.ts';
import { SystemClock } from './rounds/clock.ts';
import { RoundEngine, weightsHash, type ResumePoint, type RoundTransport, type SecAggObserver } from './rounds/round-engine.ts';
import type { SecAggStep } from './rounds/secure-round.ts';
import { encodeForwarded, encodeKeys, encodeUnmaskRequest } from '../core/protocol/secagg-wire.ts';
import { CheckpointStore } from './storage/checkpoints.ts';
import { writeFileAtomic } from './storage/atomic-write.ts';
import { saveWithRetry, storageFailureText } from './rounds/durable-commit.ts';
import { AtRestKey } from './storage/encryption.ts';
import { ModelSerializer, weightsFromFiles } from './storage/model-files.ts';
import { BestModelStore } from './storage/best-model.ts';
import { bestRound } from './rounds/best-round.ts';
import { attachAdminSocket, serveAdminDownload } from './report/admin-api.ts';
import { RunReports } from './report/reports.ts';
import type { RunReport } from './report/run-report.ts';
import { loadTask, taskSummary } from './task/load-task.ts';
import { initNodeBackend } from './tf-node.ts';

interface SocketData {
  participantId?: string;
  /** The per-participant credential it authenticated with (security/credentials.ts), if any. */
  credential?: string;
}

type ParticipantServer = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;
type ParticipantSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

/** Slack above the largest frame for the JSON parts of a message. */
const MESSAGE_SLACK_BYTES = 64 * 1024;
/** Dashboards get at most this many status pushes per second. */
const STATUS_PUSHES_PER_SECOND = 10;

export interface Coordinator {
  readonly url: string;
  readonly port: number;
  readonly engine: RoundEngine;
  readonly task: TaskSummary;
  readonly backend: string;
  /** Resolves when the federation finishes. */
  readonly done: Promise<FederationStatus>;
  /** The final run report, once written to <data-dir>/<task>/report.json and .html (undefined when checkpoints are encrypted). */
  readonly finalReport: Promise<RunReport | undefined>;
  close(): Promise<void>;
}

export interface CoordinatorHooks {
  readonly strategy?: Strategy;
  readonly log?: (line: string) => void;
  /** Tests only: what the coordinator holds during secure aggregation. */
  readonly secaggObserver?: SecAggObserver;
}

/**
 * Starts the coordinator: HTTP (pages, status API, demo data) and socket.io
 * on one port, the round engine, the test-set evaluator and the model files.
 */
export async function startCoordinator(config: CoordinatorConfig, hooks: CoordinatorHooks = {}): Promise<Coordinator> {
  const log = hooks.log ?? (config.quiet ? () => {} : (line: string) => console.log(line));
  const backend = await initNodeBackend();
  // The task file's (or the embedded MNIST demo's) model, data and audit sets (coordinator/task/load-task.ts).
  const loaded = await loadTask(config);
  for (const note of loaded.notes) log(note);
  const spec = loaded.spec;
  const initialWeights = loaded.initialWeights;
  const task: TaskSummary = taskSummary(loaded, config.settings.fit.sampleDp);
  const evaluator = new TestSetEvaluator(spec, loaded.test);
  const runDir = path.resolve(config.dataDir, task.name);
  const serializer = new ModelSerializer(spec);
  const atRestKey = config.checkpointKeyFile ? await AtRestKey.fromFile(config.checkpointKeyFile) : undefined;
  const checkpoints = new CheckpointStore(
    runDir,
    atRestKey,
    // Fault injection, used by the crash test only.
    process.env.FL_FAULT_KILL_IN_CHECKPOINT === '1',
  );
  const strategy: Strategy = hooks.strategy ?? buildStrategy(withSkellam(config, task.paramCount));
  const lastStartedRound = await checkpoints.lastStartedRound();
  const resume = await findResumePoint(checkpoints, task, strategy, lastStartedRound, log);
  const bestModels = new BestModelStore(runDir, atRestKey);
  await repairBestModel(bestModels, resume, serializer, log);
  if (!resume) checkFreshClientBudget(strategy, runDir, config.freshPrivacyBudget === true);
  const demoData = loaded.demoData;
  const clock = new SystemClock();

  const security = config.security ?? defaultSecurity();
  const httpServer = createTransportServer(security);
  const admission = createAdmission(security);
  const io: ParticipantServer = new Server(httpServer, {
    // CORS, the Origin check and the connection caps (coordinator/security/guard.ts, admission.ts).
    ...socketServerOptions(security, admission),
    // Derived from the model: a full frame plus the JSON around it must fit.
    maxHttpBufferSize: FRAME_HEADER_BYTES + task.paramCount * 4 + MESSAGE_SLACK_BYTES,
    serveClient: false,
  });
  // The dashboard's namespace has its own event map; socket.io types namespaces by the parent's.
  const admin = io.of('/admin') as unknown as Namespace<AdminClientToServerEvents, AdminServerToClientEvents>;
  // Tokens, the connection cap and the message rate limit, before any handler below.
  const closeSecurity = installSecurity(io, admin, security, { countRejection: (code) => engine.countRejection(code), log }, admission, httpServer);
  const socketsByParticipant = new Map<string, ParticipantSocket>();
  const rejoinSecrets = new RejoinSecrets();

  let statusTimer: NodeJS.Timeout | undefined;
  let lastPush = 0;
  const pushStatus = () => {
    statusTimer = undefined;
    lastPush = Date.now();
    admin.emit('status', engine.dashboardStatus());
  };

  const transport: RoundTransport = {
    sendRoundStart(participantId, message) {
      socketsByParticipant.get(participantId)?.emit('round:start', message);
    },
    sendSecAgg(participantId, out) {
      const socket = socketsByParticipant.get(participantId);
      if (!socket) return;
      if (out.event === 'secagg:keys') socket.emit(out.event, encodeKeys(out.message));
      else if (out.event === 'secagg:forwarded') socket.emit(out.event, encodeForwarded(out.message));
      else socket.emit(out.event, encodeUnmaskRequest(out.message));
    },
    broadcastRoundEnd(message) {
      io.emit('round:end', message);
      const m = message.metrics;
      const privacy = strategy.privacy?.();
      log(
        `round ${message.round}: ${message.outcome}` +
          (privacy ? `, ε = ${privacy.epsilon.toFixed(3)} (δ = ${privacy.delta})` : '') +
          (m ? `, test accuracy ${(m.accuracy * 100).toFixed(2)}%, loss ${m.loss.toFixed(4)}` : '') +
          (message.reason ? ` (${message.reason})` : ''),
      );
    },
    broadcastDone(message) {
      io.emit('federation:done', message);
      log(`federation done: ${message.reason}`);
    },
    statusChanged() {
      if (statusTimer) return;
      const wait = Math.max(0, lastPush + 1000 / STATUS_PUSHES_PER_SECOND - Date.now());
      statusTimer = setTimeout(pushStatus, wait);
    },
  };

  const engine: RoundEngine = new RoundEngine({
    settings: config.settings,
    strategy,
    resume,
    lastStartedRound,
    clock,
    transport,
    evaluator,
    initialWeights,
    random: new SeededRandom(config.seed),
    task: { name: task.name, architecture: spec.architecture, paramCount: task.paramCount },
    newId: () => randomUUID(),
    secaggObserver: hooks.secaggObserver,
    logError: hooks.log ?? ((line) => console.error(line)),
    participantGraceMs: security.participantGraceMs,
    onParticipantForgotten: (id) => rejoinSecrets.forget(id),
    onRoundStarting: (round) => checkpoints.markRoundStarted(round),
    onRoundCompleted: async (record, model, history) => {
      const files = await serializer.toFiles(model.weights);
      await checkpoints.save({
        state: {
          version: 1,
          task: task.name,
          paramCount: task.paramCount,
          round: record.round,
          modelVersion: model.version,
          history,
          strategy: strategy.saveState ? { name: strategy.name, state: strategy.saveState() } : undefined,
          savedAt: Date.now(),
        },
        model: files,
      });
      // The latest model, in plain tfjs files where people look for it (not when checkpoints are encrypted).
      if (!config.checkpointKeyFile) {
        await writeFileAtomic(path.join(runDir, 'weights.bin'), files.weightsBin);
        await writeFileAtomic(path.join(runDir, 'model.json'), files.modelJson);
        await writeFileAtomic(path.join(runDir, 'history.json'), JSON.stringify(history, null, 2));
      }
      // After the checkpoint: a crash in between leaves this round as the newest checkpoint, and the restart rewrites best/ from it.
      const best = bestRound(history);
      if (best?.round === record.round && best.metrics && best.modelHash) {
        await bestModels.save({ version: 1, round: best.round, modelVersion: best.modelVersion, modelHash: best.modelHash, metrics: best.metrics, savedAt: Date.now() }, files);
      }
    },
  });

  // Model downloads, the run report with its membership audit, the history as CSV.
  const reports = new RunReports({
    engine,
    bestModel: () => bestModels.load(),
    task,
    spec,
    clientDp: config.clientDp,
    audit: loaded.audit && {
      ...loaded.audit,
      membersSource: `a seeded sample of the ${task.name} training examples served to participants (a member only if its shard took part)`,
      nonMembersSource: "the coordinator's held-out test set",
    },
  });
  // Like history.json: not in plain files when checkpoints are encrypted at rest.
  const finalReport = engine.done.then(async () => {
    if (config.checkpointKeyFile) return undefined;
    let written: RunReport | undefined;
    const outcome = await saveWithRetry({
      what: 'the final run report (report.json, report.html)',
      save: async () => void (written = await reports.writeFinal(runDir)),
      wait: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      now: () => Date.now(),
      onRetry: (failure, delayMs) => (hooks.log ?? console.error)(`${storageFailureText(failure)}; trying again in ${delayMs} ms`),
    });
    if (!outcome.ok) {
      (hooks.log ?? console.error)(storageFailureText(outcome.failure));
      engine.reportStorageFailure(outcome.failure);
    }
    return written;
  });

  io.on('connection', (socket) => attachParticipant(socket));
  admin.on('connection', (socket) => {
    socket.emit('status', engine.dashboardStatus());
    attachAdminSocket(socket, engine, log);
  });

  function attachParticipant(socket: ParticipantSocket): void {
    socket.on('join', (...args: unknown[]) => {
      respond(args, () => {
        const request = parseJoinRequest(args[0]);
        if (request.protocolVersion !== PROTOCOL_VERSION) {
          return refuse(ErrorCode.UnsupportedProtocol, `protocol version ${request.protocolVersion} is not supported; this coordinator speaks ${PROTOCOL_VERSION}`);
        }
        // Ids are public (status, dashboard): a known id is given back only with the secret issued with it.
        const claimed = request.participantId !== undefined && rejoinSecrets.matches(request.participantId, request.rejoinSecret) ? request.participantId : undefined;
        const previous = socket.data.participantId;
        if (previous !== undefined && previous !== claimed) {
          return refuse(ErrorCode.BadPayload, `this connection already joined as ${previous}`);
        }
        const id = engine.join(request.client, claimed, socket.data.credential);
        const rejoinSecret = claimed !== undefined ? request.rejoinSecret! : rejoinSecrets.issue(id);
        const other = socketsByParticipant.get(id);
        // Point the id at the new socket first, so the old socket's disconnect does not count as leaving.
        socketsByParticipant.set(id, socket);
        socket.data.participantId = id;
        if (other && other !== socket) other.disconnect(true);
        if (engine.isDone) {
          // A late joiner learns at once that no round will come (after its join answer).
          const final = engine.status();
          setTimeout(() => socket.emit('federation:done', { reason: final.doneReason ?? 'finished', round: final.round, metrics: final.history.at(-1)?.metrics }), 0);
        }
        const model = engine.globalModel;
        return ackOk({ participantId: id, rejoinSecret, task, model: { version: model.version, weights: model.frame }, round: engine.currentRound });
      });
    });
    socket.on('update', (...args: unknown[]) => {
      respond(args, () => {
        const id = socket.data.participantId;
        if (id === undefined) return refuse(ErrorCode.NotJoined, 'join before sending updates');
        let message;
        try {
          message = parseUpdateMessage(args[0]);
        } catch (error) {
          // A selected participant that sends garbage is out of the round: it must not hold it until the deadline.
          if (error instanceof ProtocolError) engine.excludeFromOpenRound(id);
          throw error;
        }
        try {
          return engine.submitUpdate(id, message);
        } catch (error) {
          engine.excludeFromOpenRound(id);
          throw error;
        }
      });
    });
    socket.on('decline', (...args: unknown[]) => {
      respond(args, () => {
        const id = socket.data.participantId;
        if (id === undefined) return refuse(ErrorCode.NotJoined, 'join before declining rounds');
        return engine.decline(id, parseDeclineMessage(args[0]));
      });
    });
    const secaggEvents: [keyof ClientToServerEvents, SecAggStep, (value: unknown) => Parameters<RoundEngine['submitSecAgg']>[2]][] = [
      ['secagg:advertise', 'advertise', parseSecAggAdvertise],
      ['secagg:shares', 'shares', parseSecAggShares],
      ['secagg:masked', 'masked', parseSecAggMasked],
      ['secagg:unmask', 'unmask', parseSecAggUnmask],
    ];
    for (const [event, step, parse] of secaggEvents) {
      (socket.on as (event: string, listener: (...args: unknown[]) => void) => void)(event, (...args: unknown[]) => {
        const ack = args.at(-1);
        const answer = (result: Ack<unknown>) => {
          if (typeof ack === 'function') ack(result);
        };
        const id = socket.data.participantId;
        if (id === undefined) return answer(refuse(ErrorCode.NotJoined, 'join before sending secure aggregation messages'));
        let message;
        try {
          message = parse(args[0]);
        } catch (error) {
          if (!(error instanceof ProtocolError)) throw error;
          engine.excludeFromOpenRound(id);
          engine.countRejection(error.code);
          return answer(ackError(error.code, error.message));
        }
        engine.submitSecAgg(id, step, message).then(answer, (error: unknown) => {
          console.error('secure aggregation handler failed:', error);
          engine.excludeFromOpenRound(id);
          answer(refuse(ErrorCode.BadPayload, 'the request could not be processed'));
        });
      });
    }
    socket.on('progress', (...args: unknown[]) => {
      const id = socket.data.participantId;
      try {
        const message = parseProgressMessage(args[0]);
        if (id !== undefined) engine.reportProgress(id, message);
      } catch (error) {
        if (error instanceof ProtocolError) engine.countRejection(error.code);
      }
    });
    socket.onAny((event: string, ...args: unknown[]) => {
      if ((CLIENT_EVENTS as readonly string[]).includes(event)) return;
      engine.countRejection(ErrorCode.UnknownEvent);
      const ack = args.at(-1);
      if (typeof ack === 'function') ack(ackError(ErrorCode.UnknownEvent, `unknown event "${String(event).slice(0, 64)}"`));
    });
    socket.on('disconnect', () => {
      const id = socket.data.participantId;
      if (id !== undefined && socketsByParticipant.get(id) === socket) {
        socketsByParticipant.delete(id);
        engine.leave(id);
      }
    });
  }

  /** A request refused by the server itself (the engine counts its own refusals). */
  function refuse<T>(code: ErrorCode, message: string): Ack<T> {
    engine.countRejection(code);
    return ackError(code, message);
  }

  /** Runs a request handler and answers through the ack; bad input becomes a coded error, never a crash. */
  function respond<T>(args: unknown[], handle: () => Ack<T>): void {
    const ack = args.at(-1);
    let result: Ack<T>;
    try {
      result = handle();
    } catch (error) {
      if (error instanceof ProtocolError) {
        engine.countRejection(error.code);
        result = ackError(error.code, error.message);
      } else {
        console.error('request handler failed:', error);
        result = refuse(ErrorCode.BadPayload, 'the request could not be processed');
      }
    }
    if (typeof ack === 'function') ack(result);
  }

  httpServer.on('request', (request: IncomingMessage, response: ServerResponse) => {
    void handleHttp(request, response).catch((error) => {
      console.error('http handler failed:', error);
      if (!response.headersSent) response.writeHead(500);
      response.end();
    });
  });

  const staticRoot = path.resolve(config.staticDir);
  async function handleHttp(request: IncomingMessage, response: ServerResponse): Promise<void> {
    if (request.url?.startsWith('/socket.io/')) return; // socket.io answers these
    if (!guardHttp(request, response, security)) return; // CORS preflight, admin routes without the admin token
    const requestUrl = new URL(request.url ?? '/', 'http://localhost');
    const { pathname } = requestUrl;
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (pathname === '/api/status') {
      const body = JSON.stringify(engine.dashboardStatus());
      response.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(body);
      return;
    }
    if (pathname === '/api/task') {
      response.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(task));
      return;
    }
    if (demoData && pathname === demoData.url) {
      response.writeHead(200, { 'content-type': demoData.contentType, 'content-length': demoData.bytes.byteLength, 'cache-control': 'no-cache' });
      response.end(request.method === 'HEAD' ? undefined : demoData.bytes);
      return;
    }
    if (await serveAdminDownload(request, response, requestUrl, reports)) return;
    if (await serveStatic(staticRoot, request, response)) return;
    const missingBuild = pathname === '/' || pathname.startsWith('/dashboard');
    response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
    response.end(missingBuild ? `The web app is not built: run "npm run build" (looked in ${staticRoot}).\n` : 'not found\n');
  }

  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(config.port, config.host, () => {
      httpServer.off('error', reject);
      resolve();
    });
  });
  const port = (httpServer.address() as AddressInfo).port;
  const url = publicUrl(security, port);
  // --manual-start: the operator starts the federation from the dashboard.
  if (!config.manualStart) engine.start();

  let closed = false;
  return {
    url,
    port,
    engine,
    task,
    backend,
    done: engine.done,
    finalReport,
    async close() {
      if (closed) return;
      closed = true;
      if (!engine.isDone) engine.abort('coordinator shut down');
      if (statusTimer) clearTimeout(statusTimer);
      closeSecurity();
      clock.clearAll();
      // Let the last broadcasts (federation:done) leave before the connections close.
      io.disconnectSockets();
      await new Promise((resolve) => setTimeout(resolve, 50));
      await new Promise<void>((resolve) => io.close(() => resolve()));
      await closeHttp(httpServer);
      await finalReport;
      evaluator.dispose();
      serializer.dispose();
      reports.dispose();
    },
  };
}

function closeHttp(server: HttpServer): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections?.();
    server.close(() => resolve());
  });
}


/**
 * The newest valid checkpoint of this run, if any. Unusable checkpoints are
 * reported and skipped; one of another task or model is refused outright,
 * since training it on would mix two runs.
 */
async function findResumePoint(
  checkpoints: CheckpointStore,
  task: TaskSummary,
  strategy: Strategy,
  lastStartedRound: number,
  log: (line: string) => void,
): Promise<ResumePoint | undefined> {
  const scan = await checkpoints.loadLatest();
  for (const bad of scan.rejected) console.error(`checkpoint ${bad.dir} is unusable and was skipped: ${bad.reason}`);
  const latest = scan.latest;
  if (!latest) {
    if (lastStartedRound > 0 && strategy.privacy) {
      // Models were released before, and what they spent is lost with the checkpoints: starting at ε = 0 would lie.
      throw new Error(
        `${checkpoints.runDir} ran ${lastStartedRound} rounds under differential privacy but holds no usable checkpoint, ` +
          'so the privacy already spent is unknown: restore a checkpoint, or use another --data-dir for a new run',
      );
    }
    if (scan.rejected.length > 0) console.error('no usable checkpoint: starting from the initial model');
    return undefined;
  }
  const { state } = latest;
  if (state.task !== task.name || state.paramCount !== task.paramCount) {
    throw new Error(
      `${checkpoints.runDir} holds a run of task ${state.task} with ${state.paramCount} parameters, not ${task.name} with ${task.paramCount}: ` +
        'use another --data-dir, or remove that folder to start over',
    );
  }
  const weights = weightsFromFiles(latest.model, task.weightShapes as WeightShape[]);
  if (state.strategy && strategy.loadState) {
    if (state.strategy.name !== strategy.name) {
      throw new Error(`${checkpoints.runDir} was run with strategy "${state.strategy.name}", now "${strategy.name}": use another --data-dir to change it`);
    }
    strategy.loadState(state.strategy.state);
  }
  const unrecorded = lastStartedRound - state.round;
  if (unrecorded > 0 && strategy.chargeUnrecordedRounds) {
    // Rounds cut short by the crash may have released updates (distributed noise) or models: count them as spent.
    strategy.chargeUnrecordedRounds(unrecorded);
    log(`charged ${unrecorded} round(s) started after the last checkpoint to the privacy accountant`);
  }
  log(`resuming ${task.name} from the checkpoint of round ${state.round} (model version ${state.modelVersion}, ${state.history.length} rounds of history)`);
  return { round: state.round, modelVersion: state.modelVersion, weights, history: state.history };
}

/**
 * best/ must hold the best round of the history. The one gap: a crash after
 * a new best round's checkpoint and before best/ was written; that round is
 * then the newest checkpoint, so its model is at hand to write it again.
 */
async function repairBestModel(store: BestModelStore, resume: ResumePoint | undefined, serializer: ModelSerializer, log: (line: string) => void): Promise<void> {
  const best = bestRound(resume?.history ?? []);
  if (!resume || !best?.metrics || !best.modelHash) return;
  let stored: Awaited<ReturnType<BestModelStore['load']>>;
  try {
    stored = await store.load();
  } catch (error) {
    console.error(`best model: ${(error as Error).message}`);
  }
  if (stored?.info.modelHash === best.modelHash) return;
  if (resume.round === best.round && weightsHash(resume.weights) === best.modelHash) {
    await store.save({ version: 1, round: best.round, modelVersion: best.modelVersion, modelHash: best.modelHash, metrics: best.metrics, savedAt: Date.now() }, await serializer.toFiles(resume.weights));
    log(`best model: rewrote ${store.dir} from the checkpoint of round ${best.round}`);
    return;
  }
  console.error(`best model: ${store.dir} does not hold round ${best.round}, the best of the history, and no checkpoint has its model`);
}

/**
 * Client-level ε lives in the checkpoints of --data-dir: a run that finds none
 * would start at ε = 0 whatever earlier runs of the task spent elsewhere. It
 * starts only when the operator acknowledges a fresh budget.
 */
function checkFreshClientBudget(strategy: Strategy, runDir: string, acknowledged: boolean): void {
  if (strategy.privacy?.().level !== 'client' || acknowledged) return;
  throw new Error(
    `${runDir} holds no earlier client-level privacy spend for this task, so ε would start at 0. ` +
      'If no earlier run of this task used these participants, pass --fresh-privacy-budget; otherwise point --data-dir at the earlier run',
  );
}

/** Per-participant rejoin secrets, kept as digests and compared in constant time (TokenSet). */
class RejoinSecrets {
  private readonly secrets = new Map<string, TokenSet>();

  issue(participantId: string): string {
    const secret = randomBytes(32).toString('hex');
    this.secrets.set(participantId, new TokenSet([secret]));
    return secret;
  }

  matches(participantId: string, secret: string | undefined): boolean {
    return this.secrets.get(participantId)?.matches(secret) ?? false;
  }

  /** The engine forgot this participant: its id will not be given back. */
  forget(participantId: string): void {
    this.secrets.delete(participantId);
  }
}
