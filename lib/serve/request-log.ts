// One log line per finished request, from the records every front end emits (lib/core/request-records.ts):
// "POST /v1/chat/completions 200" with the figures as fields, as llama.cpp's and Ollama's servers
// log a request. Levels: info for an answered request, warn for one refused or failed for the
// client's reason (4xx, a JSON-RPC error of the request), error for the server's or runtime's
// failures (5xx, RUN_FAILED, RUNTIME_FAILED, ...); the successes of cheap control calls (JSON-RPC
// poll, cancel and listings, /v1/models, Ollama's version and listings) at debug, so that a
// client polling its stream does not flood the log.

import type { Logger } from 'pino';
import type { RequestRecord, RequestRecords } from '../core/request-records';

/** Domain codes that are the server's or the runtime's failure, not the request's fault. */
const SERVER_FAULTS = new Set([
  'INTERNAL',
  'RUN_FAILED',
  'RUNTIME_FAILED',
  'MODEL_INIT_FAILED',
  'CALL_FAILED',
  'RESOURCE_EXHAUSTED',
  'RUNTIME_NOT_FOUND',
  'RUNTIME_LOAD_FAILED',
  'RUNTIME_WRONG_ARCHITECTURE',
  'RUNTIME_SYMBOL_MISSING',
  'RUNTIME_ABI_UNKNOWN',
  'RUNTIME_ABI_UNSUPPORTED',
  'RUNTIME_ABI_MISMATCH',
  'ADDON_NOT_FOUND',
]);

/** The status a request ended with: its HTTP status, else 'ok', 'cancelled' or its error's code. */
export function statusOf(record: RequestRecord): string {
  if (record.httpStatus !== undefined) return String(record.httpStatus);
  if (record.outcome === 'error') return record.errorCode ?? 'error';
  return record.outcome;
}

export function levelOf(record: RequestRecord): 'debug' | 'info' | 'warn' | 'error' {
  if (record.outcome === 'ok') return record.control === true ? 'debug' : 'info';
  if (record.outcome === 'cancelled') return 'info';
  const serverFault = (record.httpStatus !== undefined && record.httpStatus >= 500) || SERVER_FAULTS.has(record.errorCode ?? '');
  return serverFault ? 'error' : 'warn';
}

function fieldsOf(record: RequestRecord, status: string): Record<string, unknown> {
  const fields: Record<string, unknown> = { front_end: record.frontEnd, transport: record.transport, route: record.route, model: record.model, status };
  if (record.outcome !== 'ok') fields.outcome = record.outcome;
  if (record.promptTokens !== undefined) fields.prompt_tokens = record.promptTokens;
  if (record.generatedTokens !== undefined) fields.generated_tokens = record.generatedTokens;
  if (record.ttftMs !== undefined) fields.ttft_ms = record.ttftMs;
  if (record.tokensPerSecond !== undefined) fields.tokens_per_s = record.tokensPerSecond;
  fields.duration_ms = record.durationMs;
  if (record.errorCode !== undefined) fields.error_code = record.errorCode;
  if (record.errorMessage !== undefined) fields.error_message = record.errorMessage;
  return fields;
}

export function logRequests(records: RequestRecords, logger: Logger): void {
  records.on((record) => {
    const level = levelOf(record);
    if (!logger.isLevelEnabled(level)) return;
    const status = statusOf(record);
    // A stream the client left after a 200 says both.
    const shown = record.outcome === 'cancelled' && record.httpStatus !== undefined ? `${status} cancelled` : status;
    logger[level](fieldsOf(record, status), `${record.path ?? record.route} ${shown}`);
  });
}
