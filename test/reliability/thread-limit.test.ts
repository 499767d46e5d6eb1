// Native threads under a process limit (issue 11, finding 2). Under RLIMIT_NPROC 300 a flood of
// rkllm_abort used to end the server: the thread that could not start threw std::system_error
// and the process died of SIGABRT. Now aborts share one thread per model, and a thread that
// cannot start is an error answer (RESOURCE_EXHAUSTED, -32024) for the request that needed it;
// the emulated runtime's rkllm_init fails cleanly (-1, MODEL_INIT_FAILED) when its own thread
// cannot start, as the real library would. The server answers everything else meanwhile.

import { ServerProcess, TRANSPORTS, countTo, sleep, stopAllServers, waitUntil, type RpcClient, type StreamOutcome, type Transport } from '../integration/client';
import {
  clientOn,
  loadSlowAbortModel,
  sendBatch,
  setThreadLimit,
  settledThreadCount,
  threadCount,
  threadLimitWrapper,
  threadsOfServerUser,
  whileAlive,
} from './native-limits';

jest.setTimeout(120_000);

const NPROC = 300;
const ABORTS = 1000;
const RESOURCE_EXHAUSTED = -32024;
const MODEL_INIT_FAILED = -32006;
const PROMPT = { input_type: 0, prompt_input: 'count to 100000' };

/** The server under the limit, with a client per transport and one model, on sim:slow-abort. */
async function startLimited(): Promise<{ server: ServerProcess; clients: Map<Transport, RpcClient> }> {
  const server = await ServerProcess.start({ model: 'none', wrapper: threadLimitWrapper(NPROC) });
  const clients = new Map<Transport, RpcClient>();
  for (const transport of TRANSPORTS) clients.set(transport, await clientOn(server, transport));
  await loadSlowAbortModel(clients.get('tcp')!, 'slow');
  return { server, clients };
}

/** Starts a long run on `client`; resolves once its tokens flow, with the promise of its end. */
async function startRun(client: RpcClient, id?: string): Promise<{ ended: Promise<StreamOutcome> }> {
  let chunks = 0;
  const ended = client.stream('rkllm_run', { rkllm_input: PROMPT, stream: true }, { id, timeoutMs: 30_000, onChunk: () => chunks++ });
  await waitUntil(`${client.transport}: the run's first tokens`, () => chunks >= 3, 10_000, 10);
  return { ended };
}

describe(`under RLIMIT_NPROC ${NPROC}`, () => {
  afterEach(async () => {
    await stopAllServers();
  });

  it(`${ABORTS} rkllm_abort in one batch and a few runs, on every transport, leave a server that answers every request`, async () => {
    const { server, clients } = await startLimited();
    for (const transport of TRANSPORTS) {
      const client = clients.get(transport)!;
      const running = await startRun(client);
      const replies = await whileAlive(server, sendBatch(client, Array.from({ length: ABORTS }, () => ({ method: 'rkllm_abort' })), 60_000));
      expect({ transport, unanswered: replies.filter((reply) => reply?.result?.return_code !== 0).length }).toEqual({ transport, unanswered: 0 });
      expect(await running.ended).toMatchObject({ final: { aborted: true } });
      for (const n of [2, 3, 4]) {
        const reply = await client.request('rkllm_run', { rkllm_input: { input_type: 0, prompt_input: `count to ${n}` } }, { timeoutMs: 10_000 });
        expect({ transport, text: reply.result?.text }).toEqual({ transport, text: countTo(n) });
      }
    }
    expect(server.exitInfo).toBeUndefined();
    for (const client of clients.values()) await client.close();
  });

  it('at the thread limit rkllm_abort and rkllm_init are refused with an error, everything else goes on, and both work once threads are free', async () => {
    const { server, clients } = await startLimited();
    const control = clients.get('tcp')!;
    const running = await startRun(control);
    const threads = await settledThreadCount(server.pid);
    const others = threadsOfServerUser(server.pid) - threads;

    // Not one thread more: the abort helper and a model's worker cannot start.
    await setThreadLimit(server.pid, others + threads);
    for (const [transport, client] of clients) {
      const abort = await whileAlive(server, client.request('rkllm_abort', undefined, { timeoutMs: 10_000 }));
      expect({ transport, error: abort.error }).toMatchObject({ transport, error: { code: RESOURCE_EXHAUSTED, data: { detail: expect.stringContaining('thread') } } });
      const init = await whileAlive(server, client.request('rkllm_init', { param: { model_path: 'sim:instant' } }, { timeoutMs: 10_000 }));
      expect({ transport, error: init.error }).toMatchObject({ transport, error: { code: RESOURCE_EXHAUSTED } });
      // What needs no new thread is served as before.
      expect((await client.request('rkllm_is_running', undefined, { timeoutMs: 10_000 })).result).toEqual({ running: true });
    }

    // One thread more: the worker starts, the emulated runtime's own thread cannot.
    await setThreadLimit(server.pid, others + threads + 1);
    const init = await whileAlive(server, control.request('rkllm_init', { param: { model_path: 'sim:instant' } }, { timeoutMs: 10_000 }));
    expect(init.error).toMatchObject({ code: MODEL_INIT_FAILED });
    await waitUntil('the emulated runtime to say why', () => /cannot start the handle's inference thread/.test(server.stderrText), 5000);

    // Threads to spare again: the run is aborted and a model loads.
    await setThreadLimit(server.pid, NPROC);
    expect((await control.request('rkllm_abort', undefined, { timeoutMs: 10_000 })).result).toEqual({ return_code: 0 });
    expect(await running.ended).toMatchObject({ final: { aborted: true } });
    const loaded = await control.request('rkllm_init', { param: { model_path: 'sim:instant' } }, { timeoutMs: 10_000 });
    expect(loaded.error).toBeUndefined();
    const reply = await control.request('rkllm_run', { handle: loaded.result.handle, rkllm_input: { input_type: 0, prompt_input: 'count to 3' } }, { timeoutMs: 10_000 });
    expect(reply.result?.text).toBe(countTo(3));
    expect(server.exitInfo).toBeUndefined();
    for (const client of clients.values()) await client.close();
  });

  it("at the thread limit a cancel ends its request at once, and the native run it leaves stops as soon as a thread is free", async () => {
    const { server, clients } = await startLimited();
    const control = clients.get('tcp')!;
    const running = await startRun(control, 'victim');
    const threads = await settledThreadCount(server.pid);
    await setThreadLimit(server.pid, threadsOfServerUser(server.pid));

    expect((await whileAlive(server, control.request('cancel', { request_id: 'victim' }, { timeoutMs: 10_000 }))).error).toBeUndefined();
    expect(await running.ended).toMatchObject({ final: { aborted: true } });
    // Its rkllm_abort found no thread: the runtime still runs it, and the server keeps trying.
    await sleep(500);
    expect((await control.request('rkllm_is_running', undefined, { timeoutMs: 10_000 })).result).toEqual({ running: true });
    expect(threadCount(server.pid)).toBe(threads);

    await setThreadLimit(server.pid, NPROC);
    await waitUntil('the native run to stop', async () => (await control.request('rkllm_is_running')).result?.running === false, 5000, 100);
    const reply = await control.request('rkllm_run', { rkllm_input: { input_type: 0, prompt_input: 'count to 3' } }, { timeoutMs: 10_000 });
    expect(reply.result?.text).toBe(countTo(3));
    expect(server.exitInfo).toBeUndefined();
    for (const client of clients.values()) await client.close();
  });
});
