// OpenAI's error object ({ error: { message, type, param, code } }) with the HTTP status that
// goes with it. Every failure on the /v1 routes becomes one of these before it is written, so a
// client SDK sees the class of error it expects (BadRequestError, NotFoundError, ...).

import { overflowOf, type ContextOverflow } from '../core/context-budget';
import { RkllmError, type RkllmErrorCode } from '../errors';

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

export function modelNotFound(model: string, names: string[]): OpenAiError {
  const known = names.length > 0 ? `the models are: ${names.join(', ')}` : 'no model is served';
  return new OpenAiError(404, 'invalid_request_error', `The model '${model}' does not exist (${known}).`, 'model', 'model_not_found');
}

/** OpenAI's 400 for a conversation the model's context cannot hold, with the numbers and what to change. */
export function contextLengthExceededError(overflow: ContextOverflow): OpenAiError {
  const { contextLength, promptTokens, reserve } = overflow;
  const asked =
    promptTokens === undefined
      ? 'your messages do not fit it'
      : `your messages come to ${overflow.estimated ? 'about ' : ''}${promptTokens} tokens${reserve > 0 ? ` and ${reserve} are asked for the completion` : ''}`;
  const remedy =
    overflow.truncation === 'refuse'
      ? "Shorten the conversation, raise the model's max_context_len (--ctx-size), or set the model's truncation to 'drop_oldest' to drop the oldest turns."
      : "Even the last message alone does not fit: shorten it, or raise the model's max_context_len (--ctx-size).";
  return new OpenAiError(400, 'invalid_request_error', `This model's maximum context length is ${contextLength} tokens. However, ${asked}. ${remedy}`, 'messages', 'context_length_exceeded');
}

export function notFound(message: string): OpenAiError {
  return new OpenAiError(404, 'invalid_request_error', message, null, 'not_found');
}

interface HttpMapping {
  status: number;
  type: string;
  code: string;
}

const SERVER_FAULT: HttpMapping = { status: 500, type: 'server_error', code: 'runtime_error' };
const MODEL_NOT_FOUND: HttpMapping = { status: 404, type: 'invalid_request_error', code: 'model_not_found' };

/** The one table from the domain error to HTTP and OpenAI's error types; unlisted codes are server faults. */
const HTTP_BY_CODE: Partial<Readonly<Record<RkllmErrorCode, HttpMapping>>> = {
  INVALID_ARGUMENT: { status: 400, type: 'invalid_request_error', code: 'invalid_value' },
  QUEUE_FULL: { status: 429, type: 'rate_limit_error', code: 'queue_full' },
  SHUTTING_DOWN: { status: 503, type: 'server_error', code: 'shutting_down' },
  RESOURCE_EXHAUSTED: { status: 503, type: 'server_error', code: 'resource_exhausted' },
  TOO_MANY_MODELS: { status: 503, type: 'server_error', code: 'too_many_models' },
  RUNTIME_FAILED: { status: 503, type: 'server_error', code: 'runtime_failed' },
  MODEL_DESTROYED: MODEL_NOT_FOUND,
  UNKNOWN_HANDLE: MODEL_NOT_FOUND,
  NO_MODEL: MODEL_NOT_FOUND,
  REQUEST_TIMEOUT: { status: 504, type: 'server_error', code: 'timeout' },
  REQUEST_CANCELLED: { status: 499, type: 'server_error', code: 'cancelled' },
  REQUEST_ABORTED: { status: 500, type: 'server_error', code: 'aborted' },
  RUN_ABORTED: { status: 500, type: 'server_error', code: 'aborted' },
  UNAUTHORIZED: { status: 401, type: 'invalid_request_error', code: 'invalid_api_key' },
  FORBIDDEN: { status: 403, type: 'invalid_request_error', code: 'forbidden' },
  INTERNAL: { status: 500, type: 'server_error', code: 'internal_error' },
};

/** Whatever the core threw, as an OpenAI error; the domain error's own sentence is the message. */
export function toOpenAiError(error: unknown): OpenAiError {
  if (error instanceof OpenAiError) return error;
  if (error instanceof RkllmError) {
    if (error.code === 'CONTEXT_LENGTH_EXCEEDED') return contextLengthExceededError(overflowOf(error));
    const mapped = HTTP_BY_CODE[error.code] ?? SERVER_FAULT;
    const message = error.code === 'INTERNAL' ? 'Internal error.' : error.message;
    return new OpenAiError(mapped.status, mapped.type, message, error.field ?? null, mapped.code);
  }
  return new OpenAiError(500, 'server_error', 'Internal error.', null, 'internal_error');
}
