import type { Socket } from 'socket.io';
import {
  CLIENT_EVENT_PARSERS,
  CLIENT_EVENTS,
  isClientEvent,
  isSecAggEvent,
  type ClientEventName,
  type ClientEventParsers,
  type SecAggEventName,
} from '../../core/protocol/client-events.ts';
import { ackError, ackOk, ErrorCode, ProtocolError, type Ack } from '../../core/protocol/errors.ts';
import { PROTOCOL_VERSION, type ClientToServerEvents, type ServerToClientEvents, type TaskSummary } from '../../core/protocol/messages.ts';
import type { RoundEngine } from '../rounds/round-engine.ts';
import type { SecAggStep } from '../rounds/secure-round.ts';
import type { RejoinSecrets } from '../security/rejoin-secrets.ts';
import { MALFORMED_EVENT } from './event-packets.ts';
import { listenerFor, type EventHandler, type RequestHandler, type SharedListener } from './respond.ts';

export interface SocketData {
  participantId?: string;
  /** The secret issued with participantId to this socket: a join that names the same id again gets it back. */
  rejoinSecret?: string;
  /** The per-participant credential it authenticated with (security/credentials.ts), if any. */
  credential?: string;
}

export type ParticipantSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

/** What the participants' socket handlers call of the engine (on a cluster node, routed: coordinator/cluster/member-rounds.ts). */
export type ParticipantEngine = Pick<
  RoundEngine,
  | 'countRejection'
  | 'excludeFromOpenRound'
  | 'submitSecAgg'
  | 'join'
  | 'isDone'
  | 'status'
  | 'globalModel'
  | 'currentRound'
  | 'submitUpdate'
  | 'decline'
  | 'reportProgress'
  | 'leave'
>;

export interface ParticipantContext {
  readonly engine: ParticipantEngine;
  readonly task: TaskSummary;
  /** Which socket holds each participant id now (round:start and secagg messages go there). */
  readonly socketsByParticipant: Map<string, ParticipantSocket>;
  readonly rejoinSecrets: RejoinSecrets;
  /** Without secure aggregation the secagg:* events are not part of the protocol (UNKNOWN_EVENT). */
  readonly secureAggregation: boolean;
  readonly logError: (line: string) => void;
  /** A fine-tuning task's frozen values, sent only to participants that ask (`model:frozen`): they do not hold them yet. */
  readonly frozenWeights?: { readonly hash: string; readonly frame: ArrayBuffer };
  /** Sees the answer to every request that carries an update (UPDATE_EVENTS), refusals included: the /metrics counters. */
  readonly updateAnswered?: (result: Ack<unknown>) => void;
  /** An update of `bytes` was accepted into a round on this node (the /metrics byte counter: a cluster node's own). */
  readonly updateAccepted?: (bytes: number) => void;
}

/**
 * The requests that carry a participant's update: `update`, and under secure
 * aggregation the masked input (`secagg:masked`), which is the update as the
 * coordinator receives it; the other secure steps carry keys and shares.
 */
const UPDATE_EVENTS: ReadonlySet<ClientEventName> = new Set<ClientEventName>(['update', 'secagg:masked']);

const SECAGG_STEPS = {
  'secagg:advertise': 'advertise',
  'secagg:shares': 'shares',
  'secagg:masked': 'masked',
  'secagg:unmask': 'unmask',
} as const satisfies Record<SecAggEventName, SecAggStep>;

/**
 * The protocol of namespace `/`: every client event through its listener
 * (respond.ts), anything else UNKNOWN_EVENT. Made once per coordinator and
 * attached to each socket: the handlers take the socket they serve as an
 * argument, so a connection costs its listener slots, not a set of closures
 * of its own (a node holds thousands; bench/participant-memory.ts).
 *
 *   io.on('connection', participantProtocol(context));
 */
