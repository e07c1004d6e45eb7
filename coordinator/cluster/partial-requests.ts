import type { PartialAggregate, PartialMethods } from '../../core/aggregation/partial.ts';
import { parsePartialReply, type ClusterEventServer, type PartialReply, type PartialRequest } from './cluster-events.ts';
import { combinePartials, type MemberPartial, type PartialExchange } from './partial-exchange.ts';

/** A member's part of a round: its sum, whose updates are in it, and their upload bytes. */
export interface MemberContribution {
  readonly partial: PartialAggregate;
  readonly contributors: readonly string[];
  /** The round's upload bytes this node took in, as one coordinator's round record counts them (`bytesIn`; a secure cohort's: every masked input accepted). */
  readonly bytesIn: number;
}

/**
 * A member node answers the leader's partial requests with `answer`: its
 * partial of that term's round stored in Redis (now, or already before the
 * request: member-rounds.ts stores it as soon as its sum is final) with
 * whose updates it holds, or why not.
 */
export function answerPartialRequests(io: ClusterEventServer, answer: (request: PartialRequest) => Promise<PartialReply>): void {
  io.on('cluster:partial', (request: PartialRequest, ack: (reply: PartialReply) => void) => {
    void answer(request).then(ack);
  });
}

/**
 * Writes a member's partial of the requested round to Redis and says what the
 * leader's check reads: `{stored, contributors}`, or why not. `contribution`
 * is undefined when the node holds none (it never took part, or the round
 * is another).
 */
export function storeContribution(
  exchange: PartialExchange,
  nodeId: string,
  request: PartialRequest,
  contribution: MemberContribution | undefined,
): Promise<PartialReply> {
  if (contribution === undefined)
    return Promise.resolve({
      node: nodeId,
      stored: false,
      reason: `node ${nodeId} holds no partial of round ${request.round} (term ${request.term})`,
    });
  // Written once (SET NX): a retry after a write whose reply was lost finds the same partial there, which is what the leader reads.
  return exchange.write(request.term, request.round, nodeId, contribution.partial).then(
    (): PartialReply => ({ node: nodeId, stored: true, contributors: contribution.contributors, bytesIn: contribution.bytesIn }),
    (error: Error): PartialReply => ({
      node: nodeId,
      stored: false,
      reason: `node ${nodeId} could not store its partial: ${error.message}`,
    }),
  );
}

/** Where the leader's close of a round spent its time (its log line; bench/cluster.ts reads the total). */
export interface CombineSteps {
  /** Members asked at close: those whose partial was not already announced as stored. */
  readonly asked: number;
  /** Waiting for the asked members' acknowledgements (0 when none was asked). */
  readonly requestMs: number;
  /** Reading the partials from Redis (one MGET) and decoding them. */
  readonly readMs: number;
  /** Adding the good ones to the round's aggregator. */
  readonly addMs: number;
}

/**
 * The leader's side of a round's close: asks the members whose partial is
 * not yet known to be stored (`stored`: the notices of members that stored
 * it as soon as their sum was final) for their partial (the adapter waits
 * for each live node's acknowledgement, up to its requestsTimeout), then
 * reads the partials of `members` (the nodes whose participants were
 * selected) from Redis and adds the good ones to its aggregator. `check`
 * may refuse a partial that does not match its reply (the round's close:
 * its count against the contributors named). Returns the members whose
 * partial is missing or refused (their selected participants count as
 * dropped), the upload bytes of the partials added (their replies'), and
 * where the time went.
 */
export async function gatherPartials(options: {
  readonly io: ClusterEventServer;
  readonly exchange: PartialExchange;
  readonly request: PartialRequest;
  readonly members: readonly string[];
  readonly stored?: ReadonlyMap<string, PartialReply>;
  readonly length: number;
  readonly aggregator: PartialMethods;
  readonly log: (line: string) => void;
  readonly check?: (node: string, partial: PartialAggregate, reply: PartialReply | undefined) => string | undefined;
}): Promise<{ readonly lost: string[]; readonly bytesIn: number; readonly steps: CombineSteps }> {
  const { io, exchange, request, members, length, aggregator, log, check } = options;
  const stored = options.stored ?? new Map<string, PartialReply>();
  const asked = members.filter((node) => !stored.has(node)).length;
  const began = performance.now();
  // Every member announced its partial: nothing to ask. Otherwise the request reaches every node (serverSideEmit cannot pick);
  // a node that stored its partial already answers from memory.
  const replies =
    asked === 0
      ? []
      : await new Promise<readonly PartialReply[]>((resolve) => {
          io.serverSideEmit('cluster:partial', request, (error: Error | null, answered: unknown[]) => {
            // A node that does not answer in time is taken for dead; what the others stored is still read.
            if (error) log(`cluster: round ${request.round}: ${error.message}`);
            resolve((answered ?? []).map(parsePartialReply).filter((reply) => reply !== undefined));
          });
        });
  const requested = performance.now();
  for (const reply of replies) if (!reply.stored && members.includes(reply.node)) log(`cluster: round ${request.round}: ${reply.reason}`);
  const replyOf = (node: string) => stored.get(node) ?? replies.find((reply) => reply.node === node);
  const partials = (await readOrLost(exchange, request, members, length, log)).map((member): MemberPartial => {
    if (member.kind !== 'ok' || !check) return member;
    const reason = check(member.node, member.partial, replyOf(member.node));
    return reason === undefined ? member : { kind: 'malformed', node: member.node, reason };
  });
  const read = performance.now();
  const lost = combinePartials(aggregator, partials, request.round, log);
  const added = performance.now();
  let bytesIn = 0;
  for (const member of partials) {
    const reply = member.kind === 'ok' ? replyOf(member.node) : undefined;
    if (reply?.stored) bytesIn += reply.bytesIn;
  }
  // Only tidying: the keys' TTL removes them anyway, so a failure must not fail the round's close.
  await exchange.discard(request.term, request.round, members).catch((error: Error) => {
    log(`cluster: round ${request.round}: could not discard the partials (their TTL removes them): ${error.message}`);
  });
  return { lost, bytesIn, steps: { asked, requestMs: requested - began, readMs: read - requested, addMs: added - read } };
}

/** The members' partials, or every member missing when Redis fails: the round closes on what the leader holds. */
async function readOrLost(
  exchange: PartialExchange,
  request: PartialRequest,
  members: readonly string[],
  length: number,
  log: (line: string) => void,
): Promise<MemberPartial[]> {
  try {
    return await exchange.read(request.term, request.round, members, length);
  } catch (error) {
    log(`cluster: round ${request.round}: could not read the members' partials: ${(error as Error).message}`);
    return members.map((node): MemberPartial => ({ kind: 'missing', node }));
  }
}
