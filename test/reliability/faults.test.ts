// Fault injection through the emulated runtime's model files (docs/emulated-runtime.md):
// sim:faulty-init (rkllm_init fails), sim:faulty-midstream (runs fail with ERROR after 5 tokens)
// and sim:slow-abort (an rkllm_abort takes a second to land). On every message transport each
// request gets exactly one answer, counted per id over a settle period, and the next request on
// the same model works. HTTP is covered through SSE, where one POST carries exactly one reply.

import {
  HttpClient,
  ServerProcess,
  STATE,
  countTo,
  sleep,
  stopAllServers,
  withTimeout,
  type MessageClient,
  type RpcMessage,
  type Transport,
  openMessageClients,
  closeMessageClients,
} from '../integration/client';

jest.setTimeout(30_000);

/** How long after its answer a request is watched for a second one. */
const SETTLE_MS = 300;
const CODES = { MODEL_INIT_FAILED: -32006, REQUEST_ABORTED: -32010, RUN_FAILED: -32011, REQUEST_CANCELLED: -32009 } as const;
const MESSAGE_TRANSPORTS: Transport[] = ['stdio', 'tcp', 'udp', 'websocket'];

function repliesTo(client: MessageClient, id: unknown): RpcMessage[] {
  const key = JSON.stringify(id);
  return client.received.filter((r) => r.message.method === undefined && JSON.stringify(r.message.id) === key).map((r) => r.message);
}

