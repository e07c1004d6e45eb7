import type { PartialAggregate, PartialMethods } from '../../core/aggregation/partial.ts';
import { parsePartialReply, type ClusterEventServer, type PartialReply, type PartialRequest } from './cluster-events.ts';
import { combinePartials, type MemberPartial, type PartialExchange } from './partial-exchange.ts';

/** A member's part of a round: its sum, and whose updates are in it. */
export interface MemberContribution {
  readonly partial: PartialAggregate;
  readonly contributors: readonly string[];
}

/**
 * A member node answers the leader's partial requests: it writes the round's
 * partial (its own participants' sum) to Redis and acknowledges with whose
 * updates it holds. `partialOf` gives the node's partial of that term's
 * round, or undefined when the node holds none (it never took part, or the
 * round is another).
 */
export function answerPartialRequests(
  io: ClusterEventServer,
  exchange: PartialExchange,
  nodeId: string,
  partialOf: (request: PartialRequest) => MemberContribution | undefined,
): void {
  io.on('cluster:partial', (request: PartialRequest, ack: (reply: PartialReply) => void) => {
    const contribution = partialOf(request);
    if (contribution === undefined) {
      ack({ node: nodeId, stored: false, reason: `node ${nodeId} holds no partial of round ${request.round} (term ${request.term})` });
      return;
    }
    // Written once: a repeated request finds the first partial there, which is what the leader reads.
    exchange.write(request.term, request.round, nodeId, contribution.partial).then(
      () => ack({ node: nodeId, stored: true, contributors: contribution.contributors }),
      (error: Error) => ack({ node: nodeId, stored: false, reason: `node ${nodeId} could not store its partial: ${error.message}` }),
    );
  });
}

/**
 * The leader's side of a round's close: asks every member for its partial
 * (the adapter waits for each live node's acknowledgement, up to its
 * requestsTimeout), then reads the partials of `members` (the nodes whose
 * participants were selected) from Redis and adds the good ones to its
 * aggregator. `check` may refuse a partial that does not match its reply
 * (the round's close: its count against the contributors named). Returns
 * the members whose partial is missing or refused: their selected
 * participants count as dropped.
 */
export async function gatherPartials(options: {
  readonly io: ClusterEventServer;
  readonly exchange: PartialExchange;
  readonly request: PartialRequest;
  readonly members: readonly string[];
  readonly length: number;
  readonly aggregator: PartialMethods;
  readonly log: (line: string) => void;
  readonly check?: (node: string, partial: PartialAggregate, reply: PartialReply | undefined) => string | undefined;
}): Promise<string[]> {
  const { io, exchange, request, members, length, aggregator, log, check } = options;
  const replies = await new Promise<readonly PartialReply[]>((resolve) => {
    io.serverSideEmit('cluster:partial', request, (error: Error | null, answered: unknown[]) => {
      // A node that does not answer in time is taken for dead; what the others stored is still read.
      if (error) log(`cluster: round ${request.round}: ${error.message}`);
      resolve((answered ?? []).map(parsePartialReply).filter((reply) => reply !== undefined));
    });
  });
  for (const reply of replies) if (!reply.stored && members.includes(reply.node)) log(`cluster: round ${request.round}: ${reply.reason}`);
  const partials = (await readOrLost(exchange, request, members, length, log)).map((member): MemberPartial => {
    if (member.kind !== 'ok' || !check) return member;
    const reason = check(
      member.node,
      member.partial,
      replies.find((reply) => reply.node === member.node),
    );
    return reason === undefined ? member : { kind: 'malformed', node: member.node, reason };
  });
  const lost = combinePartials(aggregator, partials, request.round, log);
  // Only tidying: the keys' TTL removes them anyway, so a failure must not fail the round's close.
  await exchange.discard(request.term, request.round, members).catch((error: Error) => {
    log(`cluster: round ${request.round}: could not discard the partials (their TTL removes them): ${error.message}`);
  });
  return lost;
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
