// Ollama's error answer: a JSON object `{"error": "<sentence>"}` with the HTTP status that goes
// with it (ollama-js throws a ResponseError carrying both). Every failure on the /api routes
// becomes one of these before it is written.

import { overflowOf } from '../core/context-budget';
import { RkllmError, type RkllmErrorCode } from '../errors';

export class OllamaError extends Error {
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.name = 'OllamaError';
    this.status = status;
  }

  toBody(): { error: string } {
    return { error: this.message };
  }
}

export function badRequest(message: string): OllamaError {
  return new OllamaError(400, message);
}

export function modelNotFound(model: string, names: readonly string[]): OllamaError {
  const known = names.length > 0 ? `the models are: ${names.join(', ')}` : 'no model is served';
  return new OllamaError(404, `model '${model}' not found (${known})`);
}

/** The one table from the domain error to Ollama's statuses; unlisted codes are server faults (500). */
const STATUS_BY_CODE: Partial<Readonly<Record<RkllmErrorCode, number>>> = {
  INVALID_ARGUMENT: 400,
  CONTEXT_LENGTH_EXCEEDED: 400,
  QUEUE_FULL: 429,
  SHUTTING_DOWN: 503,
  RESOURCE_EXHAUSTED: 503,
  TOO_MANY_MODELS: 503,
  RUNTIME_FAILED: 503,
  MODEL_DESTROYED: 404,
  UNKNOWN_HANDLE: 404,
  NO_MODEL: 404,
  REQUEST_TIMEOUT: 504,
  REQUEST_CANCELLED: 499,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
};

/** Whatever the core threw, as an Ollama error; the domain error's own sentence is the message. */
export function toOllamaError(error: unknown): OllamaError {
  if (error instanceof OllamaError) return error;
  if (error instanceof RkllmError) {
    if (error.code === 'CONTEXT_LENGTH_EXCEEDED') {
      const { contextLength, promptTokens } = overflowOf(error);
      const asked = promptTokens === undefined ? '' : ` (the request comes to about ${promptTokens} tokens)`;
      return new OllamaError(400, `the input does not fit the model's context of ${contextLength} tokens${asked}, even with the oldest messages dropped: shorten it or raise the model's max_context_len (--ctx-size)`);
    }
    const status = STATUS_BY_CODE[error.code] ?? 500;
    return new OllamaError(status, error.code === 'INTERNAL' ? 'internal error' : error.message);
  }
  return new OllamaError(500, 'internal error');
}
