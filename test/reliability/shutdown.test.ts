// Shutdown under load: SIGTERM while 100 streams are running or queued, spread over every
// transport and over five models paced like Qwen2.5-1.5B on an RK3588 (so 5 are really generating
// and 95 wait in the queues), ends within two seconds with exit status 0, and every one of the 100
// requests is answered before its connection closes (the stream's final notification, then the
// error the request ended with).

import {
  HttpClient,
  ServerProcess,
  TcpClient,
  UdpClient,
  WsClient,
  stopAllServers,
  waitUntil,
  type RpcClient,
  type StreamOutcome,
  type Transport,
} from '../integration/client';

jest.setTimeout(60_000);

const STREAMS = 100;
const MODELS = ['default', 'extra-1', 'extra-2', 'extra-3', 'extra-4'];
const SHUTDOWN_BOUND_MS = 2000;
/** SHUTTING_DOWN; REQUEST_CANCELLED is what a request cancelled by the close of its connection gets. */
const SHUTDOWN_CODES = [-32015, -32009];

describe('shutdown under load', () => {
  afterAll(async () => {
    await stopAllServers();
  });

  it(`SIGTERM with ${STREAMS} streams running or queued exits 0 within ${SHUTDOWN_BOUND_MS} ms and answers every request`, async () => {
    const server = await ServerProcess.start({ model: 'sim:rk3588-qwen2.5-1.5b', args: ['--max-queue', '200'], readyTimeoutMs: 30_000 });
    const http = new HttpClient(server.port('http'));
    // Four more models (1.5 s load each, concurrently): five runs really generate at once.
    const inits = await Promise.all(MODELS.slice(1).map((handle) => http.request('rkllm_init', { handle, param: { model_path: 'sim:rk3588-qwen2.5-1.5b' } }, { timeoutMs: 20_000 })));
    for (const init of inits) expect(init.error).toBeUndefined();

    const clients: RpcClient[] = [
      server.stdio(),
      await TcpClient.connect(server.port('tcp')),
      await UdpClient.open(server.port('udp')),
      await WsClient.connect(server.port('websocket')),
      http,
    ];
    const outcomes = new Map<StreamOutcome, Transport>();
    const streams: Promise<unknown>[] = [];
    for (let i = 0; i < STREAMS; i++) {
      const client = clients[i % clients.length];
      const params = { handle: MODELS[i % MODELS.length], rkllm_input: { input_type: 0, prompt_input: `count to ${1000 + i}` }, stream: true };
      // Message clients hand the outcome over at the start; the HTTP client only with its chunks
      // and at its end, so each outcome is recorded by whichever comes first.
      const record = (outcome: StreamOutcome) => outcomes.set(outcome, client.transport);
      streams.push(
        client
          .stream('rkllm_run', params, { timeoutMs: 15_000, onStart: record, onChunk: (_chunk, outcome) => record(outcome) })
          .then(record, (error: Error) => error),
      );
    }
    const health = async () => (await new HttpClient(server.port('http'), { keepAlive: false }).health()).json as { running: number; queued: number; streams: number };
    await waitUntil('5 running and 95 queued requests', async () => {
      const h = await health();
      return h.running === MODELS.length && h.queued === STREAMS - MODELS.length;
    }, 10_000, 100);
    // Every running request has delivered tokens: they are really mid-stream.
    await waitUntil('tokens from every model', () => [...outcomes.keys()].filter((o) => o.chunks.length > 0).length >= MODELS.length, 10_000, 20);

    const signalledAt = Date.now();
    server.child.kill('SIGTERM');
    const exit = await server.exited;
    const shutdownMs = exit.at - signalledAt;
    await Promise.all(streams);
    process.stderr.write(`shutdown: ${STREAMS} streams, exit ${exit.code}/${exit.signal} after ${shutdownMs} ms\n`);

    expect(exit.signal).toBeNull();
    expect(exit.code).toBe(0);
    expect(shutdownMs).toBeLessThan(SHUTDOWN_BOUND_MS);
    expect(outcomes.size).toBe(STREAMS);
    const unanswered = [...outcomes]
      .filter(([outcome]) => !outcome.response?.error || !SHUTDOWN_CODES.includes(outcome.response.error.code))
      .map(([outcome, transport]) => `${transport} ${String(outcome.id)}: ${JSON.stringify(outcome.response ?? null).slice(0, 200)}`);
    expect(unanswered).toEqual([]);
    // Streams that had started end with exactly one final notification marked as ended by shutdown.
    for (const [outcome, transport] of [...outcomes].filter(([o]) => o.chunks.length > 0)) {
      expect({ transport, final: outcome.final?.aborted, finals: outcome.chunks.filter((c) => c.chunk.aborted || c.chunk.state >= 2).length }).toEqual({ transport, final: true, finals: 1 });
    }
    for (const client of clients) await client.close();
  });
});
