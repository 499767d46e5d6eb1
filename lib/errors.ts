// The one domain error of rkllm-serve. The native core, the library layer and the server core all
// throw it; the addon constructs it too (the class is handed to C++ at load time). Its `code` is
// stable and wire-agnostic: each front end (JSON-RPC in lib/methods, HTTP/OpenAI in lib/openai)
// maps codes to its own wire in one table, and reads the structured fields instead of parsing
// the message.

export const RKLLM_ERROR_CODES = [
  // --- Raised by the native core and the library layer ---
  /** A value passed in has the wrong type or range; `field` names it, `reason` says why. */
  'INVALID_ARGUMENT',
  /** No runtime library at the given path, or none found by the dynamic loader. */
  'RUNTIME_NOT_FOUND',
  /** The file exists but dlopen refused it (the message carries dlopen's own words). */
  'RUNTIME_LOAD_FAILED',
  /** The file is an ELF library for another machine or word size (aarch64 on x86-64, armhf on aarch64). */
  'RUNTIME_WRONG_ARCHITECTURE',
  /** The library lacks one of the 15 RKLLM functions. */
  'RUNTIME_SYMBOL_MISSING',
  /** The ABI of the library cannot be told; pass its ABI or release number ('1.3', '1.3.1', ...). */
  'RUNTIME_ABI_UNKNOWN',
  /** The library is a release whose ABI is not supported (1.1.x, 1.2.0), or one not known. */
  'RUNTIME_ABI_UNSUPPORTED',
  /** The ABI asked for contradicts the one the library declares. */
  'RUNTIME_ABI_MISMATCH',
  /** rkllm_init failed. */
  'MODEL_INIT_FAILED',
  /** The model was destroyed; nothing more can run on it. */
  'MODEL_DESTROYED',
  /** A run ended in the runtime's error state, or rkllm_run failed. */
  'RUN_FAILED',
  /** A run was aborted (rkllm_abort, or its signal) before it finished. */
  'RUN_ABORTED',
  /** An RKLLM function returned a non-zero code; `fn` and `returnCode` say which and what. */
  'CALL_FAILED',
  /** No native build or prebuild fits this platform. */
  'ADDON_NOT_FOUND',
  /** The process could not start a thread the call needs (its thread limit); nothing was done. */
  'RESOURCE_EXHAUSTED',
  /**
   * The model's runtime crashed, exited or hung in its host process; `facts` say how (reason,
   * signal, exit_code) and whether the model is restarting or has failed for good.
   */
  'RUNTIME_FAILED',

  // --- Raised by the server core and the front ends ---
  /** The model's queue is full. */
  'QUEUE_FULL',
  /** No model is loaded and the request named none. */
  'NO_MODEL',
  /** No model is loaded under the handle named. */
  'UNKNOWN_HANDLE',
  /** A model is already loaded (or loading) under the handle asked for. */
  'HANDLE_IN_USE',
  /** Another model already uses the base_domain_id asked for. */
  'DOMAIN_IN_USE',
  /** rkllm_init beyond the models loaded or loading at once; `facts` name the limit and its flag. */
  'TOO_MANY_MODELS',
  /** The request was still queued or running when the server's timeout passed. */
  'REQUEST_TIMEOUT',
  /** The request was cancelled (cancel, its connection closed, its stream expired). */
  'REQUEST_CANCELLED',
  /** The request's run was stopped by rkllm_abort. */
  'REQUEST_ABORTED',
  /** No such stream: unknown, expired, or its connection closed. */
  'STREAM_NOT_FOUND',
  /** A new stream would pass a bound on kept streams (per client, overall) or their buffered bytes. */
  'TOO_MANY_STREAMS',
  /** A conversation the model's context cannot hold; `facts`: context_length, prompt_tokens, reserve, estimated, truncation. */
  'CONTEXT_LENGTH_EXCEEDED',
  /** --model-control owner refused a model-wide call that would touch another client's work or model. */
  'MODEL_CONTROL_REFUSED',
  /** A message (or reply) is larger than the server accepts. */
  'MESSAGE_TOO_LARGE',
  /** The server is shutting down. */
  'SHUTTING_DOWN',
  /** The transport named is not running in this server. */
  'TRANSPORT_NOT_RUNNING',
  /** The transport is at its connection bound. */
  'TOO_MANY_CONNECTIONS',
  /** The API key is missing or wrong. */
  'UNAUTHORIZED',
  /** A UDP sender has not yet shown it can receive at its address: it must echo the cookie (`facts.cookie`). */
  'ADDRESS_NOT_VERIFIED',
  /** A browser protection refused the request: its Host or Origin is not allowed. */
  'FORBIDDEN',
  /** A self-test of the server (test_connection_drop) could not run to its end. */
  'PROBE_FAILED',
  /** Something the server itself got wrong; the message is for the log, never the wire. */
  'INTERNAL',
] as const;

export type RkllmErrorCode = (typeof RKLLM_ERROR_CODES)[number];

export interface RkllmErrorDetails {
  /** INVALID_ARGUMENT: the argument at fault, as the caller wrote it ("rkllm_input.token_input"). */
  field?: string;
  /** INVALID_ARGUMENT: what is wrong with it, without the field ("must not be empty"). */
  reason?: string;
  /** CALL_FAILED: the RKLLM C function that returned non-zero. */
  fn?: string;
  /** CALL_FAILED: its return code. */
  returnCode?: number;
  /** Further facts a front end may show (handle, limit, transport, ...), wire-agnostic and JSON-safe. */
  facts?: Readonly<Record<string, unknown>>;
}

export class RkllmError extends Error {
  readonly code: RkllmErrorCode;
  readonly field: string | undefined;
  readonly reason: string | undefined;
  readonly fn: string | undefined;
  readonly returnCode: number | undefined;
  readonly facts: Readonly<Record<string, unknown>> | undefined;

  constructor(message: string, code: RkllmErrorCode, details: RkllmErrorDetails = {}) {
    super(message);
    this.name = 'RkllmError';
    this.code = code;
    this.field = details.field;
    this.reason = details.reason;
    this.fn = details.fn;
    this.returnCode = details.returnCode;
    this.facts = details.facts;
  }

  /** The same error with its field renamed (a front end that took the value from elsewhere). */
  withField(field: string): RkllmError {
    const reason = this.reason ?? this.message;
    const copy = new RkllmError(`${field} ${reason}`, this.code, { ...this.details(), field, reason });
    copy.stack = this.stack;
    return copy;
  }

  details(): RkllmErrorDetails {
    return { field: this.field, reason: this.reason, fn: this.fn, returnCode: this.returnCode, facts: this.facts };
  }
}

export function isRkllmError(value: unknown, code?: RkllmErrorCode): value is RkllmError {
  return value instanceof RkllmError && (code === undefined || value.code === code);
}

/** INVALID_ARGUMENT naming the field; the message reads "field reason". */
export function invalidArgument(field: string, reason: string, facts?: Record<string, unknown>): RkllmError {
  return new RkllmError(`${field} ${reason}`, 'INVALID_ARGUMENT', { field, reason, facts });
}
