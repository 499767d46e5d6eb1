// Issue 11, finding 4: streams of other clients can no longer be read, cancelled or have their
// cursor moved, and model-wide calls follow --model-control. On the in-memory engine (every rule,
// with the core's own view) and on the real server over TCP and HTTP (plain polling and SSE).
// Stream ids are 128 random bits: nothing about one id tells another.

import type { RkllmServer } from '../../lib/serve';
import { defaultConfig, modelControlPolicy } from '../../lib/serve';
import { HttpClient, ServerProcess, TcpClient, stopAllServers, waitUntil as waitFor, withTimeout } from '../integration/client';
import { TestClient, closeAllClients, countText, prompt, startSim, waitUntil, type RpcReply } from '../rpc/helpers';

jest.setTimeout(60_000);

const STREAM_NOT_FOUND = -32013;
const MODEL_CONTROL_REFUSED = -32021;
const ID_FORMAT = /^st-[0-9a-f]{32}$/;

/** Ids a client might try from one of its own: the next and previous counter, the last digit changed. */
function neighbours(id: string): string[] {
  const guesses = new Set<string>();
  const counter = /^(.*-)(\d+)$/.exec(id);
  if (counter) for (const step of [-2, -1, 1, 2]) guesses.add(`${counter[1]}${Number(counter[2]) + step}`);
  const last = id[id.length - 1];
  for (const digit of '0123456789abcdef') if (digit !== last) guesses.add(id.slice(0, -1) + digit);
  guesses.delete(id);
  return [...guesses];
}

/** The detail of a STREAM_NOT_FOUND with the id taken out: the same for every id a client cannot reach. */
function detailWithoutId(error: RpcReply['error'], id: string): string {
  return String(error?.data?.detail).split(id).join('<id>');
}

