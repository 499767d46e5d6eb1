// No resource leaks: 10,000 connect / request / disconnect cycles across TCP, WebSocket, HTTP and
// UDP against one real server, one in ten of them an abrupt drop in the middle of a stream (or of
// a queued request). Afterwards the server's open file descriptors (/proc/<pid>/fd), its streams
// and connections (GET /health) return to their starting counts, the queue is empty, and its
// resident memory (/proc/<pid>/status VmRSS) has grown by less than RSS_BOUND_MIB.

import * as fs from 'fs';
import * as path from 'path';
import {
  HttpClient,
  ServerProcess,
  TcpClient,
  UdpClient,
  WsClient,
  makeTempDir,
  mapLimit,
  openFdCount,
  residentKiB,
  sleep,
  stopAllServers,
  withTimeout,
  type MessageClient,
  type RpcMessage,
  readHealth,
  writePacedModel,
} from './client';

jest.setTimeout(150_000);

const CYCLES = 10_000;
const WARMUP_CYCLES = 3000;
const WORKERS = 24;
/** Allowed growth of VmRSS over the 10,000 cycles. */
const RSS_BOUND_MIB = 50;
/** Allowed difference in open descriptors once settled (none is expected). */
const FD_SLACK = 3;

type Kind = 'tcp' | 'websocket' | 'http' | 'udp';
const KINDS: Kind[] = ['tcp', 'websocket', 'http', 'udp'];

interface Health {
  status: string;
  queued: number;
  running: number;
  streams: number;
  connections: number;
  transports: Record<string, { connections: number; bufferedBytes?: number }>;
}

