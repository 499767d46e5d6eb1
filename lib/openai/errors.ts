// OpenAI's error object ({ error: { message, type, param, code } }) with the HTTP status that
// goes with it. Every failure on the /v1 routes becomes one of these before it is written, so a
// client SDK sees the class of error it expects (BadRequestError, NotFoundError, ...).

import { RpcError, SERVER_ERRORS, INVALID_PARAMS } from '../rpc/errors';

export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export class OpenAiError extends Error {
  readonly status: number;
  readonly type: string;
  readonly param: string | null;
  readonly code: string | null;

  constructor(status: number, type: string, message: string, param: string | null = null, code: string | null = null) {
    super(message);
    this.name = 'OpenAiError';
    this.status = status;
    this.type = type;
    this.param = param;
    this.code = code;
  }

  toBody(): OpenAiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export function badRequest(message: string, param: string | null = null, code: string | null = null): OpenAiError {
  return new OpenAiError(400, 'invalid_request_error', message, param, code);
}

export function unauthorized(): OpenAiError {
  return new OpenAiError(401, 'invalid_request_error', 'Missing or incorrect API key: send it as "Authorization: Bearer <key>".', null, 'invalid_api_key');
}

export function modelNotFound(model: string, loaded: string[]): OpenAiError {
  const known = loaded.length > 0 ? `loaded: ${loaded.join(', ')}` : 'no model is loaded';
  return new OpenAiError(404, 'invalid_request_error', `The model '${model}' does not exist (${known}).`, 'model', 'model_not_found');
}

export function notFound(message: string): OpenAiError {
  return new OpenAiError(404, 'invalid_request_error', message, null, 'not_found');
}

/** The code of each server error the /v1 routes can meet, by its JSON-RPC code. */
const STATUS_BY_RPC_CODE = new Map<number, { status: number; type: string; code: string }>([
  [SERVER_ERRORS.QUEUE_FULL.code, { status: 429, type: 'rate_limit_error', code: 'queue_full' }],
  [SERVER_ERRORS.SHUTTING_DOWN.code, { status: 503, type: 'server_error', code: 'shutting_down' }],
  [SERVER_ERRORS.MODEL_DESTROYED.code, { status: 404, type: 'invalid_request_error', code: 'model_not_found' }],
  [SERVER_ERRORS.UNKNOWN_HANDLE.code, { status: 404, type: 'invalid_request_error', code: 'model_not_found' }],
  [SERVER_ERRORS.NO_MODEL.code, { status: 404, type: 'invalid_request_error', code: 'model_not_found' }],
  [SERVER_ERRORS.REQUEST_TIMEOUT.code, { status: 504, type: 'server_error', code: 'timeout' }],
  [SERVER_ERRORS.REQUEST_CANCELLED.code, { status: 499, type: 'server_error', code: 'cancelled' }],
  [SERVER_ERRORS.REQUEST_ABORTED.code, { status: 500, type: 'server_error', code: 'aborted' }],
  [INVALID_PARAMS, { status: 400, type: 'invalid_request_error', code: 'invalid_value' }],
]);

/** Whatever the engine threw, as an OpenAI error; the JSON-RPC detail goes into the message. */
export function toOpenAiError(error: unknown): OpenAiError {
  if (error instanceof OpenAiError) return error;
  if (error instanceof RpcError) {
    const mapped = STATUS_BY_RPC_CODE.get(error.code) ?? { status: 500, type: 'server_error', code: 'runtime_error' };
    const data = error.data as { detail?: string; reason?: string; field?: string } | undefined;
    const detail = data?.detail ?? (data?.reason ? `${data.field ?? ''}: ${data.reason}` : undefined);
    return new OpenAiError(mapped.status, mapped.type, detail ? `${error.message}: ${detail}` : error.message, data?.field ?? null, mapped.code);
  }
  const message = error instanceof Error ? error.message : String(error);
  return new OpenAiError(500, 'server_error', message, null, 'internal_error');
}
