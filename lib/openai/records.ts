// The request record of every /v1 request (lib/core/request-records.ts): started as the request
// arrives, finished when the response's last byte is written or its client leaves. The routes
// only note what they learn (model, run, error) on the response's recorder.

import type * as http from 'http';
import { HttpRequestRecords, type RequestRecorder, type RequestRecords } from '../core/request-records';
import { OpenAiError } from './errors';

/** The routes as metric labels: a bounded set, whatever path a client sends. */
const FIXED_ROUTES = new Set(['/v1/models', '/v1/chat/completions', '/v1/completions', '/v1/embeddings']);

function routeOf(path: string): string {
  if (FIXED_ROUTES.has(path)) return path;
  if (/^\/v1\/models\/.+$/.test(path)) return '/v1/models/{model}';
  return 'unknown route';
}

const recorders = new HttpRequestRecords('openai', routeOf, (route) => route === 'GET /v1/models' || route === 'GET /v1/models/{model}');

/** Starts the record of a request that reached these routes. Idempotent per response. */
export function recordRequest(records: RequestRecords, response: http.ServerResponse, path: string): RequestRecorder {
  return recorders.start(records, response, path);
}

/** Notes the error the response answers with: the domain code when there is one, else OpenAI's own. */
export function noteError(response: http.ServerResponse, error: unknown): void {
  recorders.of(response)?.noteError(error, error instanceof OpenAiError ? (error.code ?? `http_${error.status}`) : undefined);
}

export function recorderOf(response: http.ServerResponse): RequestRecorder | undefined {
  return recorders.of(response);
}