describe('stream ownership on the in-memory engine', () => {
  let server: RkllmServer;

  beforeAll(async () => {
    server = await startSim('1.3', { model: 'sim:instant' });
    await new TestClient(server).ok('rkllm_init', { param: { model_path: 'sim:slow-abort' }, handle: 'slow' });
  });
  afterAll(async () => {
    closeAllClients();
    await server.shutdown();
  });

  it('stream ids are 128 random bits: no shared prefix, no counter', async () => {
    const clients = [new TestClient(server), new TestClient(server)];
    const ids: string[] = [];
    for (let i = 0; i < 64; i++) {
      const client = clients[i % 2];
      const { stream_id } = await client.ok('rkllm_run_async', { ...prompt('count to 1'), handle: 'default' });
      await client.streamEnd(stream_id);
      ids.push(stream_id);
    }
    for (const id of ids) expect(id).toMatch(ID_FORMAT);
    expect(new Set(ids).size).toBe(ids.length);
    // Every hex digit of the id varies from stream to stream: no per-server prefix, no counter.
    for (let position = 3; position < 35; position++) expect(new Set(ids.map((id) => id[position])).size).toBeGreaterThan(1);
    // About half of the 64 x 128 bits are set (the mean is 4096, the standard deviation 45).
    const ones = ids.reduce((sum, id) => sum + [...Buffer.from(id.slice(3), 'hex')].reduce((bits, byte) => bits + byte.toString(2).split('1').length - 1, 0), 0);
    expect(ones).toBeGreaterThan(3800);
    expect(ones).toBeLessThan(4400);
    for (const client of clients) client.close();
  });

  it('another connection cannot poll, cancel or move the cursor of a pushed stream, even with its id', async () => {
    const owner = new TestClient(server);
    const stranger = new TestClient(server);
    const { stream_id } = await owner.ok('rkllm_run_async', { ...prompt('count to 60'), handle: 'slow' });
    await owner.connection.waitFor(() => owner.connection.notifications(stream_id)[0], 5000, 'a first token');

    const polled = await stranger.fails('poll', { stream_id });
    const unknown = `st-${'0'.repeat(32)}`;
    expect(polled).toMatchObject({ code: STREAM_NOT_FOUND });
    // Worded as for an id that never existed: a stranger cannot even tell the stream is there.
    expect(detailWithoutId(polled, stream_id)).toBe(detailWithoutId(await stranger.fails('poll', { stream_id: unknown }), unknown));
    expect(await stranger.fails('poll', { stream_id, from_seq: 0 })).toMatchObject({ code: STREAM_NOT_FOUND });
    expect(await stranger.fails('cancel', { stream_id })).toMatchObject({ code: STREAM_NOT_FOUND });

    // The owner's cursor was not moved: its first cursor poll starts at seq 0.
    const page = await owner.ok('poll', { stream_id });
    expect(page.chunks[0].seq).toBe(0);
    // Not cancelled: the stream runs to its end, and only the owner heard it.
    const last = (await owner.streamEnd(stream_id, 15_000)).pop();
    expect(last).toMatchObject({ state: 2 });
    expect(last?.aborted).toBeUndefined();
    expect(stranger.connection.notifications()).toHaveLength(0);
    owner.close();
    stranger.close();
  });

  it('a poll-only stream belongs to the holder of its id: nearby ids find nothing, the cursor is whole', async () => {
    const holder = new TestClient(server, { canPush: false });
    const stranger = new TestClient(server, { canPush: false });
    const { stream_id } = await holder.ok('rkllm_run_async', { ...prompt('count to 30'), handle: 'default' });
    const own = (await stranger.ok('rkllm_run_async', { ...prompt('count to 2'), handle: 'default' })).stream_id as string;
    for (const guess of neighbours(own)) expect({ guess, code: (await stranger.call('poll', { stream_id: guess })).error?.code }).toEqual({ guess, code: STREAM_NOT_FOUND });
    // The stranger reads its own stream to the end (so it holds no place in the queue).
    let done = false;
    for (let turn = 0; turn < 1000 && !done; turn++) {
      done = (await stranger.ok('poll', { stream_id: own })).done;
      if (!done) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(done).toBe(true);

    const seen: { seq: number; text: string }[] = [];
    let result: { text: string } | undefined;
    for (let turn = 0; turn < 1000 && result === undefined; turn++) {
      const page = await holder.ok('poll', { stream_id });
      seen.push(...page.chunks);
      result = page.result;
      if (!page.done) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    seen.forEach((chunk, index) => expect(chunk.seq).toBe(index));
    expect(seen.map((chunk) => chunk.text).join('')).toBe(countText(30));
    expect(result?.text).toBe(countText(30));
    holder.close();
    stranger.close();
  });
});

describe('--model-control', () => {
  it("'auto' is 'owner' once a network transport listens beyond loopback, else 'any'", async () => {
    const config = defaultConfig();
    expect(config.modelControl).toBe('auto');
    expect(modelControlPolicy(config)).toBe('any');
    const exposed = { ...config, transports: { ...config.transports, http: { ...config.transports.http, host: '0.0.0.0' } } };
    expect(modelControlPolicy(exposed)).toBe('owner');
    const offBeyondLoopback = { ...exposed, transports: { ...exposed.transports, http: { ...exposed.transports.http, enabled: false } } };
    expect(modelControlPolicy(offBeyondLoopback)).toBe('any');
    expect(modelControlPolicy({ ...exposed, modelControl: 'any' })).toBe('any');
    // The server built on such a config applies it (nothing is bound here: no transport starts).
    const server = await startSim('1.3', { model: 'sim:slow-abort', transports: exposed.transports });
    try {
      const owner = new TestClient(server);
      const stranger = new TestClient(server);
      const { stream_id } = await owner.ok('rkllm_run_async', { ...prompt('count to 100000'), handle: 'default' });
      await owner.connection.waitFor(() => owner.connection.notifications(stream_id)[0], 5000, 'a first token');
      expect(await stranger.fails('rkllm_abort', { handle: 'default' })).toMatchObject({ code: MODEL_CONTROL_REFUSED, data: { reason: 'run_of_another_client' } });
      owner.close();
      stranger.close();
    } finally {
      await server.shutdown();
    }
  });

  describe("'owner'", () => {
    let server: RkllmServer;

    beforeAll(async () => {
      server = await startSim('1.3', { model: 'sim:slow-abort', modelControl: 'owner' });
    });
    afterAll(async () => {
      closeAllClients();
      await server.shutdown();
    });

    it("refuses rkllm_abort, template and destroy that would touch another client's run; the owner may abort its own", async () => {
      const owner = new TestClient(server);
      const stranger = new TestClient(server);
      const { stream_id } = await owner.ok('rkllm_run_async', { ...prompt('count to 100000'), handle: 'default' });
      await owner.connection.waitFor(() => owner.connection.notifications(stream_id)[0], 5000, 'a first token');

      expect(await stranger.fails('rkllm_abort', { handle: 'default' })).toMatchObject({
        code: MODEL_CONTROL_REFUSED,
        data: { reason: 'run_of_another_client', handle: 'default' },
      });
      const template = { handle: 'default', system_prompt: 'x', prompt_prefix: '', prompt_postfix: '' };
      expect(await stranger.fails('rkllm_set_chat_template', template)).toMatchObject({ code: MODEL_CONTROL_REFUSED, data: { reason: 'requests_of_other_clients' } });
      expect(await stranger.fails('rkllm_clear_kv_cache', { handle: 'default', keep_system_prompt: false })).toMatchObject({ code: MODEL_CONTROL_REFUSED });
      // The operator's model is never a client's to destroy.
      expect(await stranger.fails('rkllm_destroy', { handle: 'default' })).toMatchObject({ code: MODEL_CONTROL_REFUSED, data: { reason: 'startup_model' } });
      expect(server.stats().running).toBe(1);

      // The owner aborts its own run: it ends as aborted, and the model is free again.
      expect(await owner.ok('rkllm_abort', { handle: 'default' })).toEqual({ return_code: 0 });
      expect((await owner.streamEnd(stream_id)).pop()).toMatchObject({ aborted: true, reason: 'abort' });
      await waitUntil(() => server.stats().running === 0, 5000, 'the aborted run to stop');
      // Nothing of anyone's runs: the stranger's calls go through (abort of nothing is 0).
      expect(await stranger.ok('rkllm_abort', { handle: 'default' })).toEqual({ return_code: 0 });
      expect(await stranger.ok('rkllm_set_chat_template', template)).toEqual({ return_code: 0 });
      owner.close();
      stranger.close();
    });

    it('a model a connection loaded is its own while the connection is open, then shared', async () => {
      const loader = new TestClient(server);
      const stranger = new TestClient(server);
      await loader.ok('rkllm_init', { param: { model_path: 'sim:instant' }, handle: 'mine' });
      const template = { handle: 'mine', system_prompt: '', prompt_prefix: '<u>', prompt_postfix: '</u>' };
      expect(await stranger.fails('rkllm_set_chat_template', template)).toMatchObject({ code: MODEL_CONTROL_REFUSED, data: { reason: 'loaded_by_another_client', handle: 'mine' } });
      expect(await stranger.fails('rkllm_abort', { handle: 'mine' })).toMatchObject({ code: MODEL_CONTROL_REFUSED, data: { reason: 'loaded_by_another_client' } });
      expect(await stranger.fails('rkllm_destroy', { handle: 'mine' })).toMatchObject({ code: MODEL_CONTROL_REFUSED, data: { reason: 'loaded_by_another_client' } });
      // Runs stay open to everyone.
      expect((await stranger.ok('rkllm_run', { ...prompt('count to 3'), handle: 'mine' })).text).toBe(countText(3));
      expect(await loader.ok('rkllm_set_chat_template', template)).toEqual({ return_code: 0 });
      loader.close();
      expect(await stranger.ok('rkllm_destroy', { handle: 'mine' })).toEqual({ return_code: 0 });
      stranger.close();
    });
  });
});

describe('stream ownership on the real server (TCP, HTTP)', () => {
  let server: ServerProcess;
  let setup: HttpClient;

  beforeAll(async () => {
    server = await ServerProcess.start({ model: 'sim:instant', disable: ['udp', 'websocket'], args: ['--model-control', 'owner'] });
    setup = new HttpClient(server.port('http'), { keepAlive: false });
    // Loaded over a connection that closes at once: a shared model.
    expect((await setup.request('rkllm_init', { handle: 'slow', param: { model_path: 'sim:slow-abort' } })).error).toBeUndefined();
  });
  afterAll(async () => {
    await setup?.close();
    await stopAllServers();
  });

  it('TCP: another connection cannot poll, cancel, steal the cursor or abort the run of a stream', async () => {
    const owner = await TcpClient.connect(server.port('tcp'));
    const stranger = await TcpClient.connect(server.port('tcp'));
    try {
      let streamId: string | undefined;
      let firstChunk!: () => void;
      const started = new Promise<void>((resolve) => (firstChunk = resolve));
      const outcome = owner.stream('rkllm_run_async', { handle: 'slow', rkllm_input: { input_type: 0, prompt_input: 'count to 100' } }, {
        timeoutMs: 20_000,
        onChunk: (chunk) => {
          streamId = String(chunk.stream_id);
          firstChunk();
        },
      });
      await withTimeout(started, 10_000, 'the first chunk');
      expect(streamId).toMatch(ID_FORMAT);
      expect((await stranger.request('poll', { stream_id: streamId })).error?.code).toBe(STREAM_NOT_FOUND);
      expect((await stranger.request('poll', { stream_id: streamId, from_seq: 0 })).error?.code).toBe(STREAM_NOT_FOUND);
      expect((await stranger.request('cancel', { stream_id: streamId })).error?.code).toBe(STREAM_NOT_FOUND);
      expect((await stranger.request('rkllm_abort', { handle: 'slow' })).error).toMatchObject({ code: MODEL_CONTROL_REFUSED, data: { reason: 'run_of_another_client' } });
      // The owner's cursor starts at 0, and its stream runs to its end.
      const page = await owner.request('poll', { stream_id: streamId });
      expect(page.result?.chunks[0]?.seq).toBe(0);
      const ended = await outcome;
      expect(ended.final).toMatchObject({ state: 2 });
      expect(ended.final?.aborted).toBeUndefined();
      expect(ended.text).toBe(countText(100));
      expect(stranger.received.filter((r) => r.message.method === 'rkllm_result')).toHaveLength(0);
    } finally {
      await owner.close();
      await stranger.close();
    }
  });

  it('HTTP: an SSE stream answers no other request, even one holding its id', async () => {
    const owner = new HttpClient(server.port('http'));
    const stranger = new HttpClient(server.port('http'));
    try {
      const asked: Promise<unknown>[] = [];
      const replies: { poll?: number; cancel?: number } = {};
      const outcome = await owner.stream('rkllm_run_async', { handle: 'slow', rkllm_input: { input_type: 0, prompt_input: 'count to 100' } }, {
        timeoutMs: 20_000,
        onChunk: (chunk) => {
          if (asked.length > 0) return;
          const stream_id = String(chunk.stream_id);
          asked.push(
            (async () => {
              replies.poll = (await stranger.request('poll', { stream_id, from_seq: 0 })).error?.code;
              replies.cancel = (await stranger.request('cancel', { stream_id })).error?.code;
            })(),
          );
        },
      });
      await Promise.all(asked);
      expect(replies).toEqual({ poll: STREAM_NOT_FOUND, cancel: STREAM_NOT_FOUND });
      expect(outcome.final).toMatchObject({ state: 2 });
      expect(outcome.text).toBe(countText(100));
    } finally {
      await owner.close();
      await stranger.close();
    }
  });

  it('HTTP polling: the holder of the id reads the whole stream; ids near a stranger\'s own find nothing', async () => {
    const holder = new HttpClient(server.port('http'));
    const stranger = new HttpClient(server.port('http'));
    try {
      const started = await holder.request('rkllm_run_async', { handle: 'default', rkllm_input: { input_type: 0, prompt_input: 'count to 40' } });
      const streamId = String(started.result?.stream_id);
      expect(streamId).toMatch(ID_FORMAT);
      const own = String((await stranger.request('rkllm_run_async', { handle: 'default', rkllm_input: { input_type: 0, prompt_input: 'count to 2' } })).result?.stream_id);
      for (const guess of neighbours(own)) expect({ guess, code: (await stranger.request('poll', { stream_id: guess })).error?.code }).toEqual({ guess, code: STREAM_NOT_FOUND });
      expect((await stranger.request('cancel', { stream_id: neighbours(own)[0] })).error?.code).toBe(STREAM_NOT_FOUND);
      await waitFor('the stranger to read its own stream', async () => (await stranger.request('poll', { stream_id: own })).result?.done, 5000, 10);

      const seqs: number[] = [];
      const texts: string[] = [];
      const last = await waitFor('the end of the held stream', async () => {
        const page = await holder.request('poll', { stream_id: streamId });
        for (const chunk of page.result.chunks) {
          seqs.push(chunk.seq);
          texts.push(chunk.text);
        }
        return page.result.done ? page.result : undefined;
      }, 5000, 10);
      seqs.forEach((seq, index) => expect(seq).toBe(index));
      expect(texts.join('')).toBe(countText(40));
      expect(last.result.text).toBe(countText(40));
    } finally {
      await holder.close();
      await stranger.close();
    }
  });
});
