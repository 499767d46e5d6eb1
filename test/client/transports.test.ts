// lib/client against the real bin/rkllm-serve (emulated runtime, 127.0.0.1), over every transport:
// a request, a notification and a batch; a stream to its end; error replies; timeouts; an abort;
// the raw traffic; and drop(), after which the server must free what the client held. Each
// transport gets a server of its own, so the server's counts are this client's alone.

import { ClientError, RpcResponseError, isFinalChunk, type IncomingMessage, type RpcClient } from '../../lib/client';
import { countTo, stopAllServers, waitUntil } from '../integration/client';
import { CLIENT_KINDS, LONG_RUN, drain, health, openClient, readChunks, startServer, stopServer, waitIdle, type TestServer } from './helpers';

afterAll(() => stopAllServers());

describe.each(CLIENT_KINDS)('lib/client over %s', (kind) => {
  let test: TestServer;
  let client: RpcClient;

  beforeAll(async () => {
    test = await startServer({ disable: kind === 'stdio' ? [] : ['stdio'] });
    client = await openClient(test.server, kind);
  });

  afterAll(async () => {
    await client?.close();
    await stopServer(test);
  });

  it('a request gets its result; a notification gets no reply; a batch gets its replies in order', async () => {
    const seen: IncomingMessage[] = [];
    const stopSeeing = client.onMessage((message) => seen.push(message));
    await client.notify('rkllm_get_constants');
    const constants = await client.request<{ runtime: { emulated: boolean } }>('rkllm_get_constants');
    expect(constants.runtime.emulated).toBe(true);
    const replies = await client.batch([
      { method: 'rkllm_is_running', params: { handle: 'default' } },
      { method: 'rkllm_get_kv_cache_size', params: { handle: 'default' }, notification: true },
      { method: 'no_such_method' },
    ]);
    stopSeeing();
    expect(replies[0]).toMatchObject({ jsonrpc: '2.0', result: { running: false } });
    expect(replies[1]).toBeUndefined();
    expect(replies[2]).toMatchObject({ error: { code: -32601, data: { method: 'no_such_method' } } });
    // One reply for the request and two for the batch: nothing for either notification.
    expect(seen).toHaveLength(3);
    expect(seen.every((message) => message.id !== undefined && message.id !== null)).toBe(true);
  });

  it('a stream runs to its end: every chunk in seq order, the last one final, then the reply', async () => {
    const stream = client.stream('rkllm_run', { handle: 'default', rkllm_input: { input_type: 0, prompt_input: 'count to 20' }, stream: true });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.map((chunk) => chunk.seq)).toEqual(chunks.map((_, index) => index));
    expect(chunks.slice(0, -1).some(isFinalChunk)).toBe(false);
    expect(chunks[chunks.length - 1]).toMatchObject({ state: 2, token_id: -1, text: '' });
    expect(chunks.every((chunk) => chunk.stream_id === stream.streamId && chunk.request_id === stream.id)).toBe(true);
    expect(chunks.map((chunk) => chunk.text).join('')).toBe(countTo(20));
    // Over plain HTTP the reply is { stream_id } and the chunks were polled; elsewhere it is the run's result.
    const result = await stream.result();
    if (kind === 'http') expect(result).toEqual({ stream_id: stream.streamId });
    else expect(result).toMatchObject({ text: countTo(20), state: 2 });

    const async = client.stream('rkllm_run_async', { handle: 'default', rkllm_input: { input_type: 0, prompt_input: 'count to 5' } });
    let text = '';
    for await (const chunk of async) text += chunk.text;
    expect(text).toBe(countTo(5));
    expect(await async.result()).toEqual({ stream_id: async.streamId });
  });

  it('an error reply throws RpcResponseError with the error object; call() hands it back', async () => {
    const refused = await client.request('rkllm_destroy', { handle: 'no-such-model' }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(RpcResponseError);
    expect(refused).toMatchObject({ code: -32003, method: 'rkllm_destroy', data: { handle: 'no-such-model' } });
    expect((refused as RpcResponseError).error).toEqual({ code: -32003, message: 'No model is loaded under this handle', data: expect.objectContaining({ handle: 'no-such-model' }) });

    const reply = await client.call('rkllm_run', { handle: 'default' });
    expect(reply).toMatchObject({ jsonrpc: '2.0', error: { code: -32602, data: { field: expect.any(String) } } });

    // A stream refused outright: the iteration throws the error, and the reply is that error.
    const stream = client.stream('rkllm_run', { handle: 'no-such-model', rkllm_input: { input_type: 0, prompt_input: 'hi' }, stream: true });
    const { chunks, error } = await drain(stream[Symbol.asyncIterator]());
    expect(chunks).toEqual([]);
    expect(error).toMatchObject({ name: 'RpcResponseError', code: -32003 });
    expect(await stream.reply).toMatchObject({ error: { code: -32003 } });
  });

  it('a request or stream that outlasts its bound fails with TIMEOUT, and the client goes on', async () => {
    const started = Date.now();
    const timedOut = await client.request('rkllm_run', LONG_RUN, { id: `${kind}-slow`, timeoutMs: 300 }).catch((error: unknown) => error);
    const waited = Date.now() - started;
    expect(timedOut).toBeInstanceOf(ClientError);
    expect(timedOut).toMatchObject({ code: 'TIMEOUT', message: expect.stringContaining('300 ms') });
    expect(waited).toBeGreaterThanOrEqual(290);
    expect(waited).toBeLessThan(3000);
    // A timeout only stops the wait. Over HTTP the exchange it cut was the connection, so the
    // server has cancelled the run already; elsewhere it is cancelled by its request id.
    if (kind !== 'http' && kind !== 'http-sse') expect(await client.request('cancel', { request_id: `${kind}-slow` })).toEqual({ cancelled: true });
    await waitIdle(test.control);

    const stream = client.stream('rkllm_run', { ...LONG_RUN, stream: true }, { timeoutMs: 400 });
    const { chunks, error } = await drain(stream[Symbol.asyncIterator]());
    expect(error).toMatchObject({ code: 'TIMEOUT' });
    expect(chunks.length).toBeGreaterThan(0);
    expect(stream.streamId).toEqual(expect.any(String));
    if (kind !== 'http-sse') await client.request('cancel', { stream_id: stream.streamId });
    await waitIdle(test.control);
    expect(await client.request('rkllm_is_running', { handle: 'default' })).toEqual({ running: false });
  });

  it('an aborted stream ends with ABORTED and the server cancels its run', async () => {
    const controller = new AbortController();
    const stream = client.stream('rkllm_run', { ...LONG_RUN, stream: true }, { signal: controller.signal });
    const { chunks, iterator } = await readChunks(stream, 3);
    expect(chunks).toHaveLength(3);
    controller.abort();
    const rest = await drain(iterator);
    expect(rest.error).toMatchObject({ code: 'ABORTED' });
    await waitIdle(test.control);

    // Leaving a for-await loop early does the same.
    for await (const chunk of client.stream('rkllm_run', { ...LONG_RUN, stream: true })) {
      if (chunk.seq === 2) break;
    }
    await waitIdle(test.control);
  });

  it('raw traffic: a text goes as it is, and every message that comes back is seen', async () => {
    const seen: IncomingMessage[] = [];
    const stopSeeing = client.onMessage((message) => seen.push(message));
    await client.sendRaw('this is not JSON');
    await client.sendRaw(JSON.stringify({ jsonrpc: '2.0', id: 'raw-1', method: 'rkllm_is_running', params: { handle: 'default' } }));
    await waitUntil('both answers', () => seen.length >= 2, 3000, 10);
    stopSeeing();
    expect(seen).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ id: null, error: expect.objectContaining({ code: -32700 }) }),
        { jsonrpc: '2.0', id: 'raw-1', result: { running: false } },
      ]),
    );
    // A line cannot carry a newline: refused before anything is written.
    if (kind === 'tcp' || kind === 'stdio') await expect(client.sendRaw('{\n}')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('drop(): abrupt; what waits fails with CLOSED, and the server frees what the client held', async () => {
    const stream = client.stream('rkllm_run', { ...LONG_RUN, stream: true });
    const { chunks, iterator } = await readChunks(stream, 3);
    expect(chunks).toHaveLength(3);
    const waiting = client.request('rkllm_run', LONG_RUN).catch((error: unknown) => error);
    client.drop();
    expect(client.closed).toBe(true);
    expect(client.transport.closeInfo).toMatchObject({ reason: 'dropped' });
    expect((await drain(iterator)).error).toMatchObject({ code: 'CLOSED' });
    expect(await waiting).toMatchObject({ code: 'CLOSED' });
    await expect(client.request('rkllm_get_constants')).rejects.toMatchObject({ code: 'CLOSED' });
    if (kind === 'http') {
      // A polled stream belongs to no connection (docs/protocol.md): the drop cannot cancel it.
      expect((await test.control.request('cancel', { stream_id: stream.streamId })).result).toEqual({ cancelled: true });
    }
    // UDP has no close: the server sees the port unbound within about half a second.
    await waitUntil('the server to free the dropped client', async () => {
      const now = await health(test.control);
      return now.running === 0 && now.queued === 0 && now.connections === 0;
    }, 3000, 20);
  });
});
