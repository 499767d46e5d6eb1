// The one table from the domain error (lib/errors.ts) to JSON-RPC errors: the five codes of the
// spec and the server's own in -32000..-32099, as docs/protocol.md lists them. Every failure a
// JSON-RPC client sees goes through toRpcError, and reads the error's structured fields (field,
// reason, fn, returnCode, facts), never its message, to fill `data`.

import { RkllmError, type RkllmErrorCode } from '../errors';
import { INTERNAL_ERROR, RpcError, invalidParams } from '../rpc/errors';

/** The server's own errors: code and the message a client sees (details go in `data`). */
export const SERVER_ERRORS = {
  RUNTIME_ERROR: { code: -32000, message: 'The runtime reported an error' },
  QUEUE_FULL: { code: -32001, message: 'The queue of this model is full; try again later' },
  NO_MODEL: { code: -32002, message: 'No model is loaded; load one with rkllm_init' },
  UNKNOWN_HANDLE: { code: -32003, message: 'No model is loaded under this handle' },
  HANDLE_IN_USE: { code: -32004, message: 'A model is already loaded under this handle' },
  DOMAIN_IN_USE: { code: -32005, message: 'Another model already uses this base_domain_id' },
  MODEL_INIT_FAILED: { code: -32006, message: 'rkllm_init failed' },
  MODEL_DESTROYED: { code: -32007, message: 'The model was destroyed' },
  REQUEST_TIMEOUT: { code: -32008, message: 'The request timed out' },
  REQUEST_CANCELLED: { code: -32009, message: 'The request was cancelled' },
  REQUEST_ABORTED: { code: -32010, message: 'The run was aborted by rkllm_abort' },
  RUN_FAILED: { code: -32011, message: 'The run failed in the runtime' },
  CALL_FAILED: { code: -32012, message: 'An RKLLM function returned an error code' },
  STREAM_NOT_FOUND: { code: -32013, message: 'No such stream (unknown, or expired)' },
  MESSAGE_TOO_LARGE: { code: -32014, message: 'The message is larger than the server accepts' },
  SHUTTING_DOWN: { code: -32015, message: 'The server is shutting down' },
  TRANSPORT_NOT_RUNNING: { code: -32016, message: 'That transport is not running' },
  TOO_MANY_CONNECTIONS: { code: -32017, message: 'Too many connections; try again later' },
  UNAUTHORIZED: { code: -32018, message: 'Missing or wrong API key' },
  ADDRESS_NOT_VERIFIED: { code: -32019, message: 'Echo the cookie' },
  TOO_MANY_STREAMS: { code: -32020, message: 'Too many streams are kept; read or cancel some, or try again later' },
  MODEL_CONTROL_REFUSED: { code: -32021, message: 'This client may not control that model now' },
  FORBIDDEN: { code: -32022, message: 'Refused: the Host or Origin of the request is not allowed' },
  TOO_MANY_MODELS: { code: -32023, message: 'Too many models loaded or loading; destroy one or try again later' },
  RESOURCE_EXHAUSTED: { code: -32024, message: 'The server could not start a thread for this call; try again later' },
  CONTEXT_LENGTH_EXCEEDED: { code: -32025, message: "The conversation does not fit the model's context" },
  RUNTIME_FAILED: { code: -32026, message: "The model's runtime crashed or hung; the model is restarting, or has failed" },
} as const;

export type ServerErrorName = keyof typeof SERVER_ERRORS;

