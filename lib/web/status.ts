// GET /status: what the web page's status view shows, in one JSON document made from the core:
// every model of the catalog and its state, the queues, the last requests' timings, memory and
// uptime. Nothing here waits on a model: the answer comes from counters the core keeps.

import * as os from 'os';
import type { ServerCore } from '../core/core';
import type { ModelListing } from '../core/catalog';
import type { RequestRecord } from '../core/request-records';

/** How many of the last requests the status view lists, newest first. */
export const STATUS_RECENT = 20;

/**
 * not_loaded: in the catalog, loaded when a request names it; loading: its load is under way;
 * idle: loaded, nothing queued or running; busy: loaded and running or queued; failed: its host
 * process failed and is not being restarted.
 */
export type ModelState = 'not_loaded' | 'loading' | 'idle' | 'busy' | 'failed';

export interface StatusModel {
  name: string;
  aliases: readonly string[];
  source: ModelListing['source'];
  state: ModelState;
  handle: string | null;
  queued: number;
  running: number;
  context_length: number | null;
  host: { pid: number | null; state: string; restarts: number; rss_bytes: number | null } | null;
}

export interface StatusRun {
  front_end: RequestRecord['frontEnd'];
  transport: string;
  route: string;
  model: string | null;
  outcome: RequestRecord['outcome'];
  http_status: number | null;
  error_code: string | null;
  prompt_tokens: number | null;
  generated_tokens: number | null;
  ttft_ms: number | null;
  tokens_per_second: number | null;
  duration_ms: number;
  ended_at: string;
}

export interface StatusReport {
  uptime_s: number;
  shutting_down: boolean;
  runtime: { abi: string; emulated: boolean; release: string | null };
  memory: { rss_bytes: number; heap_used_bytes: number; model_hosts_rss_bytes: number; system_total_bytes: number; system_free_bytes: number };
  queue: { queued: number; running: number; streams: number; connections: number };
  models: StatusModel[];
  recent: StatusRun[];
}

export async function statusReport(core: ServerCore): Promise<StatusReport> {
  const listing = await core.residency.listing();
  const loading = new Set(core.residency.loadingNames());
  const hosts = new Map(core.hostReports().map((report) => [report.handle, report]));
  const models: StatusModel[] = [];
  for (const entry of listing) {
    const isLoading = loading.has(entry.name);
    // The bundled sim models are mostly test fixtures: shown, as in /v1/models, only once in use.
    if (entry.source === 'sim' && !entry.loaded && !isLoading) continue;
    const loaded = entry.handle === undefined ? undefined : core.models.all().find((model) => model.handle === entry.handle);
    const host = entry.handle === undefined ? undefined : hosts.get(entry.handle);
    const queued = loaded?.scheduler.queued ?? 0;
    const running = loaded?.scheduler.running ?? 0;
    models.push({
      name: entry.name,
      aliases: entry.aliases,
      source: entry.source,
      state: stateOf(entry.loaded, isLoading, host?.state, queued + running),
      handle: entry.handle ?? null,
      queued,
      running,
      context_length: entry.context_length ?? null,
      host: host ? { pid: host.pid, state: host.state, restarts: host.restarts, rss_bytes: host.rss_bytes } : null,
    });
  }
  const stats = core.stats();
  const heap = process.memoryUsage();
  const info = core.runtime.info;
  return {
    uptime_s: Math.round(process.uptime() * 10) / 10,
    shutting_down: core.shuttingDown,
    runtime: { abi: info.abi, emulated: info.emulated, release: info.release ?? null },
    memory: {
      rss_bytes: heap.rss,
      heap_used_bytes: heap.heapUsed,
      model_hosts_rss_bytes: [...hosts.values()].reduce((sum, report) => sum + (report.rss_bytes ?? 0), 0),
      system_total_bytes: os.totalmem(),
      system_free_bytes: os.freemem(),
    },
    queue: { queued: stats.queued, running: stats.running, streams: stats.streams, connections: stats.connections },
    models,
    recent: core.requests.recent().slice(-STATUS_RECENT).reverse().map(runOf),
  };
}

function stateOf(loaded: boolean, loading: boolean, hostState: string | undefined, work: number): ModelState {
  if (hostState === 'failed') return 'failed';
  if (loading) return 'loading';
  if (!loaded) return 'not_loaded';
  return work > 0 ? 'busy' : 'idle';
}

function runOf(record: RequestRecord): StatusRun {
  return {
    front_end: record.frontEnd,
    transport: record.transport,
    route: record.route,
    model: record.model ?? null,
    outcome: record.outcome,
    http_status: record.httpStatus ?? null,
    error_code: record.errorCode ?? null,
    prompt_tokens: record.promptTokens ?? null,
    generated_tokens: record.generatedTokens ?? null,
    ttft_ms: record.ttftMs ?? null,
    tokens_per_second: record.tokensPerSecond ?? null,
    duration_ms: record.durationMs,
    ended_at: new Date(record.endedAt).toISOString(),
  };
}
