// One error class for everything the native core and its TypeScript face report. The addon
// constructs it too (the class is handed to C++ at load time), so every failure carries a stable
// `code` that callers can branch on, whichever side raised it.

export const RKLLM_ERROR_CODES = [
  /** A value passed in has the wrong type or range; the message names the field. */
  'INVALID_ARGUMENT',
  /** No runtime library at the given path, or none found by the dynamic loader. */
  'RUNTIME_NOT_FOUND',
  /** The file exists but dlopen refused it (the message carries dlopen's own words). */
  'RUNTIME_LOAD_FAILED',
  /** The library lacks one of the 15 RKLLM functions. */
  'RUNTIME_SYMBOL_MISSING',
  /** The ABI of the library cannot be told; pass abi '1.2' or '1.3'. */
  'RUNTIME_ABI_UNKNOWN',
  /** The library is a known release whose ABI is not supported (1.1.x, 1.2.0). */
  'RUNTIME_ABI_UNSUPPORTED',
  /** The ABI asked for contradicts the one the library declares. */
  'RUNTIME_ABI_MISMATCH',
  /** rkllm_init failed. */
  'MODEL_INIT_FAILED',
  /** The model was destroyed; nothing more can run on it. */
  'MODEL_DESTROYED',
  /** A run ended in the runtime's error state, or rkllm_run failed. */
  'RUN_FAILED',
  /** A run was aborted or cancelled before it finished. */
  'RUN_ABORTED',
  /** An RKLLM function returned a non-zero code; the message names the function. */
  'CALL_FAILED',
  /** No native build or prebuild fits this platform. */
  'ADDON_NOT_FOUND',
] as const;

export type RkllmErrorCode = (typeof RKLLM_ERROR_CODES)[number];

export class RkllmError extends Error {
  readonly code: RkllmErrorCode;

  constructor(message: string, code: RkllmErrorCode) {
    super(message);
    this.name = 'RkllmError';
    this.code = code;
  }
}

export function isRkllmError(value: unknown, code?: RkllmErrorCode): value is RkllmError {
  return value instanceof RkllmError && (code === undefined || value.code === code);
}
