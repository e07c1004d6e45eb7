import type { ClientAckValue, ClientEventName, HasAck, ParsedPayload } from '../../core/protocol/client-events.ts';
import { ackError, ErrorCode, ProtocolError, type Ack } from '../../core/protocol/errors.ts';

/**
 * The one way a participant event reaches its handler: the payload is checked
 * by the event's parser (core/protocol/client-events.ts), a bad one is
 * answered through the ack with its code and counted, and only a checked,
 * typed payload reaches the handler. A handler that throws (a bug) answers
 * BAD_PAYLOAD "the request could not be processed", never a crash.
 */

/** The answer of a request: its ack, now or once the work is done. */
export type Answer<E extends ClientEventName> = Ack<ClientAckValue<E>> | Promise<Ack<ClientAckValue<E>>>;

/** An event with an acknowledgement. Every function gets the socket it came on: one handler serves every socket. */
export interface RequestHandler<E extends ClientEventName, S> {
  readonly kind: 'request';
  /** A refusal that does not depend on the payload (NOT_JOINED), checked before it is read; already counted. */
  readonly refuseEarly?: (socket: S) => Ack<never> | undefined;
  /** What a failed request costs its sender (a payload that failed its check, or a handler that failed): e.g. its place in the round. */
  readonly onFailure?: (socket: S) => void;
  readonly handle: (socket: S, message: ParsedPayload<E>) => Answer<E>;
}

/** An event without an acknowledgement: nothing is ever answered, a bad payload is only counted. */
export interface NotificationHandler<E extends ClientEventName, S> {
  readonly kind: 'notification';
  readonly handle: (socket: S, message: ParsedPayload<E>) => void;
}

export type EventHandler<E extends ClientEventName, S> = HasAck<E> extends true ? RequestHandler<E, S> : NotificationHandler<E, S>;

export interface ResponderHooks {
  /** Counts a refusal in FederationStatus.rejections. */
  countRejection(code: ErrorCode): void;
  logError(line: string): void;
  /** Sees every acknowledgement sent (the /metrics counters). */
  answered?(event: ClientEventName, result: Ack<unknown>): void;
}

/** A socket.io listener that reads its socket from `this`, as socket.io (a Node EventEmitter) calls it. */
export type SharedListener<S> = (this: S, ...args: unknown[]) => void;

/**
 * The listener for `event`, behind `parse`, made once and registered on every
 * socket: socket.io calls a listener with its socket as `this`, so a node
 * with thousands of connections holds one listener per event, not one per
 * event per socket.
 */
export function listenerFor<E extends ClientEventName, S>(
  event: E,
  parse: (value: unknown) => ParsedPayload<E>,
  handler: RequestHandler<E, S> | NotificationHandler<E, S>,
  hooks: ResponderHooks,
): SharedListener<S> {
  /** A thrown error as a coded answer, counted. */
  const refusal = (error: unknown): Ack<never> => {
    if (error instanceof ProtocolError) {
      hooks.countRejection(error.code);
      return ackError(error.code, error.message);
    }
    hooks.logError(`${event} handler failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    hooks.countRejection(ErrorCode.BadPayload);
    return ackError(ErrorCode.BadPayload, 'the request could not be processed');
  };
  if (handler.kind === 'notification') {
    return function notification(this: S, ...args: unknown[]) {
      try {
        handler.handle(this, parse(args[0]));
      } catch (error) {
        refusal(error);
      }
    };
  }
  const answer = (ack: unknown, result: Ack<unknown>) => {
    hooks.answered?.(event, result);
    if (typeof ack === 'function') (ack as (result: Ack<unknown>) => void)(result);
  };
  const fail = (socket: S, ack: unknown, error: unknown) => {
    handler.onFailure?.(socket);
    answer(ack, refusal(error));
  };
  return function request(this: S, ...args: unknown[]) {
    const ack = args.at(-1);
    try {
      const early = handler.refuseEarly?.(this);
      if (early) return answer(ack, early);
      const result = handler.handle(this, parse(args[0]));
      if (result instanceof Promise)
        result.then(
          (settled) => answer(ack, settled),
          (error: unknown) => fail(this, ack, error),
        );
      else answer(ack, result);
    } catch (error) {
      fail(this, ack, error);
    }
  };
}
