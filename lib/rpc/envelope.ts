// What makes a JSON value a JSON-RPC 2.0 request (spec section 4), and the replies' shapes.

import { INVALID_REQUEST, RpcError, type ErrorObject } from './errors';

export type RequestId = string | number | null;

export interface RpcRequest {
  /** Absent for a notification (which is never answered). */
  readonly id?: RequestId;
  readonly isNotification: boolean;
  readonly method: string;
  readonly params: unknown;
}

export interface SuccessResponse {
  jsonrpc: '2.0';
  id: RequestId;
  result: unknown;
}

export interface ErrorResponse {
  jsonrpc: '2.0';
  id: RequestId;
  error: ErrorObject;
}

export type Response = SuccessResponse | ErrorResponse;

export function success(id: RequestId, result: unknown): SuccessResponse {
  return { jsonrpc: '2.0', id, result };
}

export function failure(id: RequestId, error: RpcError): ErrorResponse {
  return { jsonrpc: '2.0', id, error: error.toJSON() };
}

function isValidId(id: unknown): id is RequestId {
  // The spec discourages fractional ids but allows them; they are echoed as sent.
  return id === null || typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id));
}

function invalid(reason: string): RpcError {
  return new RpcError(INVALID_REQUEST, 'Invalid Request', { reason });
}

/** A request, or the -32600 reply it earns (with its id when that much was valid, else null). */
export function readEnvelope(value: unknown): RpcRequest | ErrorResponse {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return failure(null, invalid('a request must be a JSON object'));
  }
  const message = value as Record<string, unknown>;
  const hasId = 'id' in message;
  const id = message.id;
  const replyId = hasId && isValidId(id) ? id : null;
  if (message.jsonrpc !== '2.0') return failure(replyId, invalid('"jsonrpc" must be exactly "2.0"'));
  if (typeof message.method !== 'string') return failure(replyId, invalid('"method" must be a string'));
  if (hasId && !isValidId(id)) return failure(null, invalid('"id" must be a string, a number or null'));
  const params = message.params;
  if (params !== undefined && (typeof params !== 'object' || params === null)) {
    return failure(replyId, invalid('"params" must be an object or an array'));
  }
  return { id: replyId, isNotification: !hasId, method: message.method, params };
}

export function isErrorResponse(value: RpcRequest | ErrorResponse): value is ErrorResponse {
  return 'jsonrpc' in value;
}
