// What the lib/client suites share: a real bin/rkllm-serve on the emulated runtime (spawned by
// the integration suites' ServerProcess) with a paced model of its own, so that a run lasts long
// enough to time out, abort or drop in the middle of; and a lib/client client of each kind.

import * as fs from 'fs';
import { RpcClient, StdioTransport, connect, type ResultStream, type ResultChunk } from '../../lib/client';
import { HttpClient, ServerProcess, makeTempDir, waitUntil, type StartOptions, writePacedModel } from '../integration/client';

/** Every way lib/client reaches the server; http is plain POST (streams polled), http-sse is pushed. */
export const CLIENT_KINDS = ['stdio', 'tcp', 'udp', 'websocket', 'http', 'http-sse'] as const;
export type ClientKind = (typeof CLIENT_KINDS)[number];

export const PACED = 'paced';
/** Tokens 5 ms apart until the context is full (about 20 s): long enough to stop in the middle. */
export const LONG_RUN = { handle: PACED, rkllm_input: { input_type: 0, prompt_input: 'count to 100000' } };

export interface TestServer {
  server: ServerProcess;
  /** For /health and clean-up, outside the client under test. */
  control: HttpClient;
  modelsDir: string;
}

export async function startServer(options: StartOptions & { apiKey?: string } = {}): Promise<TestServer> {
  const modelsDir = makeTempDir('client');
  writePacedModel(modelsDir, { load_ms: 0, prefill_ms_per_token: 0, decode_ms_per_token: 5 }, 4096);
  const keyArgs = options.apiKey === undefined ? [] : ['--api-key', options.apiKey];
  const server = await ServerProcess.start({ ...options, args: ['--models-dir', modelsDir, ...keyArgs, ...(options.args ?? [])] });
  const control = new HttpClient(server.port('http'));
  const auth = options.apiKey === undefined ? {} : { authorization: `Bearer ${options.apiKey}` };
  const init = await control.post(
    JSON.stringify({ jsonrpc: '2.0', id: 'init', method: 'rkllm_init', params: { handle: PACED, param: { model_path: 'paced.json', max_new_tokens: 0 } } }),
    auth,
  );
  if (init.json?.error) throw new Error(`loading the paced model failed: ${init.text}`);
  return { server, control, modelsDir };
}

export async function stopServer(test: TestServer | undefined): Promise<void> {
  if (!test) return;
  await test.control.close();
  await test.server.stop();
  fs.rmSync(test.modelsDir, { recursive: true, force: true });
}

export function urlOf(server: ServerProcess, kind: Exclude<ClientKind, 'stdio'>): string {
  switch (kind) {
    case 'tcp':
      return `tcp://127.0.0.1:${server.port('tcp')}`;
    case 'udp':
      return `udp://127.0.0.1:${server.port('udp')}`;
    case 'websocket':
      return `ws://127.0.0.1:${server.port('websocket')}/`;
    case 'http':
    case 'http-sse':
      return `http://127.0.0.1:${server.port('http')}/`;
  }
}

export async function openClient(server: ServerProcess, kind: ClientKind, options: { apiKey?: string; timeoutMs?: number } = {}): Promise<RpcClient> {
  if (kind === 'stdio') return new RpcClient(StdioTransport.ofChild(server.child), { timeoutMs: options.timeoutMs });
  return connect(urlOf(server, kind), { ...options, eventStream: kind === 'http-sse' });
}

interface Health {
  running: number;
  queued: number;
  streams: number;
  connections: number;
}

export async function health(control: HttpClient): Promise<Health> {
  return (await control.health()).json as Health;
}

/** Waits (bounded) until the server runs and queues nothing. */
export async function waitIdle(control: HttpClient, timeoutMs = 3000): Promise<void> {
  await waitUntil('the server to run and queue nothing', async () => {
    const now = await health(control);
    return now.running === 0 && now.queued === 0;
  }, timeoutMs, 20);
}

/** Reads `count` chunks of a stream without ending it; the iterator is handed back to go on. */
export async function readChunks(stream: ResultStream, count: number): Promise<{ chunks: ResultChunk[]; iterator: AsyncIterator<ResultChunk> }> {
  const iterator = stream[Symbol.asyncIterator]();
  const chunks: ResultChunk[] = [];
  while (chunks.length < count) {
    const next = await iterator.next();
    if (next.done) break;
    chunks.push(next.value);
  }
  return { chunks, iterator };
}

/** Every chunk until the iterator ends or throws; the error (if any) is returned, not thrown. */
export async function drain(iterator: AsyncIterator<ResultChunk>): Promise<{ chunks: ResultChunk[]; error?: unknown }> {
  const chunks: ResultChunk[] = [];
  try {
    for (;;) {
      const next = await iterator.next();
      if (next.done) return { chunks };
      chunks.push(next.value);
    }
  } catch (error) {
    return { chunks, error };
  }
}
