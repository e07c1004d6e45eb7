import cluster from 'node:cluster';
import { dpFedAvgWarnings } from '../core/aggregation/dp-fedavg.ts';
import { announceWorkerReady, serveFromPrimary, sharedWorkerPort, workerDataDir } from './cluster/workers-node.ts';
import { WorkersPrimary } from './cluster/workers-primary.ts';
import { ConfigError, parseConfig, USAGE, type CoordinatorConfig } from './config.ts';
import type { DemoParticipants } from './demo-participants.ts';
import { describeDistributedNoise } from './distributed-noise-config.ts';
import { startCoordinator } from './server.ts';
import { describeSecurity } from './security/config.ts';

/** `npm start`: the coordinator, and optionally headless demo participants. */
async function main(): Promise<void> {
  let config: ReturnType<typeof parseConfig>;
  try {
    config = parseConfig(process.argv.slice(2), process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`error: ${error.message}\n\n${USAGE}`);
      process.exit(2);
    }
    throw error;
  }
  if (config === 'help') {
    console.log(USAGE);
    return;
  }
  if (config.workers !== undefined && cluster.isPrimary) return runWorkersPrimary(config, config.workers);
  const workerPort = sharedWorkerPort();
  if (workerPort !== undefined) config = { ...config, dataDir: workerDataDir(config.dataDir) };
  const coordinator = await startCoordinator(config, {
    // --workers: this process is one of the nodes forked by the primary, which holds the port.
    serveConnections: workerPort === undefined ? undefined : (io) => serveFromPrimary(io, workerPort),
    // Fail-stop: a node whose state went stale while another led exits, and its supervisor restarts it fresh (docs/cluster.md).
    onClusterStale: (reason) => {
      console.error(`cluster: ${reason}; exiting (75) so that it restarts as a fresh node`);
      void shutdown(75);
    },
  });
  const s = config.settings;
  console.log(
    `Coordinator: task ${coordinator.task.name}, model ${coordinator.task.model.architecture} (${coordinator.task.paramCount.toLocaleString('en')} parameters), tfjs ${coordinator.backend} backend`,
  );
  const security = config.security;
  // Placeholders only: tokens are never printed.
  console.log(
    `  participants: ${coordinator.url}/?shard=1/3${security?.joinTokens ? '&token=JOIN_TOKEN' : ''}   (open on each device; ?shard=K/N picks the demo shard)`,
  );
  console.log(`  dashboard:    ${coordinator.url}/dashboard${security?.adminTokens ? '?admin-token=ADMIN_TOKEN' : ''}`);
  if (security) {
    const { warnings, summary } = describeSecurity(security);
    console.log(summary);
    for (const line of warnings) console.warn(line);
  }
  for (const line of config.clientDp ? dpFedAvgWarnings(config.clientDp) : []) console.warn(`  warning: ${line}`);
  const distributedNoise = describeDistributedNoise(config);
  if (distributedNoise !== undefined) console.log(`  ${distributedNoise}`);
  console.log(`  status API:   ${coordinator.url}/api/status`);
  console.log(
    `  rounds: ${s.rounds}, ${s.minClients}+ participants to start, ${s.clientsPerRound} per round, ${s.roundTimeoutMs / 1000} s timeout; runs saved in ${config.dataDir}`,
  );

  let demo: DemoParticipants | undefined;
  let stopping = false;
  const shutdown = async (code: number) => {
    if (stopping) return;
    stopping = true;
    await demo?.close().catch(() => {});
    await coordinator.close();
    process.exit(code);
  };
  process.on('SIGINT', () => void shutdown(130));
  process.on('SIGTERM', () => void shutdown(143));
  // A worker needs no handler for its primary's death: node:cluster exits a worker whose primary disconnects.
  if (workerPort !== undefined) announceWorkerReady(coordinator.nodeId);

  if (config.demoParticipants > 0) {
    try {
      // Imported here: Playwright costs every start a few hundred ms, and only demo participants need it.
      const { launchDemoParticipants } = await import('./demo-participants.ts');
      demo = await launchDemoParticipants(coordinator.url, config.demoParticipants, (line) => console.log(line), {
        token: security?.demoToken,
        ignoreHttpsErrors: security?.tls !== undefined,
      });
      console.log(`  launched ${config.demoParticipants} headless Chromium participants (${demo.browserPath})`);
    } catch (error) {
      console.error(`could not launch demo participants: ${(error as Error).message}`);
    }
  }
  const final = await coordinator.done;
  const last = final.history.at(-1)?.metrics;
  console.log(
    `Finished after round ${final.round}${last ? `: test accuracy ${(last.accuracy * 100).toFixed(2)}%` : ''}. Model saved in ${config.dataDir}/${coordinator.task.name}/. Ctrl-C to exit.`,
  );
  await demo?.close().catch(() => {});
  demo = undefined;
}

/** `--workers N`: this process holds the port and forks N cluster nodes (coordinator/cluster/workers-primary.ts). */
async function runWorkersPrimary(config: CoordinatorConfig, count: number): Promise<void> {
  const primary = await WorkersPrimary.start({ count, port: config.port, host: config.host, log: (line) => console.log(line) });
  const stop = (code: number, signal: NodeJS.Signals) => void primary.close(signal).then(() => process.exit(code));
  process.on('SIGINT', () => stop(130, 'SIGINT'));
  process.on('SIGTERM', () => stop(143, 'SIGTERM'));
  console.log(`Workers: ${count} cluster nodes on port ${primary.port} (primary pid ${process.pid}), one federation through --redis`);
  await primary.ready();
  console.log(`  workers:      all ${count} serve on http://localhost:${primary.port} (dashboard: /dashboard, status API: /api/status)`);
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
