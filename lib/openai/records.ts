// The request record of every /v1 request (lib/core/request-records.ts): started as the request
// arrives, finished when the response's last byte is written or its client leaves. The routes
// only note what they learn (model, run, error) on the response's recorder (requestRecords.of).

import { HttpRequestRecords } from '../core/request-records';
import { OpenAiError } from './errors';

/** The routes as metric labels: a bounded set, whatever path a client sends. */
const FIXED_ROUTES = new Set(['/v1/models', '/v1/chat/completions', '/v1/completions', '/v1/embeddings']);

function routeOf(path: string): string {
  if (FIXED_ROUTES.has(path)) return path;
  if (/^\/v1\/models\/.+$/.test(path)) return '/v1/models/{model}';
  return 'unknown route';
}

/** Each response's record; an error is recorded with the domain code, else this front end's own. */
export const requestRecords = new HttpRequestRecords(
  'openai',
  routeOf,
  (route) => route === 'GET /v1/models' || route === 'GET /v1/models/{model}',
  (error) => (error instanceof OpenAiError ? (error.code ?? `http_${error.status}`) : undefined),
);
