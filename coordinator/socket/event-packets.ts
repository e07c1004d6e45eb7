import { Decoder, Encoder } from 'socket.io-parser';

/**
 * socket.io's packet decoder refuses an event packet whose payload is not
 * JSON, not an array, or whose event name is reserved (`disconnect`,
 * `connect`, ...) or neither a string nor a number, and socket.io then closes
 * the whole connection. docs/protocol.md §3.1 promises UNKNOWN_EVENT for
 * such events instead. This decoder hands socket.io a well-formed stand-in
 * for exactly those packets: an event named MALFORMED_EVENT with the reason,
 * keeping the packet's namespace, ack id and attachments, so it takes the
 * same path as any unknown event (rate limit, count, UNKNOWN_EVENT through
 * the ack if it asked for one). Anything else socket.io cannot decode (an
 * unknown packet type, a bad attachment count, binary data out of place)
 * still closes the connection.
 */

/** The stand-in's event name: like every name the protocol does not know, it gets UNKNOWN_EVENT. */
export const MALFORMED_EVENT = 'malformed-event-packet';

/** Packet types 2 (EVENT) and 5 (BINARY_EVENT); then the attachment count (binary only), namespace and ack id, as socket.io-parser reads them. */
const EVENT_HEADER = /^(?:2|5\d+-)(?:\/[^,]*(?:,|$))?[\d\s]*/;

/** Why an event packet's payload is refused, or undefined when socket.io accepts it. */
export function malformedEventReason(payload: string): string | undefined {
  if (payload === '') return 'no payload';
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch {
    return 'the payload is not JSON';
  }
  if (!Array.isArray(value) || value.length === 0) return 'the payload is not an array starting with the event name';
  const name: unknown = value[0];
  if (typeof name === 'number') return undefined;
  if (typeof name !== 'string') return `the event name is ${name === null ? 'null' : typeof name}, not a string`;
  return RESERVED_NAMES.has(name) ? `"${name}" is a reserved event name` : undefined;
}

/** socket.io-parser's reserved names (it refuses them from clients). */
const RESERVED_NAMES = new Set(['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener']);

/** The packet socket.io decodes instead of a malformed event packet, or undefined when it is not one. */
export function standInForMalformedEvent(packet: string): string | undefined {
  const header = EVENT_HEADER.exec(packet)?.[0];
  if (header === undefined) return undefined;
  const reason = malformedEventReason(packet.slice(header.length));
  return reason === undefined ? undefined : `${header}${JSON.stringify([MALFORMED_EVENT, reason])}`;
}

class EventTolerantDecoder extends Decoder {
  override add(chunk: unknown): void {
    // An event packet without a payload decodes, as an event with no name: replace it too.
    if (typeof chunk === 'string' && EVENT_HEADER.exec(chunk)?.[0].length === chunk.length) {
      super.add(`${chunk}${JSON.stringify([MALFORMED_EVENT, 'no payload'])}`);
      return;
    }
    try {
      super.add(chunk);
    } catch (error) {
      const standIn = typeof chunk === 'string' ? standInForMalformedEvent(chunk) : undefined;
      if (standIn === undefined) throw error;
      super.add(standIn);
    }
  }
}

/** socket.io's parser with the tolerant decoder: `new Server(http, { parser: eventTolerantParser })`. */
export const eventTolerantParser = { Encoder, Decoder: EventTolerantDecoder };
