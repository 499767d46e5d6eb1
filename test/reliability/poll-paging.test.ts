// Issue 11, from finding 5: poll answers a page of at most max_chunks (bounded by the server's
// --max-poll-chunks), with next_seq where the next page starts and done only on the page that
// reaches the end, so a long stream is recovered a datagram at a time over UDP. On the real server
// over UDP (a 2,000-chunk stream, by from_seq and by cursor) and on the in-memory engine (bounds).

import type { RkllmServer } from '../../lib/serve';
import { ServerProcess, UdpClient, stopAllServers, waitUntil } from '../integration/client';
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

  beforeAll(async () => {
    server = await ServerProcess.start({ model: 'sim:instant', disable: ['tcp', 'websocket'] });
    client = await UdpClient.open(server.port('udp'));
    const init = await client.request('rkllm_init', { handle: 'pages', param: { model_path: 'sim:instant', max_context_len: 262144, max_new_tokens: CHUNKS - 1 } });
    expect(init.error).toBeUndefined();
  });
  afterAll(async () => {
    await client?.close();
    await stopAllServers();
  });

  /** Starts the long stream; with waitEnd, waits until the server has finished it (whatever datagrams arrived). */
  async function longStream(waitEnd: boolean): Promise<string> {
    const reply = await client.request('rkllm_run_async', LONG);
    const streamId = String(reply.result?.stream_id);
    if (waitEnd) {
      await waitUntil('the long stream to finish', async () => (await client.request('poll', { stream_id: streamId, from_seq: CHUNKS - 1, max_chunks: 1 })).result?.done, 10_000, 20);
    }
    return streamId;
  }

  async function page(params: Record<string, unknown>): Promise<Page> {
    const reply = await client.request('poll', params);
    expect(reply.error).toBeUndefined();
    return reply.result as Page;
  }

  it(`recovers every chunk of a ${CHUNKS}-chunk stream by from_seq, 250 a datagram`, async () => {
    const streamId = await longStream(true);
    const seen: Page['chunks'] = [];
    let last: Page | undefined;
    for (let turn = 0; turn < 100 && !last?.done; turn++) {
      last = await page({ stream_id: streamId, from_seq: seen.length, max_chunks: 250 });
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
    // Read while it runs: a page holds what is there, up to max_chunks.
    const streamId = await longStream(false);
    const seqs: number[] = [];
    let done = false;
    for (let polls = 0; !done && polls < 1000; polls++) {
      const next = await page({ stream_id: streamId, max_chunks: 300 });
      expect(next.chunks.length).toBeLessThanOrEqual(300);
      seqs.push(...next.chunks.map((chunk) => chunk.seq));
      expect(next.next_seq).toBe(seqs.length);
      done = next.done;
      if (next.chunks.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
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
