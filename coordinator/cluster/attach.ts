import type { Server as NetServer } from 'node:net';
import type { Server } from 'socket.io';
import type { FederationStatus } from '../../core/protocol/status.ts';
import type { RoundEngine } from '../rounds/round-engine.ts';
import { ClusterNode } from './cluster-node.ts';
import { TrafficCounter } from './traffic.ts';

export interface ClusterAttachment {
  readonly node: ClusterNode;
  /** The engine's dashboard status with the `cluster` field. */
  dashboardStatus(): FederationStatus;
  /** Once the server listens: joins the registry under `address` and runs for the lease. */
  start(address: string): void;
  close(): Promise<void>;
}

export interface ClusterWiring {
  readonly redisUrl: string;
  readonly federation: string;
  readonly io: Server;
  readonly httpServer: NetServer;
  readonly engine: () => RoundEngine;
  /** Participants joined on this node. */
  readonly participants: () => number;
  /** `--manual-start`: the leader waits for the operator instead of starting rounds itself. */
  readonly manualStart: boolean;
  readonly log: (line: string) => void;
  readonly statusChanged: () => void;
}

/**
 * Makes this coordinator one node of a cluster (`--redis`): socket.io's
 * Redis adapter, so broadcasts reach participants on every node; the lease,
 * so only the leader drives rounds (a node that stops leading pauses its
 * engine); the registry and the `cluster` status field.
 */
export async function attachCluster(wiring: ClusterWiring): Promise<ClusterAttachment> {
  const node = await ClusterNode.connect({
    redisUrl: wiring.redisUrl,
    federation: wiring.federation,
    log: wiring.log,
    statusChanged: wiring.statusChanged,
    onRoleChange: (role) => {
      const engine = wiring.engine();
      if (role.kind === 'leader') {
        if (engine.control === 'awaiting-start') {
          if (!wiring.manualStart) engine.start();
        } else engine.resume();
      } else if (!engine.isDone) engine.pause();
    },
  });
  wiring.io.adapter(node.adapter());
  const traffic = new TrafficCounter(wiring.httpServer);
  return {
    node,
    dashboardStatus: () => ({ ...wiring.engine().dashboardStatus(), cluster: node.status() }),
    start: (address) =>
      node.start(() => ({ address, participants: wiring.participants(), bytesIn: traffic.bytesIn, bytesOut: traffic.bytesOut })),
    close: () => node.close(),
  };
}
