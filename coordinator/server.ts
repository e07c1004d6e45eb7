import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { Server as HttpServer } from 'node:http';
import path from 'node:path';
import { Server, type Namespace } from 'socket.io';
import type { Strategy } from '../core/aggregation/strategy.ts';
import { FineTuneStrategy } from '../core/model/fine-tune-strategy.ts';
import type { TaskSummary } from '../core/protocol/messages.ts';
import type { AdminClientToServerEvents, AdminServerToClientEvents, FederationStatus } from '../core/protocol/status.ts';
import { SeededRandom } from '../core/random/prng.ts';
import { FRAME_HEADER_BYTES } from '../core/wire/frame.ts';
import { ClusterRuntime } from './cluster/attach.ts';
import type { CoordinatorConfig } from './config.ts';
import { withSkellam } from './distributed-noise-config.ts';
import { secAggSettingsForModel } from './secagg-words-config.ts';
import { OpenConnections } from './http/connections.ts';
import { httpHandler } from './http/routes.ts';
import { listen } from './http/listen.ts';
import { CoordinatorMetrics } from './metrics/coordinator-metrics.ts';
import { attachAdminSocket } from './report/admin-api.ts';
import { RunReports } from './report/reports.ts';
import type { RunReport } from './report/run-report.ts';
import { SystemClock } from './rounds/clock.ts';
import { RoundEngine, type SecAggObserver } from './rounds/round-engine.ts';
import { defaultSecurity } from './security/config.ts';
import { createAdmission, createTransportServer, installSecurity, publicUrl, socketServerOptions } from './security/guard.ts';
import { RejoinSecrets } from './security/rejoin-secrets.ts';
import { eventTolerantParser } from './socket/event-packets.ts';
import { participantProtocol, type ParticipantSocket } from './socket/participant-events.ts';
import { socketTransport, type ParticipantServer } from './socket/round-transport.ts';
import { StatusPush } from './status/status-push.ts';
import { BestModelStore } from './storage/best-model.ts';
import { CheckpointStore } from './storage/checkpoints.ts';
import { AtRestKey } from './storage/encryption.ts';
import { checkFreshClientBudget, findResumePoint, repairBestModel } from './storage/resume.ts';
import { saveCompletedRounds, writeFinalReport } from './storage/round-files.ts';
import { buildStrategy } from './strategies.ts';
import { taskSummary } from './task/task-summary.ts';
import { ModelThread, type StartedModelThread } from './model-thread/model-thread.ts';

/**
 * Slack above the largest message for the JSON parts of a message. The
 * largest message is a full frame as base64 text: how it travels over
 * long-polling (binary attachments are base64 there), and what a client that
 * sends its update as text instead of binary sends, which must get
 * BAD_PAYLOAD rather than a closed connection.
 */
const MESSAGE_SLACK_BYTES = 64 * 1024;

/** socket.io's maxHttpBufferSize for a model of `paramCount` values: a full frame in base64, plus slack. */
export function messageSizeLimit(paramCount: number): number {
  return 4 * Math.ceil((FRAME_HEADER_BYTES + paramCount * 4) / 3) + MESSAGE_SLACK_BYTES;
}

export interface Coordinator {
  readonly url: string;
  readonly port: number;
  readonly engine: RoundEngine;
  readonly task: TaskSummary;
  readonly backend: string;
  /** This node's /metrics (the cluster layer sets the leader flag and the Redis round trip on it). */
  readonly metrics: CoordinatorMetrics;
  /** On a cluster (--redis): this node's id. */
  readonly nodeId?: string;
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
  /** On a cluster: this node led, lost the lease, and another led meanwhile (cluster/attach.ts); default: stay paused. */
  readonly onClusterStale?: (reason: string) => void;
  /** `--workers`: the primary holds the port and hands this process its connections (cluster/workers-node.ts); returns the shared port. Default: listen on config.port. */
  readonly serveConnections?: (io: Server) => number;
}

/**
 * Starts the coordinator: HTTP (pages, status API, demo data) and socket.io
 * on one port, the round engine, the test-set evaluator and the model files.
 * This is the wiring; each part lives in a module of its own.
 */
export async function startCoordinator(config: CoordinatorConfig, hooks: CoordinatorHooks = {}): Promise<Coordinator> {
  // The task file's (or the embedded MNIST demo's) model, data and audit sets, loaded in the model thread, which
  // evaluates and serializes models from then on (coordinator/model-thread/).
  const models = await ModelThread.start({ task: config.task, architecture: config.architecture, seed: config.seed });
  try {
    return await wireCoordinator(config, hooks, models);
  } catch (error) {
    await models.thread.close();
    throw error;
  }
}