export function participantProtocol(context: ParticipantContext): (socket: ParticipantSocket) => void {
  const { engine, task, socketsByParticipant, rejoinSecrets } = context;

  /** A request refused by the server itself (the engine counts its own refusals). */
  const refuse = (code: ErrorCode, message: string): Ack<never> => {
    engine.countRejection(code);
    return ackError(code, message);
  };
  const mustHaveJoined = (what: string) => (socket: ParticipantSocket) =>
    socket.data.participantId === undefined ? refuse(ErrorCode.NotJoined, `join before ${what}`) : undefined;
  /** The sender's id (refuseEarly has made sure there is one). */
  const joined = (socket: ParticipantSocket): string => {
    const id = socket.data.participantId;
    if (id === undefined) throw new ProtocolError(ErrorCode.NotJoined, 'join first');
    return id;
  };
  /** A selected participant that sends garbage is out of the round: it must not hold it until the deadline. */
  const leaveRound = (socket: ParticipantSocket) => {
    const id = socket.data.participantId;
    if (id !== undefined) engine.excludeFromOpenRound(id);
  };
  const secagg = (event: SecAggEventName): RequestHandler<SecAggEventName, ParticipantSocket> => ({
    kind: 'request',
    refuseEarly: mustHaveJoined('sending secure aggregation messages'),
    onFailure: leaveRound,
    handle: (socket, message) => {
      const answer = engine.submitSecAgg(joined(socket), SECAGG_STEPS[event], message);
      if (!UPDATE_EVENTS.has(event) || !('packed' in message)) return answer;
      // The masked input's packed words are the update's bytes accepted.
      return answer.then((result) => {
        if (result.ok) context.updateAccepted?.(message.packed.byteLength);
        return result;
      });
    },
  });

  const handlers = {
    join: {
      kind: 'request',
      handle: (socket, request) => {
        if (request.protocolVersion !== PROTOCOL_VERSION) {
          return refuse(
            ErrorCode.UnsupportedProtocol,
            `protocol version ${request.protocolVersion} is not supported; this coordinator speaks ${PROTOCOL_VERSION}`,
          );
        }
        const previous = socket.data.participantId;
        // Ids are public (status, dashboard): a known id is given back only with the secret issued with it, or on the socket that holds it.
        const sameSocket = previous !== undefined && request.participantId === previous;
        const claimed =
          sameSocket || (request.participantId !== undefined && rejoinSecrets.matches(request.participantId, request.rejoinSecret))
            ? request.participantId
            : undefined;
        if (previous !== undefined && previous !== claimed) {
          return refuse(ErrorCode.BadPayload, `this connection already joined as ${previous}`);
        }
        const id = engine.join(request.client, claimed, socket.data.credential);
        // The same socket keeps the secret it was given; a rejoin proved the one it sent; anyone else gets a new one.
        const rejoinSecret =
          (sameSocket ? socket.data.rejoinSecret : claimed !== undefined ? request.rejoinSecret : undefined) ?? rejoinSecrets.issue(id);
        const other = socketsByParticipant.get(id);
        // Point the id at the new socket first, so the old socket's disconnect does not count as leaving.
        socketsByParticipant.set(id, socket);
        socket.data.participantId = id;
        socket.data.rejoinSecret = rejoinSecret;
        if (other && other !== socket) other.disconnect(true);
        if (engine.isDone) {
          // A late joiner learns at once that no round will come (after its join answer).
          const final = engine.status();
          setTimeout(
            () =>
              socket.emit('federation:done', {
                reason: final.doneReason ?? 'finished',
                round: final.round,
                metrics: final.history.at(-1)?.metrics,
              }),
            0,
          );
        }
        const model = engine.globalModel;
        return ackOk({
          participantId: id,
          rejoinSecret,
          task,
          model: { version: model.version, weights: model.frame, frozenHash: model.frozenHash },
          round: engine.currentRound,
        });
      },
    },
    update: {
      kind: 'request',
      refuseEarly: mustHaveJoined('sending updates'),
      onFailure: leaveRound,
      handle: (socket, message) => {
        const result = engine.submitUpdate(joined(socket), message);
        if (result.ok) context.updateAccepted?.(message.update.byteLength);
        return result;
      },
    },
    decline: {
      kind: 'request',
      refuseEarly: mustHaveJoined('declining rounds'),
      handle: (socket, message) => engine.decline(joined(socket), message),
    },
    progress: {
      kind: 'notification',
      handle: (socket, message) => {
        const id = socket.data.participantId;
        if (id !== undefined) engine.reportProgress(id, message);
      },
    },
    'secagg:advertise': secagg('secagg:advertise'),
    'secagg:shares': secagg('secagg:shares'),
    'secagg:masked': secagg('secagg:masked'),
    'secagg:unmask': secagg('secagg:unmask'),
    'model:frozen': {
      kind: 'request',
      refuseEarly: mustHaveJoined('fetching frozen weights'),
      handle: (_socket, request) => {
        const frozen = context.frozenWeights;
        if (frozen?.hash !== request.hash) {
          return refuse(
            ErrorCode.UnknownFrozenWeights,
            frozen
              ? `this coordinator's task fine-tunes from frozen weights ${frozen.hash}, not ${request.hash}`
              : "this coordinator's task does not fine-tune: it has no frozen weights",
          );
        }
        return ackOk({ hash: frozen.hash, weights: frozen.frame });
      },
    },
  } satisfies { readonly [E in ClientEventName]: EventHandler<E, ParticipantSocket> };

  const table: { readonly [E in ClientEventName]: EventHandler<E, ParticipantSocket> } = handlers;
  const parsers: ClientEventParsers = CLIENT_EVENT_PARSERS;
  const hooks = {
    countRejection: (code: ErrorCode) => engine.countRejection(code),
    logError: context.logError,
    answered: (event: ClientEventName, result: Ack<unknown>) => {
      if (UPDATE_EVENTS.has(event)) context.updateAnswered?.(result);
    },
  };
  const known = (event: ClientEventName) => context.secureAggregation || !isSecAggEvent(event);
  const listener = <E extends ClientEventName>(event: E) => listenerFor(event, parsers[event], table[event], hooks);
  const listeners = CLIENT_EVENTS.filter(known).map((event) => [event, listener(event)] as const);

  function unknownEvent(event: unknown, ...args: unknown[]): void {
    if (isClientEvent(event) && known(event)) return;
    engine.countRejection(ErrorCode.UnknownEvent);
    const ack = args.at(-1);
    if (typeof ack !== 'function') return;
    const message =
      event === MALFORMED_EVENT
        ? `unreadable event packet: ${String(args[0]).slice(0, 128)}`
        : `unknown event "${String(event).slice(0, 64)}"`;
    ack(ackError(ErrorCode.UnknownEvent, message));
  }
  function disconnected(this: ParticipantSocket): void {
    const id = this.data.participantId;
    if (id !== undefined && socketsByParticipant.get(id) === this) {
      socketsByParticipant.delete(id);
      engine.leave(id);
    }
  }

  // socket.io types listeners by the namespace's event map; these read their arguments as unknown on purpose.
  type On = (this: ParticipantSocket, event: string, listener: SharedListener<ParticipantSocket>) => void;
  return (socket) => {
    const on = socket.on as unknown as On;
    for (const [event, handle] of listeners) on.call(socket, event, handle);
    socket.onAny(unknownEvent);
    socket.on('disconnect', disconnected);
  };
}
