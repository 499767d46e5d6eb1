// What the OpenAI suites share: a real bin/rkllm-serve (spawned by the integration client) and
// the official `openai` SDK pointed at its HTTP port, with retries off so a 429 is seen as one.

import OpenAI from 'openai';
import { HttpClient, ServerProcess, type StartOptions } from '../integration/client';

export interface OpenAiServer {
  server: ServerProcess;
  /** The SDK at http://127.0.0.1:<http port>/v1. */
  openai: OpenAI;
  /** A JSON-RPC client of the same server (HTTP), to look at model state. */
  rpc: HttpClient;
}

export async function startOpenAiServer(options: StartOptions & { apiKey?: string } = {}): Promise<OpenAiServer> {
  const server = await ServerProcess.start({ disable: ['stdio'], ...options });
  const port = server.port('http');
  const openai = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: options.apiKey ?? 'unused', maxRetries: 0, timeout: 20_000 });
  return { server, openai, rpc: new HttpClient(port) };
}

/** rkllm_get_kv_cache_size of a model, entry 0, through JSON-RPC. */
export async function kvCacheSize(rpc: HttpClient, handle = 'default'): Promise<number> {
  const reply = await rpc.request('rkllm_get_kv_cache_size', { handle });
  if (reply.error) throw new Error(`rkllm_get_kv_cache_size failed: ${JSON.stringify(reply.error)}`);
  return (reply.result as { cache_sizes: number[] }).cache_sizes[0];
}

/** GET /health's running and queued counts. */
export async function health(rpc: HttpClient): Promise<{ running: number; queued: number }> {
  const reply = await rpc.raw('GET', '/health');
  return reply.json as { running: number; queued: number };
}
