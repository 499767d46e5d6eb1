// The scheduler: one run at a time per model, a bounded queue, cancellation of queued and running
// requests by every route, timeouts, destroy under load, rkllm_abort per handle, cheap methods
// during a long run, and shutdown.

import type { RkllmServer } from '../../lib/serve';
import { ABIS, SLOW_MODEL, TestClient, closeAllClients, countText, prompt, startSim, waitUntil } from './helpers';

const LONG = 'count to 100000';

describe.each(ABIS)('scheduler (ABI %s)', (abi) => {
  let server: RkllmServer;
  let admin: TestClient;

  beforeAll(async () => {
    server = await startSim(abi, { model: 'sim:instant', maxQueue: 2, maxBufferedChunks: 100 });
    admin = new TestClient(server);
    await admin.ok('rkllm_init', { param: { model_path: SLOW_MODEL, max_new_tokens: 0, max_context_len: 100000 }, handle: 'slow' });
  }, 20_000);
  afterAll(() => server.shutdown());
  afterEach(async () => {
    closeAllClients();
    await waitUntil(() => server.stats().running === 0 && server.stats().queued === 0, 5000, 'the models to be idle');
  });

  async function startLong(client: TestClient, handle = 'slow'): Promise<string> {
    const { stream_id } = await client.ok('rkllm_run_async', { ...prompt(LONG), handle });
    return stream_id;
  }

  it('answers cheap methods at once while a long run goes on', async () => {
    const client = new TestClient(server);
    const streamId = await startLong(client);
    await client.connection.waitFor(() => client.connection.notifications(streamId)[0], 5000, 'the first token');
    const cheap: [string, object][] = [
      ['rkllm_get_constants', {}],
      ['rkllm_createDefaultParam', {}],
      ['rkllm_is_running', { handle: 'slow' }],
      ['rkllm_get_kv_cache_size', { handle: 'slow' }],
      ['rkllm_list_functions', {}],
      ['poll', { stream_id: streamId }],
    ];
    for (const [method, params] of cheap) {
      const started = Date.now();
      await client.ok(method, params);
      expect(Date.now() - started).toBeLessThan(100);
    }
    expect(await client.ok('rkllm_is_running', { handle: 'slow' })).toEqual({ running: true });
    expect(await client.ok('cancel', { stream_id: streamId })).toEqual({ cancelled: true });
  });

  it('runs one at a time, queues up to maxQueue, and refuses more at once', async () => {
    const client = new TestClient(server);
    const streamsBefore = server.stats().streams;
    const running = await startLong(client);
    const queued = [await startLong(client), await startLong(client)];
    expect(server.stats()).toMatchObject({ running: 1, queued: 2 });
    const started = Date.now();
    const full = await client.fails('rkllm_run_async', { ...prompt('x'), handle: 'slow' });
    expect(full).toMatchObject({ code: -32001 });
    expect(Date.now() - started).toBeLessThan(100);
    expect(server.stats().streams).toBe(streamsBefore + 3);
    // Queued streams have sent nothing yet; the running one has.
    for (const id of queued) expect(client.connection.notifications(id)).toHaveLength(0);
    await client.connection.waitFor(() => client.connection.notifications(running)[0], 5000, 'a token');
    client.close();
  });

  it('cancel stops a queued request and nothing else', async () => {
    const client = new TestClient(server);
    const running = await startLong(client);
    const queued = await startLong(client);
    void client.sendText(JSON.stringify({ jsonrpc: '2.0', id: 'plain', method: 'rkllm_run', params: { ...prompt('count to 3'), handle: 'slow' } }));
    expect(await client.ok('cancel', { stream_id: queued })).toEqual({ cancelled: true });
    const ended = await client.streamEnd(queued);
    expect(ended).toEqual([expect.objectContaining({ seq: 0, state: 2, aborted: true, reason: 'cancel' })]);
    expect(await client.ok('cancel', { stream_id: queued })).toEqual({ cancelled: false });
    expect(server.stats()).toMatchObject({ running: 1, queued: 1 });
    // Cancel the running one: the waiting plain run then gets its turn and finishes.
    expect(await client.ok('cancel', { stream_id: running })).toEqual({ cancelled: true });
    const last = (await client.streamEnd(running)).pop();
    expect(last).toMatchObject({ aborted: true, reason: 'cancel' });
    const plain = await client.connection.waitFor(
      () => client.connection.replies().find((reply) => reply.result?.text === countText(3)),
      10_000,
      'the queued plain run to finish',
    );
    expect(plain.error).toBeUndefined();
  });

  it('cancel by request_id stops a plain rkllm_run of this connection', async () => {
    const client = new TestClient(server);
    void client.sendText(JSON.stringify({ jsonrpc: '2.0', id: 'long-plain', method: 'rkllm_run', params: { ...prompt(LONG), handle: 'slow' } }));
    await waitUntil(() => server.stats().running === 1, 2000, 'the run to start');
    const stranger = new TestClient(server);
    expect(await stranger.ok('cancel', { request_id: 'long-plain' })).toEqual({ cancelled: false });
    expect(await client.ok('cancel', { request_id: 'long-plain' })).toEqual({ cancelled: true });
    const reply = await client.replyTo('long-plain');
    expect(reply.error).toMatchObject({ code: -32009, data: { reason: 'cancel' } });
  });

  it('closing a connection cancels its queued and running requests, and frees its state', async () => {
    const leaving = new TestClient(server);
    const staying = new TestClient(server);
    await startLong(leaving);
    await startLong(leaving);
    const stayingRun = staying.call('rkllm_run', { ...prompt('count to 4'), handle: 'slow' }, 20_000);
    await waitUntil(() => server.stats().queued === 2, 2000, 'two queued');
    const before = leaving.connection.received.length;
    leaving.close();
    expect(server.stats().streams).toBe(0);
    expect(server.stats().connections).toBe(1); // the staying one, whose run waits
    expect((await stayingRun).result.text).toBe(countText(4));
    // Nothing more is sent to a closed connection.
    expect(leaving.connection.received.length).toBe(before);
    await waitUntil(() => server.stats().connections === 0, 2000, 'connections to be released');
  });

  it('a connection whose send() fails is treated as closed', async () => {
    const client = new TestClient(server);
    const streamId = await startLong(client);
    await client.connection.waitFor(() => client.connection.notifications(streamId)[0], 5000, 'a token');
    client.connection.accepting = false;
    await waitUntil(() => server.stats().streams === 0 && server.stats().connections === 0, 2000, 'the connection to be released');
    const other = new TestClient(server);
    expect((await other.ok('rkllm_run', { ...prompt('count to 2'), handle: 'slow' }, 10_000)).text).toBe('1, 2');
  });

  it('rkllm_abort aborts only the run on that handle', async () => {
    const client = new TestClient(server);
    const onSlow = await startLong(client);
    const onInstant = client.call('rkllm_run', { ...prompt('count to 50'), handle: 'default' });
    await client.connection.waitFor(() => client.connection.notifications(onSlow)[0], 5000, 'a token');
    expect(await client.ok('rkllm_abort', { handle: 'slow' })).toEqual({ return_code: 0 });
    const last = (await client.streamEnd(onSlow)).pop();
    expect(last).toMatchObject({ aborted: true, reason: 'abort' });
    expect((await onInstant).result.text).toBe(countText(50));
  });

  it('a plain rkllm_run aborted by rkllm_abort answers REQUEST_ABORTED', async () => {
    const client = new TestClient(server);
    const pending = client.call('rkllm_run', { ...prompt(LONG), handle: 'slow' }, 10_000);
    await waitUntil(() => server.stats().running === 1, 2000, 'the run to start');
    await new Promise((resolve) => setTimeout(resolve, 100));
    await client.ok('rkllm_abort', { handle: 'slow' });
    expect((await pending).error).toMatchObject({ code: -32010 });
  });
});

