// The one place where failures of the library layer (RkllmError codes) become wire errors.

import { RkllmError, type RkllmErrorCode } from '../errors';
import { INTERNAL_ERROR, RpcError, invalidParams, serverError, type ServerErrorName } from './errors';

const BY_RKLLM_CODE: Readonly<Record<RkllmErrorCode, ServerErrorName | 'INVALID_PARAMS'>> = {
  INVALID_ARGUMENT: 'INVALID_PARAMS',
  RUNTIME_NOT_FOUND: 'RUNTIME_ERROR',
  RUNTIME_LOAD_FAILED: 'RUNTIME_ERROR',
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
  REQUEST_TIMEOUT: 'REQUEST_TIMEOUT',
  REQUEST_CANCELLED: 'REQUEST_CANCELLED',
  REQUEST_ABORTED: 'REQUEST_ABORTED',
  STREAM_NOT_FOUND: 'STREAM_NOT_FOUND',
  MESSAGE_TOO_LARGE: 'MESSAGE_TOO_LARGE',
  SHUTTING_DOWN: 'SHUTTING_DOWN',
  TRANSPORT_NOT_RUNNING: 'TRANSPORT_NOT_RUNNING',
  TOO_MANY_CONNECTIONS: 'TOO_MANY_CONNECTIONS',
  UNAUTHORIZED: 'UNAUTHORIZED',
  INTERNAL: 'RUNTIME_ERROR',
};

/** "param.top_k: expected an integer" → field and reason; the library words its messages so. */
const FIELD_MESSAGE = /^([A-Za-z_][\w.[\]]*): (.+)$/s;
/** "rkllm_abort returned -1" (lib/runtime/model.ts). */
const CALL_MESSAGE = /^(\w+) returned (-?\d+)$/;

/** Turns anything thrown under a handler into the error a client is sent. Never leaks a stack. */
export function toRpcError(error: unknown): RpcError {
  if (error instanceof RpcError) return error;
  if (error instanceof RkllmError) {
    const target = BY_RKLLM_CODE[error.code] ?? 'RUNTIME_ERROR';
    if (target === 'INVALID_PARAMS') {
      const match = FIELD_MESSAGE.exec(error.message);
      return match ? invalidParams(match[1], match[2]) : invalidParams('params', error.message);
    }
    if (target === 'CALL_FAILED') {
      const match = CALL_MESSAGE.exec(error.message);
      return serverError(
        'CALL_FAILED',
        error.message,
        match ? { function: match[1], return_code: Number(match[2]) } : undefined,
      );
    }
    return serverError(target, error.message);
  }
  return new RpcError(INTERNAL_ERROR, 'Internal error');
}
