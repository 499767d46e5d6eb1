// The errors a JSON-RPC 2.0 reply carries: the five of the spec, and the error object. A front
// end's own codes (-32000..-32099) are its business (lib/methods/error-table.ts): this module is
// generic.

export const PARSE_ERROR = -32700;
export const INVALID_REQUEST = -32600;
export const METHOD_NOT_FOUND = -32601;
export const INVALID_PARAMS = -32602;
export const INTERNAL_ERROR = -32603;

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

/** -32602 naming the offending field the way clients wrote it ("param.model_path"). */
export function invalidParams(field: string, reason: string): RpcError {
  return new RpcError(INVALID_PARAMS, 'Invalid params', { field, reason });
}