describe('fault injection through the emulated runtime', () => {
  let server: ServerProcess;
  const clients: Partial<Record<Transport, MessageClient>> = {};

  beforeAll(async () => {
    server = await ServerProcess.start({ model: 'sim:instant' });
    await openMessageClients(server, clients);
  });

  afterAll(async () => {
    await closeMessageClients(clients);
    await stopAllServers();
  });

  afterEach(() => {
    expect(server.exitInfo).toBeUndefined();
  });

  /** Sends a request, waits for its answer, then checks over SETTLE_MS that no second one comes. */
  async function exactlyOne(client: MessageClient, method: string, params: unknown, timeoutMs = 10_000): Promise<RpcMessage> {
    const id = client.nextId();
    const reply = await client.request(method, params, { id, timeoutMs });
    await sleep(SETTLE_MS);
    expect(repliesTo(client, id)).toHaveLength(1);
    return reply;
  }

  it.each(MESSAGE_TRANSPORTS)('%s: a failing rkllm_init earns one MODEL_INIT_FAILED; the handle and the next init work', async (transport) => {
    const client = clients[transport]!;
    const handle = `faulty-${transport}`;
    const failed = await exactlyOne(client, 'rkllm_init', { handle, param: { model_path: 'sim:faulty-init' } });
    expect(failed.error?.code).toBe(CODES.MODEL_INIT_FAILED);
    // The detail names the model file; the runtime's own words go to the server's stderr.
    expect(JSON.stringify(failed.error?.data)).toContain('faulty-init.json');
    expect(server.stderrText).toContain('emulated init failure');
    // The failed init must not have taken the handle or a domain.
    const loaded = await exactlyOne(client, 'rkllm_init', { handle, param: { model_path: 'sim:instant' } });
    expect(loaded.error).toBeUndefined();
    const run = await exactlyOne(client, 'rkllm_run', { handle, rkllm_input: { input_type: 0, prompt_input: 'count to 3' } });
    expect(run.result?.text).toBe(countTo(3));
    expect((await exactlyOne(client, 'rkllm_destroy', { handle })).result).toEqual({ return_code: 0 });
  });

  it.each(MESSAGE_TRANSPORTS)('%s: a run failing mid-stream ends its stream once with ERROR and one RUN_FAILED; the next run works', async (transport) => {
    const client = clients[transport]!;
    const handle = `midstream-${transport}`;
    expect((await exactlyOne(client, 'rkllm_init', { handle, param: { model_path: 'sim:faulty-midstream' } })).error).toBeUndefined();
    try {
      const id = client.nextId();
      const outcome = await client.stream('rkllm_run', { handle, rkllm_input: { input_type: 0, prompt_input: 'count to 20' }, stream: true }, { id, timeoutMs: 10_000 });
      await sleep(SETTLE_MS);
      expect(repliesTo(client, id)).toHaveLength(1);
      expect(outcome.response?.error?.code).toBe(CODES.RUN_FAILED);
      const finals = outcome.chunks.filter((c) => c.chunk.state === STATE.ERROR || c.chunk.state === STATE.FINISH);
      expect(finals).toHaveLength(1);
      expect(finals[0].chunk.state).toBe(STATE.ERROR);
      // The model fails after 5 tokens: 5 token notifications, then the ERROR one, seq without gaps.
      expect(outcome.chunks.map((c) => c.chunk.seq)).toEqual([0, 1, 2, 3, 4, 5]);
      expect(outcome.text).toBe(countTo(3)); // '1' ',' ' 2' ',' ' 3'
      // Fewer than 5 tokens never reach the fault: the same model answers the next run.
      const next = await exactlyOne(client, 'rkllm_run', { handle, rkllm_input: { input_type: 0, prompt_input: 'count to 2' } });
      expect(next.result?.text).toBe(countTo(2));
    } finally {
      await client.request('rkllm_destroy', { handle });
    }
  });

  it.each(MESSAGE_TRANSPORTS)('%s: a slow abort answers the aborted run, the abort and a queued run exactly once each', async (transport) => {
    const client = clients[transport]!;
    const handle = `slow-${transport}`;
    expect((await exactlyOne(client, 'rkllm_init', { handle, param: { model_path: 'sim:slow-abort' } })).error).toBeUndefined();
    try {
      const runId = client.nextId();
      let firstChunk!: () => void;
      const running = new Promise<void>((resolve) => (firstChunk = resolve));
      const aborted = client.stream('rkllm_run', { handle, rkllm_input: { input_type: 0, prompt_input: 'count to 5000' }, stream: true }, { id: runId, timeoutMs: 10_000, onChunk: () => firstChunk() });
      await withTimeout(running, 5000, 'the first token of the slow-abort run');
      // Queued behind the run being aborted: it must start once the runtime lets go, and succeed.
      const queuedId = client.nextId();
      const queued = client.request('rkllm_run', { handle, rkllm_input: { input_type: 0, prompt_input: 'count to 3' } }, { id: queuedId, timeoutMs: 10_000 });
      const abortStarted = Date.now();
      const abortId = client.nextId();
      const abort = await client.request('rkllm_abort', { handle }, { id: abortId, timeoutMs: 10_000 });
      expect(abort.result).toEqual({ return_code: 0 });
      const outcome = await aborted;
      expect(outcome.response?.error?.code).toBe(CODES.REQUEST_ABORTED);
      expect(outcome.final?.aborted).toBe(true);
      expect(outcome.final?.reason).toBe('abort');
      expect((await queued).result?.text).toBe(countTo(3));
      const queuedDoneMs = Date.now() - abortStarted;
      await sleep(SETTLE_MS);
      for (const id of [runId, queuedId, abortId]) expect({ id, replies: repliesTo(client, id).length }).toEqual({ id, replies: 1 });
      const finals = outcome.chunks.filter((c) => c.chunk.state === STATE.FINISH || c.chunk.state === STATE.ERROR || c.chunk.aborted);
      expect(finals).toHaveLength(1);
      // The queued run only starts once the runtime has let go of the run, about a second later.
      expect(queuedDoneMs).toBeGreaterThanOrEqual(900);
      const next = await exactlyOne(client, 'rkllm_run', { handle, rkllm_input: { input_type: 0, prompt_input: 'count to 4' } });
      expect(next.result?.text).toBe(countTo(4));
    } finally {
      await client.request('rkllm_destroy', { handle });
    }
  });

  it('http (SSE): each fault earns one answer and the next request works', async () => {
    const http = new HttpClient(server.port('http'));
    try {
      const init = await http.request('rkllm_init', { handle: 'faulty-http', param: { model_path: 'sim:faulty-init' } });
      expect(init.error?.code).toBe(CODES.MODEL_INIT_FAILED);
      expect((await http.request('rkllm_init', { handle: 'mid-http', param: { model_path: 'sim:faulty-midstream' } })).error).toBeUndefined();
      const failed = await http.stream('rkllm_run', { handle: 'mid-http', rkllm_input: { input_type: 0, prompt_input: 'count to 20' }, stream: true });
      expect(failed.response?.error?.code).toBe(CODES.RUN_FAILED);
      expect(failed.chunks.filter((c) => c.chunk.state === STATE.ERROR)).toHaveLength(1);
      const next = await http.stream('rkllm_run', { handle: 'mid-http', rkllm_input: { input_type: 0, prompt_input: 'count to 2' }, stream: true });
      expect(next.response?.result?.text).toBe(countTo(2));
      expect((await http.request('rkllm_destroy', { handle: 'mid-http' })).result).toEqual({ return_code: 0 });
    } finally {
      await http.close();
    }
  });
});
