// GET /metrics: the server's figures in Prometheus' text format, with prom-client on a registry
// of its own (never the library's global one, so an embedder's metrics and ours stay apart).
// Request counts, tokens and timings come from the request records every front end emits
// (lib/core/request-records.ts); queue depth, models and host restarts are read from the core at
// each scrape; load times from the model registry's load events. docs/metrics.md lists them all.
// The HTTP transport checks the API key before a route is reached, so /metrics is behind it too.

import type * as http from 'http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ServerCore } from '../core/core';
import type { RequestRecord } from '../core/request-records';
import type { HttpRoutes } from '../transports/http';
import { statusOf } from './request-log';

export const METRICS_PATH = '/metrics';

/** 10 ms to 10 s: a first token comes after the queue and the prefill. */
const TTFT_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** 1 ms to 1 s between two tokens. */
const TOKEN_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
/** rkllm_init takes 30-60 s for a 1.5B model on an RK3588 (docs/architecture.md); the emulator, milliseconds. */
const LOAD_BUCKETS = [0.1, 0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180];

function writeText(response: http.ServerResponse, status: number, text: string, headers: http.OutgoingHttpHeaders = {}): void {
  if (response.headersSent || response.destroyed) return;
  response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  response.end(text);
}

export class Metrics implements HttpRoutes {
  readonly registry = new Registry();
  readonly #requests: Counter<'front_end' | 'route' | 'status'>;
  readonly #promptTokens: Counter<'model'>;
  readonly #generatedTokens: Counter<'model'>;
  readonly #ttft: Histogram<'model'>;
  readonly #perToken: Histogram<'model'>;
  readonly #loadSeconds: Histogram<'outcome'>;

  constructor(core: ServerCore) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.#requests = new Counter({
      name: 'rkllm_requests_total',
      help: 'Requests answered, by front end (jsonrpc, openai, ollama), route or method, and status (HTTP status, or ok, cancelled, or the error code)',
      labelNames: ['front_end', 'route', 'status'],
      registers,
    });
    this.#promptTokens = new Counter({ name: 'rkllm_prompt_tokens_total', help: 'Prompt tokens the runtime prefilled, by model', labelNames: ['model'], registers });
    this.#generatedTokens = new Counter({ name: 'rkllm_generated_tokens_total', help: 'Tokens generated, by model', labelNames: ['model'], registers });
    this.#ttft = new Histogram({
      name: 'rkllm_time_to_first_token_seconds',
      help: "From a request's arrival to its first token (queue wait and prefill included), by model",
      labelNames: ['model'],
      buckets: TTFT_BUCKETS,
      registers,
    });
    this.#perToken = new Histogram({
      name: 'rkllm_time_per_output_token_seconds',
      help: "Time between two generated tokens, one observation per request (its mean), by model",
      labelNames: ['model'],
      buckets: TOKEN_BUCKETS,
      registers,
    });
    this.#loadSeconds = new Histogram({
      name: 'rkllm_model_load_seconds',
      help: 'How long rkllm_init took, by outcome (loaded, failed)',
      labelNames: ['outcome'],
      buckets: LOAD_BUCKETS,
      registers,
    });
    new Gauge({
      name: 'rkllm_requests_queued',
      help: "Inference requests waiting in the models' queues",
      registers,
      collect() {
        this.set(core.stats().queued);
      },
    });
    new Gauge({
      name: 'rkllm_requests_running',
      help: 'Inference requests running on a model',
      registers,
      collect() {
        this.set(core.stats().running);
      },
    });
    new Gauge({
      name: 'rkllm_models_loaded',
      help: 'Models loaded',
      registers,
      collect() {
        this.set(core.models.size);
      },
    });
    new Gauge({
      name: 'rkllm_models_loading',
      help: 'Models being loaded (rkllm_init in flight)',
      registers,
      collect() {
        this.set(core.models.loading);
      },
    });
    // A host's own count restarts at 0 when its model is loaded again: the counter takes each increase.
    const seenRestarts = new Map<string, number>();
    new Counter({
      name: 'rkllm_host_restarts_total',
      help: "Restarts of a model's host process after its runtime crashed or hung, by model",
      labelNames: ['model'],
      registers,
      collect() {
        for (const host of core.hostReports()) {
          const seen = seenRestarts.get(host.handle) ?? 0;
          const grown = host.restarts >= seen ? host.restarts - seen : host.restarts;
          seenRestarts.set(host.handle, host.restarts);
          if (grown > 0) this.inc({ model: host.handle }, grown);
        }
      },
    });
    core.requests.on((record) => this.#count(record));
    core.models.onLoadEnded((_handle, seconds, ok) => this.#loadSeconds.observe({ outcome: ok ? 'loaded' : 'failed' }, seconds));
  }

  #count(record: RequestRecord): void {
    this.#requests.inc({ front_end: record.frontEnd, route: record.route, status: statusOf(record) });
    // Only a request that ran has figures, and then its model is one the server has.
    if (record.model === undefined) return;
    const model = { model: record.model };
    if (record.promptTokens !== undefined) this.#promptTokens.inc(model, record.promptTokens);
    if (record.generatedTokens !== undefined) this.#generatedTokens.inc(model, record.generatedTokens);
    if (record.ttftMs !== undefined) this.#ttft.observe(model, record.ttftMs / 1000);
    if (record.tokensPerSecond !== undefined && record.tokensPerSecond > 0) this.#perToken.observe(model, 1 / record.tokensPerSecond);
  }

  owns(path: string): boolean {
    return path === METRICS_PATH;
  }

  handle(request: http.IncomingMessage, response: http.ServerResponse): void {
    if (request.method !== 'GET') {
      writeText(response, 405, `${request.method ?? ''} is not allowed on ${METRICS_PATH}; use GET\n`, { allow: 'GET' });
      return;
    }
    this.registry.metrics().then(
      (text) => writeText(response, 200, text, { 'content-type': this.registry.contentType }),
      (error: unknown) => writeText(response, 500, `collecting the metrics failed: ${error instanceof Error ? error.message : String(error)}\n`),
    );
  }

  refuseUnauthorized(response: http.ServerResponse): void {
    writeText(response, 401, 'missing or incorrect API key: send it as "Authorization: Bearer <key>"\n', { 'www-authenticate': 'Bearer' });
  }

  refuse(response: http.ServerResponse, status: number, message: string): void {
    writeText(response, status, `${message}\n`);
  }
}
