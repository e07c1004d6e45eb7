import type { Server } from 'socket.io';
import type { Strategy } from '../../core/aggregation/strategy.ts';
import type { ClientToServerEvents, ServerToClientEvents } from '../../core/protocol/messages.ts';
import { encodeForwarded, encodeKeys, encodeUnmaskRequest } from '../../core/protocol/secagg-wire.ts';
import type { RoundTransport } from '../rounds/round-engine.ts';
import type { ParticipantSocket, SocketData } from './participant-events.ts';

export type ParticipantServer = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

/** The round engine's messages out, over socket.io: to the socket that holds each id now, or to every socket in `/`. */
export function socketTransport(
  io: ParticipantServer,
  socketsByParticipant: ReadonlyMap<string, ParticipantSocket>,
  strategy: Strategy,
  log: (line: string) => void,
  statusChanged: () => void,
  /** True when federation:done goes to this process's sockets only (a cluster node shutting down: the federation goes on elsewhere). */
  localDone: () => boolean = () => false,
): RoundTransport {
  return {
    sendRoundStart(participantId, message) {
      socketsByParticipant.get(participantId)?.emit('round:start', message);
    },
    sendSecAgg(participantId, out) {
      const socket = socketsByParticipant.get(participantId);
      if (!socket) return;
      if (out.event === 'secagg:keys') socket.emit(out.event, encodeKeys(out.message));
      else if (out.event === 'secagg:forwarded') socket.emit(out.event, encodeForwarded(out.message));
      else socket.emit(out.event, encodeUnmaskRequest(out.message));
    },
    broadcastRoundEnd(message) {
      io.emit('round:end', message);
      const m = message.metrics;
      const privacy = strategy.privacy?.();
      log(
        `round ${message.round}: ${message.outcome}` +
          (privacy
            ? `, ε = ${privacy.epsilon.toFixed(3)} (δ = ${privacy.delta}${privacy.accountant ? `, ${privacy.accountant.toUpperCase()}` : ''})`
            : '') +
          (m ? `, test accuracy ${(m.accuracy * 100).toFixed(2)}%, loss ${m.loss.toFixed(4)}` : '') +
          (message.reason ? ` (${message.reason})` : ''),
      );
    },
    broadcastDone(message) {
      (localDone() ? io.local : io).emit('federation:done', message);
      log(`federation done: ${message.reason}`);
    },
    statusChanged,
  };
}
