// The errors a JSON-RPC reply can carry: the five of the 2.0 spec and the server's own table in
// -32000..-32099. Every failure inside the server becomes an RpcError before it reaches the wire,
// so a reply's code is always one of those listed here (and in docs/protocol.md).

export const PARSE_ERROR = -32700;
export const INVALID_REQUEST = -32600;
export const METHOD_NOT_FOUND = -32601;
export const INVALID_PARAMS = -32602;
export const INTERNAL_ERROR = -32603;

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
} as const;

export type ServerErrorName = keyof typeof SERVER_ERRORS;

export interface ErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

export class RpcError extends Error {
  readonly code: number;
  readonly data: unknown;

  constructor(code: number, message: string, data?: unknown) {
    super(message);
    this.name = 'RpcError';
    this.code = code;
    this.data = data;
  }

  toJSON(): ErrorObject {
    return this.data === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, data: this.data };
  }
}

/** One of the server's own errors; `detail` (a sentence about this case) goes in data.detail. */
export function serverError(name: ServerErrorName, detail?: string, data?: Record<string, unknown>): RpcError {
  const entry = SERVER_ERRORS[name];
  const payload = detail === undefined && data === undefined ? undefined : { ...data, ...(detail === undefined ? {} : { detail }) };
  return new RpcError(entry.code, entry.message, payload);
}

/** -32602 naming the offending field the way clients wrote it ("param.model_path"). */
export function invalidParams(field: string, reason: string): RpcError {
  return new RpcError(INVALID_PARAMS, 'Invalid params', { field, reason });
}
