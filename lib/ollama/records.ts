// The request record of every /api request (lib/core/request-records.ts): started as the request
// arrives, finished when the response's last byte is written or its client leaves. The routes
// only note what they learn (model, run, error) on the response's recorder.

import type * as http from 'http';
import { HttpRequestRecords, type RequestRecorder, type RequestRecords } from '../core/request-records';
import { OllamaError } from './errors';

/** The routes as metric labels: a bounded set, whatever path a client sends. */
const FIXED_ROUTES = new Set([
  '/api/version',
  '/api/tags',
  '/api/ps',
  '/api/show',
  '/api/chat',
  '/api/generate',
  '/api/embed',
  '/api/embeddings',
  '/api/pull',
  '/api/push',
  '/api/create',
  '/api/copy',
  '/api/delete',
  '/api/blobs',
]);
/** Listings and version checks: clients poll them, so their successes are logged at debug. */
const CONTROL_ROUTES = new Set(['/api/version', '/api/tags', '/api/ps', '/api/show']);

function routeOf(path: string): string {
  if (FIXED_ROUTES.has(path)) return path;
  if (path.startsWith('/api/blobs/')) return '/api/blobs/{digest}';
  return 'unknown route';
}

const recorders = new HttpRequestRecords('ollama', routeOf, (route) => CONTROL_ROUTES.has(route.slice(route.indexOf(' ') + 1)));

/** Starts the record of a request that reached these routes. Idempotent per response. */
export function recordRequest(records: RequestRecords, response: http.ServerResponse, path: string): RequestRecorder {
  return recorders.start(records, response, path);
}

/** Notes the error the response answers with: the domain code when there is one, else the HTTP status's. */
export function noteError(response: http.ServerResponse, error: unknown): void {
  recorders.of(response)?.noteError(error, error instanceof OllamaError ? `http_${error.status}` : undefined);
}

export function recorderOf(response: http.ServerResponse): RequestRecorder | undefined {
  return recorders.of(response);
}