describe.each(ABIS)('timeouts, destroy and shutdown (ABI %s)', (abi) => {
  it('ends a request that outlives requestTimeoutMs, queued or running', async () => {
    const server = await startSim(abi, { model: 'sim:slow-abort', requestTimeoutMs: 300 });
    try {
      const client = new TestClient(server);
      const [running, queued] = await Promise.all([client.call('rkllm_run', prompt(LONG)), client.call('rkllm_run', prompt(LONG))]);
      expect(running.error).toMatchObject({ code: -32008 });
      expect(queued.error).toMatchObject({ code: -32008 });
    } finally {
      await server.shutdown();
    }
  });

  it('rkllm_destroy ends running and queued requests with MODEL_DESTROYED; later use errors', async () => {
    const server = await startSim(abi, { model: SLOW_MODEL });
    try {
      const client = new TestClient(server);
      const replies = [1, 2, 3].map(() => client.call('rkllm_run', prompt(LONG), 10_000));
      const stream = await client.ok('rkllm_run_async', prompt(LONG));
      await waitUntil(() => server.stats().running === 1 && server.stats().queued === 3, 3000, 'one running, three queued');
      expect(await client.ok('rkllm_destroy', { handle: 'default' })).toEqual({ return_code: 0 });
      for (const reply of await Promise.all(replies)) expect(reply.error).toMatchObject({ code: -32007 });
      expect((await client.streamEnd(stream.stream_id)).pop()).toMatchObject({ aborted: true, reason: 'model_destroyed' });
      expect(await client.fails('rkllm_run', { ...prompt('x'), handle: 'default' })).toMatchObject({ code: -32007 });
      expect(await client.fails('rkllm_run', prompt('x'))).toMatchObject({ code: -32002 });
      expect(server.stats()).toMatchObject({ models: 0, running: 0, queued: 0 });
    } finally {
      await server.shutdown();
    }
  }, 20_000);

  it('shutdown cancels runs, refuses new work, still answers cheap methods, and never rejects', async () => {
    const server = await startSim(abi, { model: 'sim:slow-abort', shutdownTimeoutMs: 3000 });
    const client = new TestClient(server);
    const pending = client.call('rkllm_run', prompt(LONG));
    await waitUntil(() => server.stats().running === 1, 2000, 'the run to start');
    const stopping = server.shutdown();
    expect((await pending).error).toMatchObject({ code: -32015 });
    expect(await client.fails('rkllm_run', prompt('x'))).toMatchObject({ code: -32015 });
    expect(await client.ok('rkllm_get_constants')).toHaveProperty('runtime');
    await expect(stopping).resolves.toBeUndefined();
    expect(server.stats().models).toBe(0);
    await expect(server.shutdown()).resolves.toBeUndefined();
  });

  it("shutdown in 'finish' mode lets a short run finish", async () => {
    const server = await startSim(abi, { model: 'sim:instant', shutdownMode: 'finish' });
    const client = new TestClient(server);
    const pending = client.call('rkllm_run', prompt('count to 20'));
    await server.shutdown();
    expect((await pending).result.text).toBe(countText(20));
  });
});