async function wireCoordinator(config: CoordinatorConfig, hooks: CoordinatorHooks, models: StartedModelThread): Promise<Coordinator> {
  const log = hooks.log ?? (config.quiet ? () => {} : (line: string) => console.log(line));
  const logError = hooks.log ?? ((line: string) => console.error(line));
  const { thread: modelThread, task: loaded, backend } = models;
  for (const note of loaded.notes) log(note);
  const spec = loaded.spec;
  const task: TaskSummary = taskSummary(loaded, config.settings.fit.sampleDp);
  const runDir = path.resolve(config.dataDir, task.name);
  const atRestKey = config.checkpointKeyFile ? await AtRestKey.fromFile(config.checkpointKeyFile) : undefined;
  const checkpoints = new CheckpointStore(
    runDir,
    atRestKey,
    // Fault injection, used by the crash test only.
    process.env.FL_FAULT_KILL_IN_CHECKPOINT === '1',
  );
  // Fine-tuning: the strategy (and Skellam's dimension) sees only the trainable values (core/model/fine-tune-strategy.ts).
  const fineTune = loaded.fineTune;
  const updateLength = fineTune?.layout.trainableCount ?? task.paramCount;
  // Compressed secure sums size their words for the update (coordinator/secagg-words-config.ts).
  const modelConfig = { ...config, settings: secAggSettingsForModel(config, updateLength) };
  const baseStrategy = hooks.strategy ?? buildStrategy(withSkellam(modelConfig, updateLength));
  const strategy: Strategy = fineTune ? new FineTuneStrategy(baseStrategy, fineTune.layout) : baseStrategy;
  // --redis: one node of a cluster (coordinator/cluster/); the federation in Redis, when it holds one, comes before the disk's.
  const cluster =
    config.redis === undefined
      ? undefined
      : await ClusterRuntime.connect({
          redisUrl: config.redis,
          leaseTtlMs: config.leaderLeaseMs,
          task,
          strategy,
          log,
          async: config.settings.mode === 'async' ? config.settings.async : undefined,
        });
  const clusterResume = await cluster?.resumePoint();
  const lastStartedRound = clusterResume?.lastStartedRound ?? (await checkpoints.lastStartedRound());
  const resume = clusterResume ? clusterResume.resume : await findResumePoint(checkpoints, task, strategy, lastStartedRound, log);
  const bestModels = new BestModelStore(runDir, atRestKey);
  await repairBestModel(bestModels, resume, modelThread, log);
  if (!resume && !clusterResume) checkFreshClientBudget(strategy, runDir, config.freshPrivacyBudget === true);
  const clock = new SystemClock();
  const runFiles = {
    runDir,
    task,
    strategy,
    serializer: modelThread,
    checkpoints,
    bestModels,
    encrypted: config.checkpointKeyFile !== undefined,
  };

  const security = config.security ?? defaultSecurity();
  const httpServer = createTransportServer(security);
  const connections = new OpenConnections(httpServer);
  const admission = createAdmission(security);
  const io: ParticipantServer = new Server(httpServer, {
    // CORS, the Origin check and the connection caps (coordinator/security/guard.ts, admission.ts).
    ...socketServerOptions(security, admission),
    maxHttpBufferSize: messageSizeLimit(task.paramCount),
    // Malformed event packets get UNKNOWN_EVENT instead of a closed connection (socket/event-packets.ts).
    parser: eventTolerantParser,
    serveClient: false,
  });
  // The dashboard's namespace has its own event map; socket.io types namespaces by the parent's.
  const admin = io.of('/admin') as unknown as Namespace<AdminClientToServerEvents, AdminServerToClientEvents>;
  // Tokens, the connection cap and the message rate limit, before any handler below.
  const closeSecurity = installSecurity(
    io,
    admin,
    security,
    { countRejection: (code) => engine.countRejection(code), log },
    admission,
    httpServer,
  );
  const socketsByParticipant = new Map<string, ParticipantSocket>();
  const rejoinSecrets = new RejoinSecrets();
  // This process's dashboards only, and only when one is connected: on a cluster a namespace-wide emit would go through
  // the Redis adapter, publishing the whole status (every participant) to every node at each push, and each node's
  // status already holds the federation's. With no dashboard there is nothing to build it for.
  const statusPush = new StatusPush(() => {
    if (admin.sockets.size > 0) admin.local.emit('status', dashboardStatus());
  });
  // On a cluster the status carries `cluster`.
  const dashboardStatus = (): FederationStatus => cluster?.dashboardStatus(engine) ?? engine.dashboardStatus();
  const saveRound = saveCompletedRounds(runFiles);
  let closed = false;

  const engine: RoundEngine = new RoundEngine({
    settings: modelConfig.settings,
    strategy,
    resume,
    lastStartedRound,
    clock,
    // A cluster node that shuts down ends only its own part: federation:done must not reach the other nodes' participants.
    transport: socketTransport(
      io,
      socketsByParticipant,
      strategy,
      log,
      () => statusPush.changed(),
      () => cluster !== undefined && closed,
    ),
    evaluator: modelThread,
    initialWeights: loaded.initialWeights,
    random: new SeededRandom(config.seed),
    task: { name: task.name, architecture: spec.architecture, paramCount: task.paramCount },
    newId: () => randomUUID(),
    secaggObserver: hooks.secaggObserver,
    logError,
    participantGraceMs: security.participantGraceMs,
    onParticipantForgotten: (id) => rejoinSecrets.forget(id),
    // On a cluster, Redis first (fenced by the leader's term): a round a deposed leader cannot store is never shown.
    onRoundStarting: async (round) => {
      await cluster?.roundStarting(round, engine.globalModel);
      await checkpoints.markRoundStarted(round);
    },
    onRoundCompleted: async (record, model, history) => {
      await cluster?.roundCompleted(record, model);
      await saveRound(record, model, history);
    },
    fineTune: fineTune && { layout: fineTune.layout, frozenHash: fineTune.summary.frozenHash },
    // On a cluster the leader selects and sums the other nodes' participants too (docs/cluster.md).
    remoteRounds: cluster?.remoteRounds,
  });

  // Model downloads, the run report with its membership audit, the history as CSV.
  const reports = new RunReports({
    engine,
    bestModel: () => bestModels.load(),
    task,
    modelFiles: modelThread,
    clientDp: config.clientDp,
    audit: loaded.auditable
      ? {
          auditor: modelThread,
          membersSource: `a seeded sample of the ${task.name} training examples served to participants (a member only if its shard took part)`,
          nonMembersSource: "the coordinator's held-out test set",
        }
      : undefined,
  });
  const finalReport = writeFinalReport(engine, reports, runFiles, logError);

  const metrics = new CoordinatorMetrics(engine);
  metrics.countTransportBytes(httpServer);
  if (cluster) metrics.followCluster(cluster.node);
  const participantContext = {
    // On a cluster, participants selected in the leader's round are collected by this node (coordinator/cluster/member-rounds.ts).
    engine: cluster
      ? cluster.participantEngine(engine, io, (id, message) => {
          const socket = socketsByParticipant.get(id);
          socket?.emit('round:start', message);
          return socket !== undefined;
        })
      : engine,
    task,
    socketsByParticipant,
    rejoinSecrets,
    secureAggregation: config.settings.secureAggregation !== undefined,
    logError: (line: string) => console.error(line),
    frozenWeights: fineTune && { hash: fineTune.summary.frozenHash, frame: fineTune.frozenFrame },
    updateAnswered: metrics.updateAnswered.bind(metrics),
    updateAccepted: metrics.updateAccepted.bind(metrics),
  };
  io.on('connection', participantProtocol(participantContext));
  admin.on('connection', (socket) => {
    socket.emit('status', dashboardStatus());
    attachAdminSocket(socket, engine, log);
  });
  httpServer.on(
    'request',
    httpHandler({
      dashboardStatus,
      clusterLeader: cluster && (() => cluster.leaderCheck()),
      task,
      demoData: loaded.demoData,
      reports,
      security,
      metrics,
      staticDir: config.staticDir,
      logError: (line) => console.error(line),
    }),
  );
  if (!existsSync(path.resolve(config.staticDir, 'index.html')))
    log(`the web app is not built (looked in ${path.resolve(config.staticDir)}): run "npm run build"`);

  const port = hooks.serveConnections
    ? hooks.serveConnections(io as unknown as Server)
    : await listen(httpServer, config.port, config.host);
  const url = publicUrl(security, port);
  // --manual-start: the operator starts the federation from the dashboard. On a cluster only the leader starts it (attach.ts).
  if (cluster)
    cluster.start(
      {
        io,
        httpServer,
        engine,
        participants: () => socketsByParticipant.size,
        manualStart: config.manualStart === true,
        statusChanged: () => statusPush.changed(),
        onStale: hooks.onClusterStale,
      },
      url,
    );
  else if (!config.manualStart) engine.start();

  return {
    url,
    port,
    engine,
    task,
    backend,
    metrics,
    nodeId: cluster?.node.nodeId,
    done: engine.done,
    finalReport,
    async close() {
      if (closed) return;
      closed = true;
      if (!engine.isDone) engine.abort('coordinator shut down');
      statusPush.stop();
      closeSecurity();
      clock.clearAll();
      // Let the last broadcasts (federation:done) leave before the connections close.
      // This process's sockets only: through the cluster's adapter the whole federation's would go.
      io.local.disconnectSockets();
      await new Promise((resolve) => setTimeout(resolve, 50));
      // Then cut whatever is still open at once: a peer that holds its connection must not hold the shutdown.
      connections.destroyAll();
      await new Promise<void>((resolve) => io.close(() => resolve()));
      // After socket.io: its adapter publishes through the cluster's Redis clients until it closes.
      await cluster?.close();
      await closeHttp(httpServer);
      await finalReport;
      await modelThread.close();
    },
  };
}

function closeHttp(server: HttpServer): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections?.();
    server.close(() => resolve());
  });
}
