// The request record of every JSON-RPC call (lib/core/request-records.ts), made from what the
// engine reports once the call's reply is settled (lib/rpc/engine.ts EndedCall). A call answered
// at once with { stream_id } (rkllm_run_async, a stream that is polled) is recorded when its run
// ends: that is when the request is over, and when its tokens are known.

import type { ServerCore } from '../core/core';
import { RequestRecorder, type RunFigures } from '../core/request-records';
import type { WireRunResult } from '../core/run-result';
import type { Connection } from '../rpc/connection';
import type { EndedCall } from '../rpc/engine';
import { INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, RpcError } from '../rpc/errors';
import type { MethodContext } from './context';
import { SERVER_ERRORS } from './error-table';

/** How much of an unknown method's name a log line shows. */
const MAX_SHOWN_METHOD = 100;

const NAME_BY_CODE = new Map<number, string>([
  [PARSE_ERROR, 'PARSE_ERROR'],
  [INVALID_REQUEST, 'INVALID_REQUEST'],
  [METHOD_NOT_FOUND, 'METHOD_NOT_FOUND'],
  [INVALID_PARAMS, 'INVALID_ARGUMENT'],
  [INTERNAL_ERROR, 'INTERNAL'],
  ...Object.entries(SERVER_ERRORS).map(([name, entry]): [number, string] => [entry.code, name]),
]);

/** An engine error as a record's code and message: its name, and the detail its data carries. */
function noteRpcError(recorder: RequestRecorder, error: RpcError): void {
  const data = (typeof error.data === 'object' && error.data !== null ? error.data : {}) as Record<string, unknown>;
  const detail = [data.field, data.reason ?? data.detail ?? data.method].filter((part) => typeof part === 'string').join(': ');
  recorder.noteError(new Error(detail === '' ? error.message : `${error.message}: ${detail}`), NAME_BY_CODE.get(error.code) ?? `rpc_${error.code}`);
}

function figuresOf(result: WireRunResult, run: NonNullable<MethodContext['notes']['run']>): RunFigures {
  return { job: run.job, promptTokens: result.perf.prefill_tokens, generatedTokens: result.token_count, perf: result.perf };
}

function isRunResult(value: unknown): value is WireRunResult {
  return typeof value === 'object' && value !== null && typeof (value as WireRunResult).token_count === 'number' && typeof (value as WireRunResult).perf === 'object';
}

/** Makes and emits the record of one ended call. */
export function recordCall(core: ServerCore, connection: Connection, call: EndedCall<MethodContext>): void {
  const route = call.method === undefined ? 'invalid request' : call.known ? call.method : 'unknown method';
  // An unknown method is one label; the log still says what the client sent (bounded).
  const asked = call.method !== undefined && !call.known ? { path: call.method.slice(0, MAX_SHOWN_METHOD) } : {};
  const recorder = new RequestRecorder(core.requests, { frontEnd: 'jsonrpc', transport: connection.transport, route, control: call.cheap, ...asked }, call.startedAt);
  const handle = (call.params as { handle?: unknown } | undefined)?.handle;
  recorder.noteModel(call.context?.notes.model ?? (typeof handle === 'string' ? handle : undefined));
  if (call.error !== undefined) {
    if (call.error instanceof RpcError) noteRpcError(recorder, call.error);
    else recorder.noteError(call.error);
    recorder.finish();
    return;
  }
  const figures = call.context?.notes.figures;
  if (figures !== undefined) recorder.noteRun(figures);
  const run = call.context?.notes.run;
  if (run === undefined) {
    recorder.finish();
    return;
  }
  if (isRunResult(call.result)) {
    recorder.noteRun(figuresOf(call.result, run));
    recorder.finish();
    return;
  }
  // Answered with { stream_id }: the request goes on until its run ends.
  run.result.then(
    (result) => {
      recorder.noteRun(figuresOf(result, run));
      recorder.finish();
    },
    (error: unknown) => {
      recorder.noteError(error);
      recorder.finish();
    },
  );
}
