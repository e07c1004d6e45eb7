import type { DpFedAvgOptions } from '../core/aggregation/dp-fedavg.ts';
import type { ArchitectureName } from '../core/protocol/messages.ts';
import type { RoundSettings } from '../core/protocol/status.ts';
import type { DistributedNoiseRequest } from './options/privacy.ts';
import type { PoisoningConfig, StrategyConfig } from './options/strategy.ts';
import type { SecurityConfig } from './security/config.ts';
import type { TaskFile } from './task/task-file.ts';

/**
 * The coordinator's checked configuration, as config.ts parses it from the
 * flags and the task file. A file of its own, so the modules that read it
 * (strategies.ts, distributed-noise-config.ts, server.ts) need not import the
 * parser, which imports them.
 */
export interface CoordinatorConfig {
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly architecture: ArchitectureName;
  readonly settings: RoundSettings;
  readonly seed: number;
  readonly demoParticipants: number;
  /** Folder of the built web app (vite build output). */
  readonly staticDir: string;
  readonly quiet: boolean;
  /** `--manual-start`: no round runs until the operator starts the federation from the dashboard. */
  readonly manualStart?: boolean;
  /** Encrypts checkpoints with AES-256-GCM under the key in this file. */
  readonly checkpointKeyFile?: string;
  /** Client-level differential privacy (DP-FedAvg), when asked for. */
  readonly clientDp?: DpFedAvgOptions;
  /** `--distributed-noise skellam`: distributed DP noise as Skellam integers in the secure sum (coordinator/distributed-noise-config.ts). */
  readonly distributedNoise?: DistributedNoiseRequest;
  /** `--fresh-privacy-budget`: the operator acknowledges that client-level DP starts at ε = 0 where no earlier spend is on disk. */
  readonly freshPrivacyBudget?: boolean;
  /** The aggregation rule and its parameters (coordinator/options/strategy.ts); absent: FedAvg (DP-FedAvg with clientDp). */
  readonly strategy?: StrategyConfig;
  /** Tokens, TLS, origins and limits (coordinator/security/config.ts); absent: open, plain HTTP, default limits. */
  readonly security?: SecurityConfig;
  /** The task file (--task), checked; absent: the embedded MNIST demo. Its settings are already in the fields above. */
  readonly task?: TaskFile;
  /** `--redis URL`: this process is one node of a cluster sharing the federation through Redis (docs/cluster.md). */
  readonly redis?: string;
  /** `--workers N` (with redis): N nodes of the cluster forked on this machine, sharing the port (coordinator/cluster/workers-*.ts). */
  readonly workers?: number;
  /** `--leader-lease-ms`, with `redis`: the leader's lease (coordinator/cluster/lease.ts). */
  readonly leaderLeaseMs?: number;
  /** Defences against poisoning that need each update on the coordinator (docs/poisoning.md); absent: the defaults. */
  readonly poisoning?: PoisoningConfig;
}
