import { createInterface } from 'node:readline';
import type { RoundStartMessage } from '../core/protocol/messages.ts';
import { encodeFrame, FrameKind, readFrameHeader } from '../core/wire/frame.ts';
import { connect, join, updateMessage } from './simulated-participants.ts';

/**
 * One client process of bench/cluster.ts: `count` simulated participants
 * connected to one node's own address (`url`). Each answers its round:start
 * at once with an update frame as long as the round's model (no training).
 * Prints `ready` once all have joined; on the line `report` on stdin it
 * prints, per round, how many updates were acknowledged (and refused), when
 * the first round:start arrived and when the last acknowledgement did
 * (milliseconds since the epoch, sub-millisecond, so processes compare),
 * then exits.
 *
 *   node --import tsx bench/cluster-clients.ts URL COUNT
 */

export interface ClientRoundReport {
  round: number;
  acked: number;
  refused: number;
  firstStartMs: number;
  lastAckMs: number;
  /** The update frame's bytes (the round's model length). */
  frameBytes: number;
  refusal?: string;
}

const [url, countText] = process.argv.slice(2);
const count = Number(countText);
if (!url || !Number.isInteger(count) || count < 1) {
  console.error('usage: bench/cluster-clients.ts URL COUNT');
  process.exit(2);
}

const nowMs = () => performance.timeOrigin + performance.now();
const rounds = new Map<number, ClientRoundReport>();
const frames = new Map<number, ArrayBuffer>();

/** The update frame for a model of `length` values, made once. */
function frameOf(length: number): ArrayBuffer {
  let frame = frames.get(length);
  if (frame === undefined) {
    frame = encodeFrame(
      FrameKind.Update,
      new Float32Array(length).map((_, i) => Math.sin(i) * 1e-3),
    );
    frames.set(length, frame);
  }
  return frame;
}

const sockets = await connect(url, count);
for (const socket of sockets) {
  socket.on('round:start', (message: RoundStartMessage) => {
    const report = rounds.get(message.round) ?? {
      round: message.round,
      acked: 0,
      refused: 0,
      firstStartMs: nowMs(),
      lastAckMs: 0,
      frameBytes: 0,
    };
    rounds.set(message.round, report);
    const frame = frameOf(readFrameHeader(message.model.weights, FrameKind.Weights).count);
    report.frameBytes = frame.byteLength;
    socket.emitWithAck('update', updateMessage(message.round, message.model.version, frame)).then(
      (ack: { ok: boolean }) => {
        if (ack.ok) report.acked++;
        else {
          report.refused++;
          report.refusal ??= JSON.stringify(ack);
        }
        report.lastAckMs = nowMs();
      },
      (error: Error) => {
        report.refused++;
        report.refusal ??= error.message;
      },
    );
  });
}
await join(sockets);
console.log('ready');

for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() !== 'report') continue;
  console.log(JSON.stringify([...rounds.values()]));
  for (const socket of sockets) socket.close();
  process.exit(0);
}
