import type { PackedMaskedInputMessage } from '../secagg/messages.ts';
import type { AdvertiseKeysMessage, ShareKeysMessage, UnmaskResponseMessage } from '../secagg/protocol.ts';
import type { Ack } from './errors.ts';
import type { ClientToServerEvents } from './messages.ts';
import {
  parseDeclineMessage,
  parseFrozenWeightsRequest,
  parseJoinRequest,
  parseProgressMessage,
  parseSecAggAdvertise,
  parseSecAggMasked,
  parseSecAggShares,
  parseSecAggUnmask,
  parseUpdateMessage,
} from './validate.ts';

/**
 * The one table of participant → coordinator events: each event of
 * ClientToServerEvents with the run-time check of its payload. The event map
 * says what an honest client sends; the parser makes sure of it. An event
 * missing here, one not in the map, or a parser that reads another event's
 * payload is a compile error (`satisfies` below).
 */

export type ClientEventName = keyof ClientToServerEvents;

/** The payload an honest client sends with event E. */
export type ClientPayload<E extends ClientEventName> = Parameters<ClientToServerEvents[E]>[0];

/** The value a successful acknowledgement of E carries (never for events without an ack). */
export type ClientAckValue<E extends ClientEventName> =
  Parameters<ClientToServerEvents[E]> extends [unknown, (result: Ack<infer T>) => void] ? T : never;

/** True for the events that carry an acknowledgement. */
export type HasAck<E extends ClientEventName> = Parameters<ClientToServerEvents[E]> extends [unknown, unknown] ? true : false;

/**
 * Secure aggregation messages are read straight into what core/secagg takes
 * (each blob split into its pieces, the masked vector as its packed
 * bytes, which the round unpacks with its word bits); every other payload is read as its wire type.
 */
interface SecAggReadings {
  'secagg:advertise': AdvertiseKeysMessage;
  'secagg:shares': ShareKeysMessage;
  'secagg:masked': PackedMaskedInputMessage;
  'secagg:unmask': UnmaskResponseMessage;
}

/** What the payload of E is once checked. */
export type ParsedPayload<E extends ClientEventName> = E extends keyof SecAggReadings ? SecAggReadings[E] : ClientPayload<E>;

/** A parser for each client event: throws ProtocolError(BAD_PAYLOAD) naming the field, or returns the checked payload. */
export type ClientEventParsers = { readonly [E in ClientEventName]: (value: unknown) => ParsedPayload<E> };

export const CLIENT_EVENT_PARSERS = {
  join: parseJoinRequest,
  update: parseUpdateMessage,
  decline: parseDeclineMessage,
  progress: parseProgressMessage,
  'secagg:advertise': parseSecAggAdvertise,
  'secagg:shares': parseSecAggShares,
  'secagg:masked': parseSecAggMasked,
  'secagg:unmask': parseSecAggUnmask,
  'model:frozen': parseFrozenWeightsRequest,
} as const satisfies ClientEventParsers;

/** The secure aggregation events: unknown (UNKNOWN_EVENT) on a coordinator without secure aggregation. */
export type SecAggEventName = keyof SecAggReadings & ClientEventName;

export function isSecAggEvent(event: ClientEventName): event is SecAggEventName {
  return event.startsWith('secagg:');
}

/** Every client event name, from the table. */
export const CLIENT_EVENTS = Object.keys(CLIENT_EVENT_PARSERS) as readonly ClientEventName[];

export function isClientEvent(event: unknown): event is ClientEventName {
  return typeof event === 'string' && Object.hasOwn(CLIENT_EVENT_PARSERS, event);
}