/** Where each domain code lands on the JSON-RPC wire. */
const WIRE_BY_CODE: Readonly<Record<RkllmErrorCode, ServerErrorName | 'INVALID_PARAMS' | 'INTERNAL_ERROR'>> = {
  INVALID_ARGUMENT: 'INVALID_PARAMS',
  RUNTIME_NOT_FOUND: 'RUNTIME_ERROR',
  RUNTIME_LOAD_FAILED: 'RUNTIME_ERROR',
  RUNTIME_WRONG_ARCHITECTURE: 'RUNTIME_ERROR',
  RUNTIME_SYMBOL_MISSING: 'RUNTIME_ERROR',
  RUNTIME_ABI_UNKNOWN: 'RUNTIME_ERROR',
  RUNTIME_ABI_UNSUPPORTED: 'RUNTIME_ERROR',
  RUNTIME_ABI_MISMATCH: 'RUNTIME_ERROR',
  ADDON_NOT_FOUND: 'RUNTIME_ERROR',
  MODEL_INIT_FAILED: 'MODEL_INIT_FAILED',
  MODEL_DESTROYED: 'MODEL_DESTROYED',
  RUN_FAILED: 'RUN_FAILED',
  RUN_ABORTED: 'REQUEST_ABORTED',
  CALL_FAILED: 'CALL_FAILED',
  QUEUE_FULL: 'QUEUE_FULL',
  NO_MODEL: 'NO_MODEL',
  UNKNOWN_HANDLE: 'UNKNOWN_HANDLE',
  HANDLE_IN_USE: 'HANDLE_IN_USE',
  DOMAIN_IN_USE: 'DOMAIN_IN_USE',
  TOO_MANY_MODELS: 'TOO_MANY_MODELS',
  RESOURCE_EXHAUSTED: 'RESOURCE_EXHAUSTED',
  RUNTIME_FAILED: 'RUNTIME_FAILED',
  REQUEST_TIMEOUT: 'REQUEST_TIMEOUT',
  REQUEST_CANCELLED: 'REQUEST_CANCELLED',
  REQUEST_ABORTED: 'REQUEST_ABORTED',
  STREAM_NOT_FOUND: 'STREAM_NOT_FOUND',
  MESSAGE_TOO_LARGE: 'MESSAGE_TOO_LARGE',
  SHUTTING_DOWN: 'SHUTTING_DOWN',
  TRANSPORT_NOT_RUNNING: 'TRANSPORT_NOT_RUNNING',
  TOO_MANY_CONNECTIONS: 'TOO_MANY_CONNECTIONS',
  UNAUTHORIZED: 'UNAUTHORIZED',
  ADDRESS_NOT_VERIFIED: 'ADDRESS_NOT_VERIFIED',
  TOO_MANY_STREAMS: 'TOO_MANY_STREAMS',
  CONTEXT_LENGTH_EXCEEDED: 'CONTEXT_LENGTH_EXCEEDED',
  MODEL_CONTROL_REFUSED: 'MODEL_CONTROL_REFUSED',
  FORBIDDEN: 'FORBIDDEN',
  PROBE_FAILED: 'RUNTIME_ERROR',
  INTERNAL: 'INTERNAL_ERROR',
};

/** One of the server's own errors; `detail` (a sentence about this case) goes in data.detail. */
export function serverError(name: ServerErrorName, detail?: string, data?: Readonly<Record<string, unknown>>): RpcError {
  const entry = SERVER_ERRORS[name];
  const payload = detail === undefined && data === undefined ? undefined : { ...data, ...(detail === undefined ? {} : { detail }) };
  return new RpcError(entry.code, entry.message, payload);
}

/** Turns anything thrown under a handler into the error a client is sent. Never leaks a stack. */
export function toRpcError(error: unknown): RpcError {
  if (error instanceof RpcError) return error;
  if (!(error instanceof RkllmError)) return new RpcError(INTERNAL_ERROR, 'Internal error');
  const target = WIRE_BY_CODE[error.code] ?? 'INTERNAL_ERROR';
  switch (target) {
    case 'INVALID_PARAMS':
      return invalidParams(error.field ?? 'params', error.reason ?? error.message);
    case 'INTERNAL_ERROR':
      return new RpcError(INTERNAL_ERROR, 'Internal error');
    case 'CALL_FAILED':
      return serverError(
        'CALL_FAILED',
        error.message,
        error.fn === undefined ? undefined : { function: error.fn, return_code: error.returnCode },
      );
    default:
      return serverError(target, error.message, error.facts);
  }
}
