// The request record of every /api request (lib/core/request-records.ts): started as the request
// arrives, finished when the response's last byte is written or its client leaves. The routes
// only note what they learn (model, run, error) on the response's recorder (requestRecords.of).

import { HttpRequestRecords } from '../core/request-records';
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

/** Each response's record; an error is recorded with the domain code, else this front end's own. */
export const requestRecords = new HttpRequestRecords(
  'ollama',
  routeOf,
  (route) => CONTROL_ROUTES.has(route.slice(route.indexOf(' ') + 1)),
  (error) => (error instanceof OllamaError ? `http_${error.status}` : undefined),
);
