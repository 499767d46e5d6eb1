// The few replies a transport writes itself, before or instead of the engine: a message over the
// size bound, a binary WebSocket frame, a peer over the connection bound, a UDP reply that cannot
// fit a datagram, a missing API key. The transport says what went wrong as the domain error; the
// front end behind it renders it with its own error table, so clients see one set of codes.

import { RkllmError } from '../errors';
import { SerializedMessage, type OutgoingMessage } from '../rpc/connection';
import { failure, type RequestId } from '../rpc/envelope';
import { INTERNAL_ERROR, INVALID_REQUEST, RpcError } from '../rpc/errors';
import type { TransportHandler } from './transport';

export function messageTooLarge(handler: TransportHandler, limitBytes: number, what: string): OutgoingMessage {
  return handler.refusal(new RkllmError(`${what} is larger than ${limitBytes} bytes`, 'MESSAGE_TOO_LARGE', { facts: { max_bytes: limitBytes } }));
}

/** The transport is at maxConnections (what Admission and UDP's peer table refuse with). */
export function tooManyConnectionsError(transport: string, limit: number): RkllmError {
  return new RkllmError(`this server accepts at most ${limit} ${transport} connections at once`, 'TOO_MANY_CONNECTIONS', { facts: { max_connections: limit } });
}

export function tooManyConnections(handler: TransportHandler, transport: string, limit: number): OutgoingMessage {
  return handler.refusal(tooManyConnectionsError(transport, limit));
}

export function unauthorized(handler: TransportHandler, detail: string): OutgoingMessage {
  return handler.refusal(new RkllmError(detail, 'UNAUTHORIZED'));
}

export function invalidRequest(reason: string): OutgoingMessage {
  return { ...failure(null, new RpcError(INVALID_REQUEST, 'Invalid Request', { reason })) };
}

/**
 * The message as JSON text. The engine only sends JSON values, but a value JSON cannot carry
 * (a BigInt, a cycle) must cost one internal-error reply, not the connection or the process.
 */
export function serialize(message: OutgoingMessage): string {
  if (message instanceof SerializedMessage) return message.text;
  try {
    return JSON.stringify(message);
  } catch (error) {
    const id = !Array.isArray(message) && isRequestId(message.id) ? message.id : null;
    const reason = error instanceof Error ? error.message : String(error);
    return JSON.stringify(failure(id, new RpcError(INTERNAL_ERROR, 'Internal error', { reason: `reply not serialisable: ${reason}` })));
  }
}

export function isRequestId(value: unknown): value is RequestId {
  return value === null || typeof value === 'string' || typeof value === 'number';
}

/** A response (it carries an id and a result or an error), as opposed to a notification. */
export function isResponse(message: Record<string, unknown>): boolean {
  return 'id' in message && ('result' in message || 'error' in message);
}

/** What takes the place of a response too large for a peer's output bound: one error to its id. */
export function replyTooLarge(handler: TransportHandler, id: RequestId, bytes: number, limitBytes: number): OutgoingMessage {
  const detail = `the reply (${bytes} bytes) is larger than this connection's output bound (${limitBytes} bytes, --max-buffered-bytes)`;
  return handler.refusal(new RkllmError(detail, 'MESSAGE_TOO_LARGE', { facts: { max_bytes: limitBytes, reply_bytes: bytes } }), id);
}
