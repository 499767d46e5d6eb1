// The JSON-RPC shapes a client sees: what arrives (loosely typed: a server may send anything),
// replies, and the params of an rkllm_result notification (docs/protocol.md, Streams).

import type { ErrorResponse, RequestId, SuccessResponse } from '../rpc/envelope';
import type { ErrorObject } from '../rpc/errors';

export type { RequestId, ErrorObject };

/** One received JSON-RPC message as parsed (batch members are reported one by one). */
export interface IncomingMessage {
  jsonrpc?: unknown;
  id?: RequestId;
  method?: string;
  params?: unknown;
  result?: unknown;
  error?: ErrorObject;
  [key: string]: unknown;
}

/** The reply to one request, success or error, as received. */
export type ReplyMessage = SuccessResponse | ErrorResponse;

/** LLMCallState (rkllm-abi.md). */
export const CALL_STATE = { NORMAL: 0, WAITING: 1, FINISH: 2, ERROR: 3 } as const;

/** The params of one rkllm_result notification. */
export interface ResultChunk {
  stream_id: string;
  /** The id of the request that started the stream. */
  request_id: RequestId;
  /** From 0, without gaps. */
  seq: number;
  /** 0 normal, 1 waiting (inside a multi-byte character), 2 finished, 3 failed. */
  state: number;
  /** Whole UTF-8 only; "" on a waiting token and on the last chunk. */
  text: string;
  token_id: number;
  /** The last chunk of a finished run. */
  perf?: Record<string, number>;
  /** The last chunk of a run that failed in the runtime (state 3). */
  error?: { code: number; message: string };
  /** The last chunk of a run that ended early; `reason` says why (cancel, timeout, ...). */
  aborted?: boolean;
  reason?: string;
  /** Only from a server with test hooks: when the runtime reported the token (CLOCK_MONOTONIC µs). */
  callback_us?: number;
  [key: string]: unknown;
}

/** The last chunk of a stream: finished, failed, or ended early. */
export function isFinalChunk(chunk: Pick<ResultChunk, 'state' | 'aborted'>): boolean {
  return chunk.state === CALL_STATE.FINISH || chunk.state === CALL_STATE.ERROR || chunk.aborted === true;
}

export function isReply(message: IncomingMessage): message is IncomingMessage & ReplyMessage {
  return 'id' in message && message.method === undefined && ('result' in message || 'error' in message);
}

/** A map key that tells 1 from "1". */
export function idKey(id: RequestId | undefined): string {
  return JSON.stringify(id ?? null);
}