describe('No resource leaks over 10,000 connect/request/disconnect cycles', () => {
  let server: ServerProcess;
  let modelsDir: string;
  let paced: string;
  let control: HttpClient;

  beforeAll(async () => {
    modelsDir = makeTempDir('leaks');
    // A model of our own (2 ms per token), so that a drop lands in the middle of a stream.
    writePacedModel(modelsDir, { load_ms: 0, prefill_ms_per_token: 0, decode_ms_per_token: 2 });
    server = await ServerProcess.start({
      model: 'sim:instant',
      disable: ['stdio'],
      args: ['--models-dir', modelsDir, '--max-queue', '1000'],
    });
    control = new HttpClient(server.port('http'), { keepAlive: false });
    const init = await control.request('rkllm_init', {
      param: { model_path: path.join(modelsDir, 'paced.json'), max_context_len: 8192, max_new_tokens: 4000 },
    });
    expect(init.error).toBeUndefined();
    paced = init.result.handle;
  });

  afterAll(async () => {
    await control?.close();
    await stopAllServers();
    if (modelsDir) fs.rmSync(modelsDir, { recursive: true, force: true });
  });

  const health = (): Promise<Health> => readHealth<Health>(control);

  function check(reply: RpcMessage, what: string): void {
    if (reply.error) throw new Error(`${what}: ${JSON.stringify(reply.error)}`);
  }

  /** connect, one request (every 4th a whole short stream), disconnect (every 8th abruptly). */
  async function requestCycle(kind: Kind, i: number): Promise<void> {
    const streamIt = i % 4 === 0;
    const abrupt = i % 8 === 1;
    const echo = { rkllm_input: { input_type: 0, prompt_input: `echo: cycle ${i}` }, handle: 'default' };
    if (kind === 'http') {
      const http = new HttpClient(server.port('http'), { keepAlive: false });
      try {
        if (streamIt) {
          const outcome = await http.stream('rkllm_run', { ...echo, stream: true }, { timeoutMs: 10_000 });
          if (outcome.text !== `cycle ${i}`) throw new Error(`http stream ${i}: ${outcome.text}`);
        } else {
          check(await http.request('rkllm_get_constants'), 'http request');
        }
      } finally {
        await http.close();
      }
      return;
    }
    let client: MessageClient;
    if (kind === 'tcp') client = await TcpClient.connect(server.port('tcp'));
    else if (kind === 'websocket') client = await WsClient.connect(server.port('websocket'));
    else client = await UdpClient.open(server.port('udp'));
    try {
      if (streamIt) {
        const outcome = await client.stream('rkllm_run', { ...echo, stream: true }, { timeoutMs: 10_000 });
        if (outcome.text !== `cycle ${i}`) throw new Error(`${kind} stream ${i}: ${outcome.text}`);
      } else {
        check(await client.request(i % 2 ? 'rkllm_get_constants' : 'rkllm_is_running', i % 2 ? undefined : { handle: 'default' }), `${kind} request`);
      }
    } finally {
      if (abrupt && client instanceof TcpClient) client.drop();
      else if (abrupt && client instanceof WsClient) client.drop();
      else await client.close();
    }
  }

  /** Starts a long stream on the paced model and drops the connection abruptly: after its first
   *  chunk (mid-stream), or at once (while it is queued or just starting). */
  async function dropCycle(kind: Kind, i: number): Promise<void> {
    const waitFirst = i % 20 < 10;
    const params = { handle: paced, rkllm_input: { input_type: 0, prompt_input: 'count to 1000' } };
    if (kind === 'http') {
      const http = new HttpClient(server.port('http'), { keepAlive: false });
      try {
        await http
          .sse(JSON.stringify({ jsonrpc: '2.0', id: `drop-${i}`, method: 'rkllm_run', params: { ...params, stream: true } }), {
            timeoutMs: 10_000,
            onEvent: (_event, req) => req.destroy(),
          })
          .catch(() => undefined);
      } finally {
        await http.close();
      }
      return;
    }
    let client: MessageClient;
    if (kind === 'tcp') client = await TcpClient.connect(server.port('tcp'));
    else if (kind === 'websocket') client = await WsClient.connect(server.port('websocket'));
    else client = await UdpClient.open(server.port('udp'));
    const id = `drop-${i}`;
    client.send({ jsonrpc: '2.0', id, method: 'rkllm_run_async', params });
    if (waitFirst) {
      await client.waitFor('first chunk', (m) => m.method === 'rkllm_result' && m.params?.request_id === id, 10_000);
    }
    if (client instanceof TcpClient || client instanceof WsClient) client.drop();
    else await client.close();
  }

  async function runCycles(count: number, offset: number): Promise<{ errors: string[]; ms: number }> {
    const errors: string[] = [];
    const started = Date.now();
    await mapLimit(
      Array.from({ length: count }, (_, n) => n + offset),
      WORKERS,
      async (i) => {
        const kind = KINDS[i % KINDS.length];
        try {
          // One cycle in ten drops a stream abruptly; the rest connect, ask and leave.
          if (Math.floor(i / KINDS.length) % 10 === 9) await dropCycle(kind, i);
          else await requestCycle(kind, i);
        } catch (error) {
          if (errors.length < 20) errors.push(`cycle ${i} (${kind}): ${(error as Error).message}`);
          else errors.push('');
        }
      },
    );
    return { errors, ms: Date.now() - started };
  }

  async function settled(base: { fds: number; health: Health }, timeoutMs: number): Promise<{ fds: number; health: Health }> {
    const deadline = Date.now() + timeoutMs;
    let last = { fds: openFdCount(server.pid), health: await health() };
    for (;;) {
      const h = last.health;
      const peers = (name: string) => h.transports[name]?.connections ?? 0;
      if (
        peers('tcp') === 0 &&
        peers('udp') === 0 &&
        peers('websocket') === 0 &&
        peers('http') <= 1 &&
        last.fds <= base.fds + FD_SLACK &&
        h.streams <= base.health.streams &&
        h.connections <= base.health.connections &&
        h.queued === 0 &&
        h.running === 0
      ) {
        return last;
      }
      if (Date.now() > deadline) return last;
      await sleep(200);
      last = { fds: openFdCount(server.pid), health: await health() };
    }
  }

  it('fds, streams and connections return to their starting counts; memory stays bounded', async () => {
    // Warm-up until the heap has grown to its working size: lazily created pools, caches and the
    // garbage collector's chosen heap size are not leaks (RSS plateaus after a few thousand cycles).
    const warm = await runCycles(WARMUP_CYCLES, 0);
    expect(warm.errors).toEqual([]);
    const zero = { fds: Number.POSITIVE_INFINITY, health: { streams: 0, connections: 0 } as Health };
    const start = await settled(zero, 10_000);
    expect(start.health.streams).toBe(0);
    expect(start.health.queued).toBe(0);
    const startRssKiB = residentKiB(server.pid);

    const run = await withTimeout(runCycles(CYCLES, WARMUP_CYCLES), 100_000, `${CYCLES} cycles`);
    expect(run.errors.filter(Boolean).slice(0, 20)).toEqual([]);
    expect(run.errors).toHaveLength(0);
    expect(server.exitInfo).toBeUndefined();

    const end = await settled(start, 15_000);
    const endRssKiB = residentKiB(server.pid);
    process.stderr.write(
      `leaks: ${CYCLES} cycles in ${run.ms} ms; fds ${start.fds} -> ${end.fds}; ` +
        `streams ${start.health.streams} -> ${end.health.streams}; connections ${start.health.connections} -> ${end.health.connections}; ` +
        `VmRSS ${(startRssKiB / 1024).toFixed(1)} -> ${(endRssKiB / 1024).toFixed(1)} MiB\n`,
    );
    expect(end.fds).toBeLessThanOrEqual(start.fds + FD_SLACK);
    expect(end.health.streams).toBeLessThanOrEqual(start.health.streams);
    expect(end.health.connections).toBeLessThanOrEqual(start.health.connections);
    expect(end.health.queued).toBe(0);
    expect(end.health.running).toBe(0);
    for (const [name, stats] of Object.entries(end.health.transports)) {
      // Only the control connection asking for /health may be open.
      expect({ name, connections: stats.connections }).toEqual({ name, connections: name === 'http' ? expect.any(Number) : 0 });
      if (name === 'http') expect(stats.connections).toBeLessThanOrEqual(1);
    }
    expect(endRssKiB - startRssKiB).toBeLessThan(RSS_BOUND_MIB * 1024);

    // And it still serves, streams included.
    const tcp = await TcpClient.connect(server.port('tcp'));
    try {
      const outcome = await tcp.stream('rkllm_run', { handle: 'default', rkllm_input: { input_type: 0, prompt_input: 'count to 5' }, stream: true });
      expect(outcome.text).toBe('1, 2, 3, 4, 5');
    } finally {
      await tcp.close();
    }
  });
});
