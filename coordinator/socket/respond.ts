import type { Socket } from 'socket.io';
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

/** An event with an acknowledgement. */
export interface RequestHandler<E extends ClientEventName> {
  readonly kind: 'request';
  /** A refusal that does not depend on the payload (NOT_JOINED), checked before it is read; already counted. */
  readonly refuseEarly?: () => Ack<never> | undefined;
  /** What a failed request costs its sender (a payload that failed its check, or a handler that failed): e.g. its place in the round. */
  readonly onFailure?: () => void;
  readonly handle: (message: ParsedPayload<E>) => Answer<E>;
}

/** An event without an acknowledgement: nothing is ever answered, a bad payload is only counted. */
export interface NotificationHandler<E extends ClientEventName> {
  readonly kind: 'notification';
  readonly handle: (message: ParsedPayload<E>) => void;
}

export type EventHandler<E extends ClientEventName> = HasAck<E> extends true ? RequestHandler<E> : NotificationHandler<E>;

export interface ResponderHooks {
  /** Counts a refusal in FederationStatus.rejections. */
  countRejection(code: ErrorCode): void;
  logError(line: string): void;
  /** Sees every acknowledgement sent (the /metrics counters). */
  answered?(event: ClientEventName, result: Ack<unknown>): void;
}

type Listener = (...args: unknown[]) => void;

/** Registers `handler` for `event` on the socket, behind `parse`. */
export function respond<E extends ClientEventName>(
  socket: Socket,
  event: E,
  parse: (value: unknown) => ParsedPayload<E>,
  handler: RequestHandler<E> | NotificationHandler<E>,
  hooks: ResponderHooks,
): void {
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

  const listener: Listener = (...args) => {
    if (handler.kind === 'notification') {
      try {
        handler.handle(parse(args[0]));
      } catch (error) {
        refusal(error);
      }
      return;
    }
    const last = args.at(-1);
    const answer = (result: Ack<unknown>) => {
      hooks.answered?.(event, result);
      if (typeof last === 'function') (last as (result: Ack<unknown>) => void)(result);
    };
    const fail = (error: unknown) => {
      handler.onFailure?.();
      answer(refusal(error));
    };
    try {
      const early = handler.refuseEarly?.();
      if (early) return answer(early);
      const result = handler.handle(parse(args[0]));
      if (result instanceof Promise) result.then(answer, fail);
      else answer(result);
    } catch (error) {
      fail(error);
    }
  };
  // socket.io types listeners by the namespace's event map; the listener reads its arguments as unknown on purpose.
  (socket.on as (event: string, listener: Listener) => void)(event, listener);
}
