// Issue 11, finding 6, rule by rule on the in-memory engine: streams kept per connection and
// overall are bounded, at a bound the oldest finished stream makes room (one already delivered
// before one still unread), a new stream is refused with TOO_MANY_STREAMS only when every stream
// is still running, the chunks kept are bounded in (estimated) bytes, and finished poll-only
// streams nobody has read count against their model's queue.

import type { RkllmServer } from '../../lib/serve';
import { TestClient, closeAllClients, prompt, startSim, waitUntil } from '../rpc/helpers';

jest.setTimeout(30_000);

const TOO_MANY_STREAMS = -32020;
const STREAM_NOT_FOUND = -32013;
const LONG = 'count to 100000';

/** Polls a poll-only stream to its end. */
async function readToEnd(client: TestClient, streamId: string): Promise<void> {
  for (let turn = 0; turn < 2000; turn++) {
    if ((await client.ok('poll', { stream_id: streamId })).done) return;
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  throw new Error(`stream ${streamId} did not end`);
}

describe('bounds on kept streams', () => {
  let server: RkllmServer;

  beforeAll(async () => {
    // Poll-only streams outlive their connection; a short expiry clears them between tests.
    server = await startSim('1.3', { model: 'sim:instant', maxStreamsPerClient: 3, maxStreams: 5, maxQueue: 2, streamExpiryMs: 2000 });
    const loader = new TestClient(server);
    await loader.ok('rkllm_init', { param: { model_path: 'sim:slow-abort' }, handle: 'slow' });
    await loader.ok('rkllm_init', { param: { model_path: 'sim:slow-abort' }, handle: 'slow2' });
  });
  afterAll(async () => {
    closeAllClients();
    await server.shutdown();
  });
  afterEach(async () => {
    closeAllClients();
    await waitUntil(() => server.stats().streams === 0 && server.stats().running === 0, 5000, 'every stream to be gone');
  });

  it('a connection keeps at most maxStreamsPerClient running streams; then its oldest finished one makes room', async () => {
    const owner = new TestClient(server);
    // One running and two queued on 'slow': three live streams of one connection.
    for (let i = 0; i < 3; i++) await owner.ok('rkllm_run_async', { ...prompt(LONG), handle: 'slow' });
    expect(await owner.fails('rkllm_run_async', { ...prompt('count to 2'), handle: 'default' })).toMatchObject({
      code: TOO_MANY_STREAMS,
      data: { scope: 'client', limit: 3 },
    });
    // Another connection is not held back by this one's bound.
    expect((await new TestClient(server).ok('rkllm_run_async', { ...prompt('count to 2'), handle: 'default' })).stream_id).toEqual(expect.any(String));
    owner.close();
    await waitUntil(() => server.stats().streams === 1, 2000, 'the owner\'s streams to go');

    const reader = new TestClient(server);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const { stream_id } = await reader.ok('rkllm_run_async', { ...prompt('count to 2'), handle: 'default' });
      await reader.streamEnd(stream_id);
      ids.push(stream_id);
    }
    expect(await reader.fails('poll', { stream_id: ids[0] })).toMatchObject({ code: STREAM_NOT_FOUND });
    for (const id of ids.slice(1)) expect((await reader.ok('poll', { stream_id: id, from_seq: 0 })).done).toBe(true);
  });

  it('refuses a new stream when every stream the server keeps is still running', async () => {
    // One running and two queued on each slow model: five live streams of five connections.
    const handles = ['slow', 'slow', 'slow', 'slow2', 'slow2'];
    for (const handle of handles) await new TestClient(server).ok('rkllm_run_async', { ...prompt(LONG), handle });
    expect(server.stats().streams).toBe(5);
    expect(await new TestClient(server).fails('rkllm_run_async', { ...prompt('count to 2'), handle: 'default' })).toMatchObject({
      code: TOO_MANY_STREAMS,
      data: { scope: 'server', limit: 5 },
    });
  });

  it('at the server bound a delivered finished stream goes before an older unread one', async () => {
    const poller = new TestClient(server, { canPush: false });
    const unread = (await poller.ok('rkllm_run_async', { ...prompt('count to 2'), handle: 'default' })).stream_id as string;
    const first = new TestClient(server);
    const delivered = (await first.ok('rkllm_run_async', { ...prompt('count to 2'), handle: 'default' })).stream_id as string;
    await first.streamEnd(delivered);
    for (let i = 0; i < 3; i++) await new TestClient(server).ok('rkllm_run_async', { ...prompt(LONG), handle: 'slow' });
    expect(server.stats().streams).toBe(5);

    const second = new TestClient(server);
    const newer = (await second.ok('rkllm_run_async', { ...prompt('count to 2'), handle: 'default' })).stream_id as string;
    await second.streamEnd(newer);
    expect(await first.fails('poll', { stream_id: delivered })).toMatchObject({ code: STREAM_NOT_FOUND });
    // Again: the newer delivered stream goes, the unread one stays for its poller.
    await new TestClient(server).ok('rkllm_run_async', { ...prompt('count to 2'), handle: 'default' });
    expect(await second.fails('poll', { stream_id: newer })).toMatchObject({ code: STREAM_NOT_FOUND });
    expect((await poller.ok('poll', { stream_id: unread })).chunks.length).toBeGreaterThan(0);
    expect(server.stats().streams).toBe(5);
  });

  it('finished poll-only streams nobody read count against the model queue; reading one frees its place', async () => {
    const client = new TestClient(server, { canPush: false });
    const ids: string[] = [];
    // maxQueue 2: one running and two waiting, so three unread streams fill it.
    for (let i = 0; i < 3; i++) ids.push((await client.ok('rkllm_run_async', { ...prompt('count to 2'), handle: 'default' })).stream_id);
    await waitUntil(() => server.stats().running === 0, 2000, 'the runs to finish');
    const refused = await client.fails('rkllm_run_async', { ...prompt('count to 2'), handle: 'default' });
    expect(refused).toMatchObject({ code: -32001, data: { unread_streams: 3, limit: 2 } });
    // Plain runs too: the queue is the model's, not the stream's.
    expect(await new TestClient(server).fails('rkllm_run', { ...prompt('count to 2'), handle: 'default' })).toMatchObject({ code: -32001 });
    // Another model is not held.
    expect((await client.ok('rkllm_run_async', { ...prompt('count to 2'), handle: 'slow' })).stream_id).toEqual(expect.any(String));
    await readToEnd(client, ids[0]);
    expect((await client.ok('rkllm_run_async', { ...prompt('count to 2'), handle: 'default' })).stream_id).toEqual(expect.any(String));
  });
});

