import { expect, test, type Page } from '@playwright/test';
import type { FederationStatus } from '../core/protocol/status.ts';
import { TestRedis } from '../test/support/redis.ts';
import { startCoordinatorProcess, type CoordinatorProcess } from './helpers/coordinator-process.ts';
import { closeTabs, openTab } from './helpers/tabs.ts';

/**
 * Two coordinator processes on one Redis (`--redis`). Two tabs train through
 * the node that leads (where a load balancer's health check,
 * /api/cluster/leader, sends participants); the dashboard of the OTHER node
 * shows the cluster (both nodes, the leader) and the leader's rounds as they
 * complete; when Redis stops, it says plainly that the federation is paused
 * because Redis is unreachable. Both tabs join the leader here (tabs spread
 * over nodes: cluster-federation.e2e.ts).
 */
test('the dashboard of a follower node shows the whole cluster and the rounds the leader runs, and says when Redis is unreachable', async ({
  browser,
}) => {
  const redis = await TestRedis.start();
  const nodes: CoordinatorProcess[] = [];
  const pages: Page[] = [];
  try {
    const flags = [
      '--redis',
      redis.url,
      '--min-clients',
      '2',
      '--clients-per-round',
      '2',
      '--rounds',
      '20',
      '--round-timeout',
      '60',
      '--quiet',
    ];
    nodes.push(await startCoordinatorProcess(flags), await startCoordinatorProcess(flags));
    const leaderStatus = async (): Promise<FederationStatus | undefined> => {
      for (const node of nodes) {
        const s = await node.status();
        if (s.cluster?.leader !== undefined && s.cluster.leader === s.cluster.self) return s;
      }
      return undefined;
    };
    await expect.poll(async () => (await leaderStatus()) !== undefined, { timeout: 30_000 }).toBe(true);
    const leaderId = (await leaderStatus())!.cluster!.self;
    const leaderIndex = (await nodes[0]!.status()).cluster!.self === leaderId ? 0 : 1;
    const leader = nodes[leaderIndex]!;
    const follower = nodes[1 - leaderIndex]!;
    expect((await fetch(`${leader.url}/api/cluster/leader`)).status).toBe(200);
    expect((await fetch(`${follower.url}/api/cluster/leader`)).status).toBe(503);

    for (const shard of ['1/2', '2/2']) await openTab(browser, `${leader.url}/?shard=${shard}&backend=wasm`, { into: pages });
    const dashboard = await openTab(browser, `${follower.url}/dashboard`, { into: pages });
    await expect(dashboard.locator('#connection')).toHaveAttribute('data-state', 'live', { timeout: 30_000 });
    await expect(dashboard.locator('#cluster-section')).toBeVisible();
    await expect(dashboard.locator('#cluster-nodes tbody tr')).toHaveCount(2, { timeout: 15_000 });
    await expect(dashboard.locator(`#cluster-nodes tbody tr[data-node="${leaderId}"] td`).nth(1)).toHaveText('leader');
    await expect(dashboard.locator('#cluster-summary')).toContainText(`leader ${leaderId}`);
    // The leader's participants are counted on the leader's row.
    await expect(dashboard.locator(`#cluster-nodes tbody tr[data-node="${leaderId}"] td`).nth(3)).toHaveText('2', { timeout: 30_000 });

    // Rounds the leader completes show on the follower's dashboard (it follows the federation in Redis).
    await expect
      .poll(async () => (await leader.status()).history.length, { timeout: 180_000, intervals: [1000] })
      .toBeGreaterThanOrEqual(2);
    const completed = (await leader.status()).history.length;
    await expect.poll(async () => (await follower.status()).history.length, { timeout: 15_000 }).toBeGreaterThanOrEqual(completed);
    await expect(dashboard.locator('#accuracy')).not.toHaveText('–', { timeout: 15_000 });
    await expect(dashboard.locator('#cluster-paused')).toBeHidden();

    await redis.stop();
    await expect(dashboard.locator('#cluster-paused')).toBeVisible({ timeout: 15_000 });
    await expect(dashboard.locator('#cluster-paused')).toContainText('the federation is paused: Redis is unreachable');
    await redis.restart();
    await expect(dashboard.locator('#cluster-paused')).toBeHidden({ timeout: 15_000 });
  } finally {
    await closeTabs(pages);
    for (const node of nodes) await node.stop();
    await redis.cleanup();
  }
});
