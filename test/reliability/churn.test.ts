// Churn: abrupt disconnects in the middle of streams on every transport (TCP reset, WebSocket
// terminate, HTTP SSE request destroyed, UDP socket closed, the stdio transport's stdin and stdout
// destroyed: the parent went away), requests dropped while still queued, and slow readers that
// never read (a paused TCP socket, a WebSocket whose socket is paused), which the server must cut
// off at --max-buffered-bytes. Afterwards the server's open file descriptors (/proc/<pid>/fd) and the
// streams, queue entries, running requests and connections that GET /health reports are back to
// their starting counts within a bounded wait.
//
// Timers are not observable from outside the process: /health reports no timer count, and the
// server exposes no other view of them. They are checked only indirectly (a leaked interval that
// held a stream or a peer would show up in those counts).

import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import WebSocket from 'ws';
import {
  HttpClient,
  ServerProcess,
  TcpClient,
  UdpClient,
  WsClient,
  makeTempDir,
  openFdCount,
  sleep,
  stopAllServers,
  waitUntil,
  withTimeout,
  type MessageClient,
  readHealth,
  writePacedModel,
} from '../integration/client';

jest.setTimeout(60_000);

const MAX_BUFFERED_BYTES = 65_536;
const ROUNDS = 4;
/**
 * "count to 50000" on the "flood" model (sim:instant loaded without a token limit): 149,000
 * notifications (~15 MB) with no delay, far beyond the kernel's loopback socket buffers.
 */
const FLOOD_PROMPT = 'count to 50000';
/**
 * On the paced model (2 ms per token, at most 4000 tokens), about 8 s of stream: every drop lands
 * in the middle of it, and queued requests stay queued, even on a slow, busy machine.
 */
const PACED_PROMPT = 'count to 2000';

interface Health {
  status: string;
  queued: number;
  running: number;
  streams: number;
  connections: number;
  transports: Record<string, { connections: number; cutOff: number; bufferedBytes: number }>;
}

interface Counts {
  fds: number;
  health: Health;
}