describe('the bound on buffered bytes', () => {
  let server: RkllmServer;
  const MAX_BYTES = 100_000;

  beforeAll(async () => {
    server = await startSim('1.3', { model: 'sim:instant', maxStreamBytes: MAX_BYTES });
    await new TestClient(server).ok('rkllm_init', { param: { model_path: 'sim:instant', max_context_len: 262144, max_new_tokens: 0 }, handle: 'big' });
  });
  afterAll(async () => {
    closeAllClients();
    await server.shutdown();
  });

  it('a long stream keeps its newest chunks within the bound and poll reports the gap', async () => {
    const client = new TestClient(server);
    const { stream_id } = await client.ok('rkllm_run_async', { ...prompt('count to 1000'), handle: 'big' });
    const pushed = await client.streamEnd(stream_id);
    expect(pushed).toHaveLength(2001);
    expect(server.stats().streamBytes).toBeLessThanOrEqual(MAX_BYTES);
    expect(server.stats().streamBytes).toBeGreaterThan(MAX_BYTES / 2);
    const page = await client.ok('poll', { stream_id, from_seq: 0 });
    expect(page.missed_from_seq).toBe(0);
    expect(page.missed_to_seq).toBeGreaterThan(1000);
    expect(page.chunks[0].seq).toBe(page.missed_to_seq + 1);
    expect(page.done).toBe(true);

    // A second long stream takes the room: the finished one is dropped first.
    const second = await client.ok('rkllm_run_async', { ...prompt('count to 1000'), handle: 'big' });
    await client.streamEnd(second.stream_id);
    expect(server.stats().streamBytes).toBeLessThanOrEqual(MAX_BYTES);
    expect(await client.fails('poll', { stream_id })).toMatchObject({ code: STREAM_NOT_FOUND });
    expect((await client.ok('poll', { stream_id: second.stream_id })).done).toBe(true);
    client.close();
  });

});

describe('a byte budget smaller than one chunk', () => {
  it('refuses a new stream while running streams hold the whole budget', async () => {
    const tiny = await startSim('1.3', { model: 'sim:slow-abort', maxStreamBytes: 100 });
    try {
      const client = new TestClient(tiny);
      const { stream_id } = await client.ok('rkllm_run_async', prompt(LONG));
      await client.connection.waitFor(() => client.connection.notifications(stream_id)[0], 5000, 'a first token');
      expect(await client.fails('rkllm_run_async', prompt(LONG))).toMatchObject({ code: TOO_MANY_STREAMS, data: { scope: 'bytes', limit: 100 } });
      client.close();
    } finally {
      await tiny.shutdown();
    }
  });
});
