import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { startCoordinator } from '../../coordinator/server.ts';

/** The real coordinator in its own process, so the benchmark can read its peak RSS. Args are CLI flags. */
const config = parseConfig(['--port', '0', '--host', '127.0.0.1', '--quiet', ...process.argv.slice(2)]) as CoordinatorConfig;
const coordinator = await startCoordinator(config);
console.log(`listening ${coordinator.url.replace('localhost', '127.0.0.1')}`);

// The benchmark stops servers with SIGTERM; exiting through process.exit writes a --cpu-prof profile.
process.on('SIGTERM', () => process.exit(0));