describe('churn: abrupt disconnects, slow readers and vanished UDP peers leave nothing behind', () => {
  let server: ServerProcess;
  let modelsDir: string;
  let control: HttpClient;

  beforeAll(async () => {
    modelsDir = makeTempDir('churn');
    writePacedModel(modelsDir, { decode_ms_per_token: 2 });
    server = await ServerProcess.start({
      model: 'sim:instant',
      args: ['--models-dir', modelsDir, '--max-buffered-bytes', String(MAX_BUFFERED_BYTES), '--max-queue', '200'],
    });
    // No keep-alive: the health checks themselves hold no connection between calls.
    control = new HttpClient(server.port('http'), { keepAlive: false });
    // One paced model per kind of drop, so each drop lands on a running stream, not a queued one.
    const flood = await control.request('rkllm_init', { handle: 'flood', param: { model_path: 'sim:instant', max_context_len: 262144, max_new_tokens: 0 } });
    expect(flood.error).toBeUndefined();
    for (const handle of ['paced-tcp', 'paced-ws', 'paced-http', 'paced-udp', 'paced-queue', 'paced-stdio']) {
      const init = await control.request('rkllm_init', { handle, param: { model_path: path.join(modelsDir, 'paced.json'), max_context_len: 8192, max_new_tokens: 4000 } });
      expect(init.error).toBeUndefined();
    }
  });

  afterAll(async () => {
    await control?.close();
    await stopAllServers();
    if (modelsDir) fs.rmSync(modelsDir, { recursive: true, force: true });
  });

  const health = (): Promise<Health> => readHealth<Health>(control);

  const pacedRun = (handle: string) => ({ handle, rkllm_input: { input_type: 0, prompt_input: PACED_PROMPT }, stream: true });

  /** Starts a stream on a message client and resolves once `chunks` notifications have arrived. */
  async function streamStarted(client: MessageClient, handle: string, chunks = 3): Promise<void> {
    // Sent by hand rather than with client.stream(): that would leave a wait (and its timer)
    // pending for a stream this client is about to drop.
    const id = client.nextId();
    client.send({ jsonrpc: '2.0', id, method: 'rkllm_run', params: pacedRun(handle) });
    const notificationsOf = () => client.received.filter((r) => r.message.method === 'rkllm_result' && r.message.params?.request_id === id).length;
    await waitUntil(`${client.transport}: ${chunks} chunks on ${handle}`, () => notificationsOf() >= chunks, 10_000, 10);
  }

  async function tcpDropMidStream(): Promise<void> {
    const client = await TcpClient.connect(server.port('tcp'));
    await streamStarted(client, 'paced-tcp');
    client.drop();
  }

  async function wsTerminateMidStream(): Promise<void> {
    const client = await WsClient.connect(server.port('websocket'));
    await streamStarted(client, 'paced-ws');
    client.drop();
  }

  async function udpVanishMidStream(): Promise<void> {
    const client = await UdpClient.open(server.port('udp'));
    await streamStarted(client, 'paced-udp');
    await client.close();
  }

  async function httpSseDestroyedMidStream(): Promise<void> {
    const http = new HttpClient(server.port('http'), { keepAlive: false });
    let events = 0;
    const seen: string[] = [];
    const body = JSON.stringify({ jsonrpc: '2.0', id: 'sse-drop', method: 'rkllm_run', params: pacedRun('paced-http') });
    // Destroyed at the first event. (Under CPU load we twice saw this response end by itself,
    // status 200, after two token events and no final one; not yet explained, see the report.)
    // Destroying the request rejects or ends the SSE read; either way it is over.
    await http
      .sse(body, {
        timeoutMs: 10_000,
        onEvent: (event, req) => {
          seen.push(event.data.slice(0, 200));
          if (++events === 1) req.destroy();
        },
      })
      .then((r) => seen.push(`ended: status ${r.status}`), (error: Error) => seen.push(`failed: ${error.message}`));
    if (events < 1) seen.push(`http cutOff so far: ${(await health()).transports.http.cutOff}`, ...server.stderrLines.filter((l) => /cut off|"level":[45]0/.test(l)).slice(-3));
    expect({ events, seen: events >= 1 ? [] : seen }).toEqual({ events: expect.any(Number), seen: [] });
    await http.close();
  }

  async function tcpDropWhileQueued(): Promise<void> {
    const client = await TcpClient.connect(server.port('tcp'));
    await streamStarted(client, 'paced-queue', 1);
    // Four more wait behind the running one; the drop must take all five out of the queue.
    for (let i = 0; i < 4; i++) client.send({ jsonrpc: '2.0', id: `queued-${i}`, method: 'rkllm_run', params: pacedRun('paced-queue') });
    await waitUntil('four queued requests', async () => (await health()).queued >= 4, 5000);
    client.drop();
  }

  async function tcpSlowReader(): Promise<void> {
    const before = (await health()).transports.tcp.cutOff;
    const socket = net.connect({ port: server.port('tcp'), host: '127.0.0.1' });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    socket.on('error', () => undefined);
    // Never read a byte: the server's writes pile up in the kernel, then in its own buffer.
    socket.pause();
    socket.write(JSON.stringify({ jsonrpc: '2.0', id: 'flood', method: 'rkllm_run', params: { handle: 'flood', rkllm_input: { input_type: 0, prompt_input: FLOOD_PROMPT }, stream: true } }) + '\n');
    await waitUntil('the TCP slow reader to be cut off', async () => (await health()).transports.tcp.cutOff > before, 15_000, 100);
    socket.destroy();
  }

  async function wsSlowReader(): Promise<void> {
    const before = (await health()).transports.websocket.cutOff;
    const ws = new WebSocket(`ws://127.0.0.1:${server.port('websocket')}/`, { perMessageDeflate: false });
    ws.on('error', () => undefined);
    await withTimeout(new Promise<void>((resolve) => ws.once('open', () => resolve())), 5000, 'websocket open');
    // The ws client reads its socket eagerly; pausing the socket is a client that never reads.
    (ws as unknown as { _socket: net.Socket })._socket.pause();
    ws.send(JSON.stringify({ jsonrpc: '2.0', id: 'flood', method: 'rkllm_run', params: { handle: 'flood', rkllm_input: { input_type: 0, prompt_input: FLOOD_PROMPT }, stream: true } }));
    await waitUntil('the WebSocket slow reader to be cut off', async () => (await health()).transports.websocket.cutOff > before, 15_000, 100);
    ws.terminate();
  }

  /** Polls until every count is back to base (or below), or the bound passes; returns the last counts. */
  async function settled(base: Counts, timeoutMs: number): Promise<Counts> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const last: Counts = { fds: openFdCount(server.pid), health: await health() };
      const h = last.health;
      const back =
        last.fds <= base.fds &&
        h.streams <= base.health.streams &&
        h.connections <= base.health.connections &&
        h.queued === 0 &&
        h.running === 0 &&
        ['tcp', 'udp', 'websocket'].every((name) => h.transports[name].connections === 0) &&
        h.transports.http.connections <= 1;
      if (back || Date.now() > deadline) return last;
      await sleep(100);
    }
  }

  async function churnRound(): Promise<void> {
    // The slow readers both flood the default model: one at a time.
    await Promise.all([tcpDropMidStream(), wsTerminateMidStream(), udpVanishMidStream(), httpSseDestroyedMidStream(), tcpDropWhileQueued(), tcpSlowReader()]);
    await wsSlowReader();
  }

  it(`${ROUNDS} rounds of every kind of drop; then fds, streams, queue and connections are back`, async () => {
    // One warm-up round first: lazily opened descriptors (the UDP liveness check, the addon's
    // per-model threads) are not leaks.
    await churnRound();
    const base = await settled({ fds: Number.POSITIVE_INFINITY, health: { streams: 0, connections: Infinity } as unknown as Health }, 10_000);
    expect(base.health.queued).toBe(0);
    expect(base.health.running).toBe(0);
    expect(base.health.streams).toBe(0);

    const started = Date.now();
    for (let round = 0; round < ROUNDS; round++) await churnRound();
    const end = await settled(base, 10_000);
    process.stderr.write(
      `churn: ${ROUNDS} rounds in ${Date.now() - started} ms; fds ${base.fds} -> ${end.fds}; streams ${base.health.streams} -> ${end.health.streams}; ` +
        `connections ${base.health.connections} -> ${end.health.connections}; cut off tcp ${end.health.transports.tcp.cutOff}, websocket ${end.health.transports.websocket.cutOff}\n`,
    );
    expect(server.exitInfo).toBeUndefined();
    expect(end.fds).toBeLessThanOrEqual(base.fds);
    expect(end.health.streams).toBeLessThanOrEqual(base.health.streams);
    expect(end.health.connections).toBeLessThanOrEqual(base.health.connections);
    expect(end.health.queued).toBe(0);
    expect(end.health.running).toBe(0);
    for (const name of ['tcp', 'udp', 'websocket']) expect({ name, connections: end.health.transports[name].connections }).toEqual({ name, connections: 0 });
    expect(end.health.transports.tcp.cutOff).toBeGreaterThanOrEqual(ROUNDS + 1);
    expect(end.health.transports.websocket.cutOff).toBeGreaterThanOrEqual(ROUNDS + 1);

    // Still serving on every network transport.
    const tcp = await TcpClient.connect(server.port('tcp'));
    const outcome = await tcp.stream('rkllm_run', { handle: 'paced-tcp', rkllm_input: { input_type: 0, prompt_input: 'count to 5' }, stream: true });
    expect(outcome.text).toBe('1, 2, 3, 4, 5');
    await tcp.close();
  });

  it('stdio: the parent going away (stdin and stdout destroyed) mid-stream cancels its stream and closes only stdio', async () => {
    const stdio = server.stdio();
    // rkllm_run_async: its request is answered at once, so the end of stdin (a half-close, which
    // first writes the replies still owed) leaves only the running stream, which must be cancelled.
    const reply = await stdio.request('rkllm_run_async', { handle: 'paced-stdio', rkllm_input: { input_type: 0, prompt_input: PACED_PROMPT } });
    const streamId = reply.result?.stream_id;
    expect(typeof streamId).toBe('string');
    await waitUntil('3 chunks on stdio', () => stdio.received.filter((r) => r.message.params?.stream_id === streamId).length >= 3, 10_000, 10);
    const base = { fds: openFdCount(server.pid), health: await health() };
    expect(base.health.running).toBeGreaterThanOrEqual(1);
    const droppedAt = Date.now();
    server.child.stdin!.destroy();
    server.child.stdout!.destroy();
    const end = await settled({ ...base, health: { ...base.health, streams: base.health.streams - 1 } }, 5000);
    process.stderr.write(`churn stdio: released ${Date.now() - droppedAt} ms after the drop\n`);
    expect(end.health.running).toBe(0);
    expect(end.health.streams).toBeLessThan(base.health.streams);
    expect(end.health.transports.stdio.connections).toBe(0);
    // stdin and stdout are closed on the server's side too; nothing new was opened.
    expect(end.fds).toBeLessThanOrEqual(base.fds);
    expect(server.exitInfo).toBeUndefined();
    const next = await control.request('rkllm_run', { handle: 'paced-stdio', rkllm_input: { input_type: 0, prompt_input: 'count to 3' } });
    expect(next.result?.text).toBe('1, 2, 3');
  });
});
