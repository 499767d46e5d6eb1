// Streams: notifications to the asking connection only, contiguous seq, the final notification
// and then the reply; poll with and without from_seq, bounded buffers, expiry, event-stream holds.

import type { RkllmServer } from '../../lib/serve';
import { ABIS, TestClient, countText, prompt, startSim, waitUntil, type RpcReply } from './helpers';

function expectContiguous(seqs: number[]): void {
  seqs.forEach((seq, index) => expect(seq).toBe(index));
}

describe.each(ABIS)('streams (ABI %s)', (abi) => {
  let server: RkllmServer;

  beforeAll(async () => {
    server = await startSim(abi, { model: 'sim:instant' });
  });
  afterAll(() => server.shutdown());

  it('rkllm_run with stream: true pushes every chunk, then the final notification, then the result', async () => {
    const client = new TestClient(server);
    const reply = await client.call('rkllm_run', { ...prompt('count to 20'), stream: true });
    const notifications = client.connection.notifications();
    const streamId = notifications[0].stream_id;
    expect(notifications.every((n) => n.stream_id === streamId && n.request_id === reply.id)).toBe(true);
    expectContiguous(notifications.map((n) => n.seq));
    const last = notifications[notifications.length - 1];
    expect(last).toMatchObject({ state: 2, text: '', token_id: -1 });
    expect(last.perf).toHaveProperty('generate_tokens');
    expect(notifications.slice(0, -1).map((n) => n.text).join('')).toBe(countText(20));
    expect(reply.result).toMatchObject({ text: countText(20), state: 2 });
    // The reply is the very last message.
    expect(client.connection.received[client.connection.received.length - 1]).toBe(reply);
  });

  it('keeps multi-byte characters whole in every chunk', async () => {
    const client = new TestClient(server);
    const reply = await client.call('rkllm_run', { ...prompt('tell me about 日本語 and café please'), stream: true });
    const texts = client.connection.notifications().map((n) => n.text);
    expect(texts.join('')).toBe(reply.result.text);
    for (const text of texts) expect(Buffer.from(text, 'utf8').toString('utf8')).toBe(text);
    expect(texts.join('')).not.toContain('\uFFFD');
  });

  it('rkllm_run_async answers { stream_id } first; notifications follow', async () => {
    const client = new TestClient(server);
    const reply = await client.call('rkllm_run_async', prompt('count to 7'));
    expect(Object.keys(reply.result)).toEqual(['stream_id']);
    expect(client.connection.received[0]).toBe(reply);
    const notifications = await client.streamEnd(reply.result.stream_id);
    expectContiguous(notifications.map((n) => n.seq));
    expect(notifications.map((n) => n.text).join('')).toBe(countText(7));
  });

  it('two streams at once on two connections: no chunk crosses over', async () => {
    const first = new TestClient(server);
    const second = new TestClient(server);
    const [a, b] = await Promise.all([first.call('rkllm_run_async', prompt('count to 100')), second.call('rkllm_run_async', prompt('count to 80'))]);
    const [na, nb] = await Promise.all([first.streamEnd(a.result.stream_id), second.streamEnd(b.result.stream_id)]);
    expect(first.connection.notifications()).toHaveLength(na.length);
    expect(second.connection.notifications()).toHaveLength(nb.length);
    expect(na.map((n) => n.text).join('')).toBe(countText(100));
    expect(nb.map((n) => n.text).join('')).toBe(countText(80));
    expectContiguous(na.map((n) => n.seq));
    expectContiguous(nb.map((n) => n.seq));
  });

  it('a connection that cannot be pushed to gets { stream_id } at once and polls', async () => {
    const client = new TestClient(server, { canPush: false });
    const reply = await client.call('rkllm_run', { ...prompt('count to 30'), stream: true });
    const streamId: string = reply.result.stream_id;
    expect(client.connection.notifications()).toHaveLength(0);
    // Cursor polls: each returns what the previous did not, until done.
    const seen: { seq: number; text: string }[] = [];
    let done = false;
    let result: { text: string } | undefined;
    const deadline = Date.now() + 10_000;
    while (!done && Date.now() < deadline) {
      const page = await client.ok('poll', { stream_id: streamId });
      seen.push(...page.chunks);
      done = page.done;
      result = page.result;
      if (!done) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(done).toBe(true);
    expectContiguous(seen.map((c) => c.seq));
    expect(seen.map((c) => c.text).join('')).toBe(countText(30));
    expect(result?.text).toBe(countText(30));
    // Nothing new for the cursor; from_seq re-reads.
    expect((await client.ok('poll', { stream_id: streamId })).chunks).toEqual([]);
    const again = await client.ok('poll', { stream_id: streamId, from_seq: 5 });
    expect(again.chunks[0].seq).toBe(5);
    expect(again.chunks).toHaveLength(seen.length - 5);
    expect(again.missed_from_seq).toBeUndefined();
  });

  it('poll and cancel refuse unknown streams', async () => {
    const client = new TestClient(server);
    expect(await client.fails('poll', { stream_id: 'st-nope' })).toMatchObject({ code: -32013 });
    expect(await client.fails('cancel', { stream_id: 'st-nope' })).toMatchObject({ code: -32013 });
    expect(await client.fails('poll', { stream_id: 'x', from_seq: -1 })).toMatchObject({ code: -32602, data: { field: 'from_seq' } });
  });

  it('a failing run ends its stream with state 3 and error, and the reply is one error', async () => {
    const client = new TestClient(server);
    const { handle } = await client.ok('rkllm_init', { param: { model_path: 'sim:faulty-midstream' } });
    try {
      const reply = await client.call('rkllm_run', { ...prompt('count to 100'), stream: true, handle });
      expect(reply.error).toMatchObject({ code: -32011 });
      const notifications = client.connection.notifications();
      expectContiguous(notifications.map((n) => n.seq));
      expect(notifications).toHaveLength(6);
      expect(notifications[5]).toMatchObject({ state: 3, error: { code: -32011 } });
      const plain = await client.call('rkllm_run', { ...prompt('count to 100'), handle });
      expect(plain.error?.code).toBe(-32011);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(client.connection.replies().filter((r) => r.id === reply.id || r.id === plain.id)).toHaveLength(2);
    } finally {
      await client.ok('rkllm_destroy', { handle });
    }
  });

  it('an event-stream connection: handleMessage settles after the stream has ended', async () => {
    const client = new TestClient(server, { holdUntilStreamsEnd: true });
    await client.sendText(JSON.stringify({ jsonrpc: '2.0', id: 'sse', method: 'rkllm_run_async', params: prompt('count to 50') }));
    const notifications = client.connection.notifications();
    expect(notifications[notifications.length - 1].perf).toBeDefined();
    expect((client.connection.received[0] as RpcReply).id).toBe('sse');
  });
});

describe.each(ABIS)('stream limits (ABI %s)', (abi) => {
  let server: RkllmServer;

  beforeAll(async () => {
    server = await startSim(abi, { model: 'sim:instant', maxBufferedChunks: 10, streamExpiryMs: 300 });
    const loader = new TestClient(server);
    await loader.ok('rkllm_init', { param: { model_path: 'sim:slow-abort' }, handle: 'slow' });
  });
  afterAll(() => server.shutdown());

  it('keeps the newest chunks only and says which were missed', async () => {
    const client = new TestClient(server, { canPush: false });
    const { stream_id } = await client.ok('rkllm_run_async', { ...prompt('count to 40'), handle: 'default' });
    let page = await client.ok('poll', { stream_id, from_seq: 0 });
    const deadline = Date.now() + 5000;
    while (!page.done && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      page = await client.ok('poll', { stream_id, from_seq: 0 });
    }
    expect(page.done).toBe(true);
    expect(page.chunks).toHaveLength(10);
    expect(page.missed_from_seq).toBe(0);
    expect(page.missed_to_seq).toBe(page.next_seq - 11);
    expect(page.chunks[9].seq).toBe(page.next_seq - 1);
    expect(page.result.text).toBe(countText(40));
  });

  it('expires a finished stream after streamExpiryMs without a poll', async () => {
    const client = new TestClient(server);
    const { stream_id } = await client.ok('rkllm_run_async', { ...prompt('count to 3'), handle: 'default' });
    await client.streamEnd(stream_id);
    expect((await client.ok('poll', { stream_id })).done).toBe(true);
    await waitUntil(() => server.stats().streams === 0, 2000, 'the stream to expire');
    expect(await client.fails('poll', { stream_id })).toMatchObject({ code: -32013 });
    expect(server.stats().connections).toBe(0);
  });

  it('cancels a running poll-only stream whose poller went silent', async () => {
    const client = new TestClient(server, { canPush: false });
    const { stream_id } = await client.ok('rkllm_run_async', { ...prompt('count to 100000'), handle: 'slow' });
    await client.ok('poll', { stream_id });
    await waitUntil(() => server.stats().streams === 0, 3000, 'the silent stream to expire');
    expect(await client.fails('poll', { stream_id })).toMatchObject({ code: -32013 });
    // The native run is stopped too (slow-abort takes about a second to land).
    await waitUntil(() => server.stats().running === 0, 3000, 'the run to stop');
  });
});
