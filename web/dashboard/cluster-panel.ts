import type { ClusterStatus } from '../../core/protocol/status.ts';

/**
 * The cluster panel of the dashboard (`--redis`): which node this dashboard
 * talks to, which one leads, every node with its participants and traffic,
 * and a plain banner while the federation is paused because Redis is
 * unreachable. Hidden on a single coordinator.
 */
export function renderCluster(cluster: ClusterStatus | undefined): void {
  const section = document.getElementById('cluster-section')!;
  const banner = document.getElementById('cluster-paused')!;
  section.hidden = cluster === undefined;
  banner.hidden = cluster?.paused === undefined;
  banner.textContent = cluster?.paused === undefined ? '' : `Cluster: ${cluster.paused}.`;
  if (!cluster) return;
  document.getElementById('cluster-summary')!.textContent =
    `this node ${cluster.self}; leader ${cluster.leader ?? 'none (election under way or Redis unreachable)'}` +
    `${cluster.term === undefined ? '' : `, term ${cluster.term}`}; Redis ${cluster.redis}`;
  const body = (document.getElementById('cluster-nodes') as HTMLTableElement).tBodies[0]!;
  body.replaceChildren(
    ...cluster.nodes.map((node) => {
      const row = document.createElement('tr');
      const role = node.id === cluster.leader ? 'leader' : 'follower';
      const cells = [
        `${node.id}${node.id === cluster.self ? ' (this node)' : ''}`,
        role,
        node.address,
        String(node.participants),
        `${(node.lastSeenMs / 1000).toFixed(1)} s ago`,
        megabytes(node.bytesIn),
        megabytes(node.bytesOut),
      ];
      for (const text of cells) {
        const cell = document.createElement('td');
        cell.textContent = text;
        row.append(cell);
      }
      row.dataset.node = node.id;
      return row;
    }),
  );
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}
