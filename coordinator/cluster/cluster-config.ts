import type { NoisePlacement } from '../../core/aggregation/dp-fedavg.ts';
import type { SecureAggregationSettings } from '../../core/protocol/status.ts';
import type { StrategyConfig } from '../options/strategy.ts';
import { ruleTraits } from '../strategies.ts';

/**
 * Why `--redis` cannot run with the other flags, or undefined when it can.
 * Each node sums its own participants' updates into a partial aggregate
 * (core/aggregation/partial.ts) for the leader to combine: exact for a rule
 * whose input is a sum, silently wrong for one that needs each update.
 * Under secure aggregation each node's cohort is a secure sum of its own
 * (docs/cluster.md). What that design cannot do is refused at start.
 */
export function clusterConfigProblem(
  redisUrl: string,
  other: {
    readonly strategy: StrategyConfig;
    readonly secureAggregation: SecureAggregationSettings | undefined;
    /** Where --client-dp adds its noise, when it is set. */
    readonly clientDpPlacement: NoisePlacement | undefined;
    readonly checkpointKeyFile: string | undefined;
  },
): string | undefined {
  if (!/^rediss?:\/\/[^\s]+$/.test(redisUrl))
    return `--redis must be a Redis URL such as redis://127.0.0.1:6379 (rediss:// for TLS), got "${redisUrl}"`;
  const { strategy } = other;
  if (ruleTraits(strategy).input === 'individual')
    return (
      `--strategy ${strategy.name} cannot run on a cluster (--redis): each node combines its own participants' updates into a weighted sum ` +
      `and only those sums reach the leader, while ${strategy.name} needs every individual update; ` +
      'use --strategy fedavg, fedprox, fedadam or fedyogi on a cluster, or run one coordinator without --redis (docs/cluster.md)'
    );
  if (other.secureAggregation !== undefined && other.clientDpPlacement === 'distributed')
    return (
      '--client-dp distributed cannot run with --secure-aggregation on a cluster (--redis): each participant adds a share of the noise ' +
      "sized so that the round's whole sum carries it, but on a cluster each node's cohort is a secure sum of its own that the " +
      'coordinator sees, and a cohort carries only its share of that noise; run one coordinator without --redis for distributed DP (docs/cluster.md)'
    );
  if (other.checkpointKeyFile !== undefined)
    return (
      '--checkpoint-key-file cannot run on a cluster (--redis): the cluster keeps the model and the round history in Redis, ' +
      'where they would not be encrypted at rest; run one coordinator without --redis for encrypted checkpoints (docs/cluster.md)'
    );
  return undefined;
}
