// What a client call can fail with: the server's JSON-RPC error reply (RpcResponseError, which
// carries the error object exactly as received), or a failure on this side of the wire
// (ClientError: no reply in time, the connection closed, the HTTP status was an error, ...).
// Bad arguments to the client itself are RkllmError INVALID_ARGUMENT, as everywhere else.

import type { RequestId } from '../rpc/envelope';
import type { ErrorObject } from '../rpc/errors';

/** The server answered with a JSON-RPC error. */
export class RpcResponseError extends Error {
  /** The JSON-RPC error code (-32602, -32001, ...). */
  readonly code: number;
  readonly data: unknown;
  /** The error object as received. */
  readonly error: ErrorObject;
  /** The id of the request it answered (null when the server could not tell, e.g. a parse error). */
  readonly id: RequestId;
  readonly method: string | undefined;

  constructor(error: ErrorObject, id: RequestId, method?: string) {
    super(`${method === undefined ? '' : `${method}: `}${error.message} (${error.code})${describeData(error.data)}`);
    this.name = 'RpcResponseError';
    this.code = error.code;
    this.data = error.data;
    this.error = error;
    this.id = id;
    this.method = method;
  }
}

function describeData(data: unknown): string {
  if (data === undefined) return '';
  const fields = data as { detail?: unknown; field?: unknown; reason?: unknown };
  if (typeof fields.field === 'string' && typeof fields.reason === 'string') return `: ${fields.field} ${fields.reason}`;
  if (typeof fields.detail === 'string') return `: ${fields.detail}`;
  return '';
}

export type ClientErrorCode =
  /** No reply (or stream chunk) within the bound. */
  | 'TIMEOUT'
  /** The transport closed (or was closed, or dropped) before the answer came. */
  | 'CLOSED'
  /** The caller's AbortSignal fired, or a stream's consumer stopped reading it. */
  | 'ABORTED'
  /** The transport could not be opened (refused, unreachable, WebSocket upgrade refused). */
  | 'CONNECT_FAILED'
  /** The medium failed carrying a message or its answer (a socket error, an HTTP response cut short). */
  | 'SEND_FAILED'
  /** An HTTP response with an error status (`status`, and `body` as text). */
  | 'HTTP_STATUS'
  /** An HTTP exchange ended without a reply to a request it carried. */
  | 'NO_REPLY'
  /** A received message was larger than the client accepts; it was skipped. */
  | 'MESSAGE_TOO_LARGE';

export class ClientError extends Error {
  readonly code: ClientErrorCode;
  /** HTTP_STATUS, CONNECT_FAILED of a WebSocket upgrade: the HTTP status. */
  readonly status: number | undefined;
  /** HTTP_STATUS: the response body as text (bounded). */
  readonly body: string | undefined;

  constructor(code: ClientErrorCode, message: string, options: { cause?: unknown; status?: number; body?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ClientError';
    this.code = code;
    this.status = options.status;
    this.body = options.body;
  }
}

export function isClientError(value: unknown, code?: ClientErrorCode): value is ClientError {
  return value instanceof ClientError && (code === undefined || value.code === code);
}
