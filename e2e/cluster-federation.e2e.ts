import { expect, test, type Page } from '@playwright/test';
import type { FederationStatus, RoundRecord } from '../core/protocol/status.ts';
import { TestRedis } from '../test/support/redis.ts';
import { startCoordinatorProcess, type CoordinatorProcess } from './helpers/coordinator-process.ts';
import { closeTabs, openTab } from './helpers/tabs.ts';

const ROUNDS = 2;

/** The ids of the participants a round accepted an update from. */
function contributors(record: RoundRecord): string[] {
  return (record.participants ?? []).filter((p) => p.outcome === 'received').map((p) => p.id);
}

/**
 * One federation across three coordinator processes on one Redis
 * (docs/cluster.md): one tab trains through node A and one through node B,
 * each loading the page from its own node; every round takes both of them
 * (whichever node leads), and the dashboard of node C, which has no
 * participant of its own, shows both: its cluster panel counts one on A and
 * one on B, its Participants table lists both with their node, and its
 * round timeline names both tabs' participants.
 */
test('two tabs on two different nodes train one federation, and a third node’s dashboard shows both', async ({ browser }) => {
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
      String(ROUNDS),
      '--round-timeout',
      '60',
      '--quiet',
    ];
    for (let n = 0; n < 3; n++) nodes.push(await startCoordinatorProcess(flags));
    const [nodeA, nodeB, nodeC] = nodes as [CoordinatorProcess, CoordinatorProcess, CoordinatorProcess];
    // Every node sees all three in the registry and agrees on one leader.
    await expect
      .poll(
        async () => {
          const statuses = await Promise.all(nodes.map((node) => node.status()));
          const leaders = new Set(statuses.map((s) => s.cluster?.leader));
          return statuses.every((s) => s.cluster?.nodes.length === 3) && leaders.size === 1 && !leaders.has(undefined);
        },
        { timeout: 30_000 },
      )
      .toBe(true);
    const nodeIds = await Promise.all(nodes.map(async (node) => (await node.status()).cluster!.self));
    const [idA, idB, idC] = nodeIds as [string, string, string];

    await openTab(browser, `${nodeA.url}/?shard=1/2&backend=wasm`, { into: pages });
    await openTab(browser, `${nodeB.url}/?shard=2/2&backend=wasm`, { into: pages });
    // Each node lists its own connection, named with its node: that is the tab's participant id.
    const ownParticipant = async (node: CoordinatorProcess, nodeId: string): Promise<string> => {
      let id: string | undefined;
      await expect
        .poll(
          async () => {
            const connected = (await node.status()).participants.filter((p) => p.connected && p.node === nodeId);
            id = connected.length === 1 ? connected[0]!.id : undefined;
            return id !== undefined;
          },
          { timeout: 30_000 },
        )
        .toBe(true);
      return id!;
    };
    const participantA = await ownParticipant(nodeA, idA);
    const participantB = await ownParticipant(nodeB, idB);
    expect(participantA).not.toBe(participantB);
    // Node C, with no participant of its own, lists both with their node.
    await expect
      .poll(async () => {
        const listed = (await nodeC.status()).participants.filter((p) => p.connected);
        return listed.map((p) => `${p.id}@${p.node}`).sort();
      })
      .toEqual([`${participantA}@${idA}`, `${participantB}@${idB}`].sort());

    const dashboard = await openTab(browser, `${nodeC.url}/dashboard`, { into: pages });
    await expect(dashboard.locator('#connection')).toHaveAttribute('data-state', 'live', { timeout: 30_000 });
    await expect(dashboard.locator('#cluster-section')).toBeVisible();
    await expect(dashboard.locator('#cluster-nodes tbody tr')).toHaveCount(3, { timeout: 15_000 });
    const participantsCell = (id: string) => dashboard.locator(`#cluster-nodes tbody tr[data-node="${id}"] td`).nth(3);
    await expect(participantsCell(idA)).toHaveText('1', { timeout: 15_000 });
    await expect(participantsCell(idB)).toHaveText('1', { timeout: 15_000 });
    await expect(participantsCell(idC)).toHaveText('0');
    // Its Participants table lists both tabs, each with its node.
    await expect(dashboard.locator('#participants tbody tr')).toHaveCount(2, { timeout: 15_000 });
    for (const [participant, node] of [
      [participantA, idA],
      [participantB, idB],
    ] as const)
      await expect(dashboard.locator(`#participants tbody tr[data-participant="${participant}"] td[data-node]`)).toHaveAttribute(
        'data-node',
        node,
      );

    // The federation finishes its rounds; node C follows it from Redis.
    await expect
      .poll(async () => (await nodeC.status()).history.filter((r) => r.outcome === 'aggregated').length, {
        timeout: 120_000,
        intervals: [500],
      })
      .toBeGreaterThanOrEqual(ROUNDS);
    const status: FederationStatus = await nodeC.status();
    const aggregated = status.history.filter((r) => r.outcome === 'aggregated');
    for (const record of aggregated) {
      expect(contributors(record).sort(), `round ${record.round}`).toEqual([participantA, participantB].sort());
      expect(record.metrics?.accuracy, `round ${record.round}`).toBeGreaterThan(0);
    }

    // Node C's dashboard shows both participants in its round timeline, and the accuracy.
    const lastRound = dashboard.locator(`#timeline .timeline-round[data-round="${aggregated.at(-1)!.round}"]`);
    await expect(lastRound).toBeVisible({ timeout: 15_000 });
    for (const id of [participantA, participantB])
      await expect(lastRound.locator(`li[data-participant="${id}"]`)).toHaveAttribute('data-outcome', 'received');
    await expect(dashboard.locator('#accuracy')).not.toHaveText('–');
  } finally {
    await closeTabs(pages);
    for (const node of nodes) await node.stop();
    await redis.cleanup();
  }
});
