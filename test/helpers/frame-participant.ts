import assert from 'node:assert/strict';
import { io, type Socket } from 'socket.io-client';
import type { Ack } from '../../core/protocol/errors.ts';
import { PROTOCOL_VERSION, type JoinAccepted, type RoundStartMessage, type UpdateAccepted } from '../../core/protocol/messages.ts';

/**
 * A participant by hand: joins the coordinator at `url` (10 examples) and
 * answers every round:start with the same update `frame`, honest or not; the
 * acknowledgements collect in `answers`. Resolves once it has joined, with
 * its socket for the test to close.
 */
export async function joinAnsweringWith(url: string, frame: ArrayBuffer, answers: Promise<Ack<UpdateAccepted>>[]): Promise<Socket> {
  const socket = io(url, { transports: ['websocket'], forceNew: true });
  socket.on('round:start', (message: RoundStartMessage) => {
    answers.push(
      socket.emitWithAck('update', {
        round: message.round,
        baseVersion: message.model.version,
        numExamples: 10,
        metrics: { loss: 1, accuracy: 0.5 },
        trainMs: 1,
        update: frame,
      }),
    );
  });
  const joined: Ack<JoinAccepted> = await socket.emitWithAck('join', {
    protocolVersion: PROTOCOL_VERSION,
    client: { backend: 'test', numExamples: 10 },
  });
  assert.ok(joined.ok);
  return socket;
}
