// Issue 11, from finding 5: poll answers a page of at most max_chunks (bounded by the server's
// --max-poll-chunks), with next_seq where the next page starts and done only on the page that
// reaches the end, so a long stream is recovered a datagram at a time over UDP. On the real server
// over UDP (a 2,000-chunk stream, by from_seq and by cursor) and on the in-memory engine (bounds).

import type { RkllmServer } from '../../lib/serve';
import { HttpClient, ServerProcess, UdpClient, stopAllServers, waitUntil } from '../integration/client';
import { TestClient, closeAllClients, countText, prompt, startSim } from '../rpc/helpers';

jest.setTimeout(60_000);

/** "count to 5000" stopped at 1,999 tokens by max_new_tokens, then the final chunk: 2,000 chunks. */
const LONG = { handle: 'pages', rkllm_input: { input_type: 0, prompt_input: 'count to 5000' } };
const CHUNKS = 2000;

interface Page {
  chunks: { seq: number; text: string; state: number }[];
  next_seq: number;
  done: boolean;
  result?: { text: string };
}

describe('poll pages over UDP', () => {
  let server: ServerProcess;
  let client: UdpClient;
  let health: HttpClient;

  beforeAll(async () => {
    server = await ServerProcess.start({ model: 'sim:instant', disable: ['tcp', 'websocket'] });
    client = await UdpClient.open(server.port('udp'));
    health = new HttpClient(server.port('http'), { keepAlive: false });
    const init = await client.request('rkllm_init', { handle: 'pages', param: { model_path: 'sim:instant', max_context_len: 262144, max_new_tokens: CHUNKS - 1 } });
    expect(init.error).toBeUndefined();
  });
  afterAll(async () => {
    await client?.close();
    await health?.close();
    await stopAllServers();
  });

  /**
   * Starts the long stream and waits until the server has finished it, whatever datagrams
   * arrived. While it runs, its 2,000 notifications can overflow the client's socket buffer and
   * take replies with them, so the pages are asked for once the pushes are over. The wait asks
   * /health, not poll, so the stream's cursor stays at 0.
   */
  async function longStream(): Promise<string> {
    const reply = await client.request('rkllm_run_async', LONG);
    const streamId = String(reply.result?.stream_id);
    expect(streamId).toMatch(/^st-/);
    // The run starts as it is accepted, so nothing running means it has finished; then the
    // datagrams still queued drain, until nothing has arrived for a while.
    await waitUntil('the long stream to finish', async () => (await health.health()).json?.running === 0, 10_000, 20);
    await waitUntil('the pushed datagrams to drain', () => Date.now() - (client.received[client.received.length - 1]?.at ?? 0) > 300, 10_000, 50);
    return streamId;
  }

  /** One page. A from_seq poll may be asked again when its reply is lost; a cursor poll may not. */
  async function page(params: Record<string, unknown>, attempts = 1): Promise<Page> {
    for (let attempt = 1; ; attempt++) {
      try {
        const reply = await client.request('poll', params, { timeoutMs: attempts > 1 ? 1000 : 10_000 });
        expect(reply.error).toBeUndefined();
        return reply.result as Page;
      } catch (error) {
        if (attempt >= attempts) throw error;
      }
    }
  }

  it(`recovers every chunk of a ${CHUNKS}-chunk stream by from_seq, 250 a datagram`, async () => {
    const streamId = await longStream();
    const seen: Page['chunks'] = [];
    let last: Page | undefined;
    for (let turn = 0; turn < 100 && !last?.done; turn++) {
      last = await page({ stream_id: streamId, from_seq: seen.length, max_chunks: 250 }, 5);
      expect(last.chunks.length).toBeLessThanOrEqual(250);
      expect(last.next_seq).toBe(seen.length + last.chunks.length);
      // Only the page that reaches the end is done, and only it carries the result.
      expect(last.result === undefined).toBe(!last.done);
      seen.push(...last.chunks);
    }
    expect(seen).toHaveLength(CHUNKS);
    seen.forEach((chunk, index) => expect(chunk.seq).toBe(index));
    expect(seen[CHUNKS - 1].state).toBe(2);
    const text = seen.map((chunk) => chunk.text).join('');
    expect(countText(5000).startsWith(text)).toBe(true);
    expect(last?.result?.text).toBe(text);
  });

  it('pages by cursor: each poll goes on where the last one ended', async () => {
    const streamId = await longStream();
    const seqs: number[] = [];
    let done = false;
    for (let polls = 0; !done && polls < 100; polls++) {
      const next = await page({ stream_id: streamId, max_chunks: 300 });
      expect(next.chunks.length).toBeLessThanOrEqual(300);
      seqs.push(...next.chunks.map((chunk) => chunk.seq));
      expect(next.next_seq).toBe(seqs.length);
      done = next.done;
    }
    expect(seqs).toEqual(Array.from({ length: CHUNKS }, (_, index) => index));
  });
});

describe('poll page bounds (in-memory engine)', () => {
  let server: RkllmServer;

  beforeAll(async () => {
    server = await startSim('1.3', { model: 'sim:instant', maxPollChunks: 50 });
  });
  afterAll(async () => {
    closeAllClients();
    await server.shutdown();
  });

  it("max_chunks above the server's maximum gets the maximum; no max_chunks gets it too", async () => {
    const client = new TestClient(server);
    const { stream_id } = await client.ok('rkllm_run_async', { ...prompt('count to 100'), handle: 'default' });
    await client.streamEnd(stream_id);
    const big = await client.ok('poll', { stream_id, from_seq: 0, max_chunks: 1_000_000 });
    expect(big.chunks).toHaveLength(50);
    expect(big).toMatchObject({ next_seq: 50, done: false });
    expect(big.result).toBeUndefined();
    const plain = await client.ok('poll', { stream_id, from_seq: 150 });
    expect(plain.chunks).toHaveLength(50);
    expect(plain.next_seq).toBe(200);
    const tail = await client.ok('poll', { stream_id, from_seq: 190, max_chunks: 20 });
    // 199 tokens and the final chunk: 200 in all, the last page is done and carries the result.
    expect(tail.chunks.map((chunk: { seq: number }) => chunk.seq)).toEqual(Array.from({ length: 10 }, (_, index) => 190 + index));
    expect(tail).toMatchObject({ next_seq: 200, done: true, result: { text: countText(100) } });
    client.close();
  });

  it('max_chunks must be a positive integer', async () => {
    const client = new TestClient(server);
    const { stream_id } = await client.ok('rkllm_run_async', { ...prompt('count to 2'), handle: 'default' });
    for (const max_chunks of [0, -1, 2.5, '10']) {
      expect(await client.fails('poll', { stream_id, max_chunks })).toMatchObject({ code: -32602, data: { field: 'max_chunks' } });
    }
    client.close();
  });
});
