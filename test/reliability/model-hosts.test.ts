// Each model in its own host process (issue 13): a crash, an exit() or a hang of the runtime, an
// abort that never lands, a segfault in rkllm_init and a kill -9 of a host from outside, on
// every transport, against the real bin/rkllm-serve. For each: the server keeps its pid, a
// client on another model is served throughout, the request in flight gets RUNTIME_FAILED within
// 1 s of the crash (the watchdog time plus 1 s for a hang), the request queued behind it
// completes on the restarted host, and stdio's stdout carries only protocol lines although the
// runtime prints to stdout at every init.

import {
  HttpClient,
  ServerProcess,
  TRANSPORTS,
  TcpClient,
  connectClient,
  countTo,
  stopAllServers,
  waitUntil,
  type MessageClient,
  type RpcClient,
  type StreamOutcome,
  type Transport,
} from '../integration/client';
import { RUNTIME_FAILED, childrenOf, hostOf, isAlive, keepBusy, waitRestarted, type HostReport } from './host-helpers';

jest.setTimeout(120_000);

const WATCHDOG_MS = 1000;
const WATCHDOG_ARGS = ['--host-run-timeout', String(WATCHDOG_MS), '--host-abort-timeout', String(WATCHDOG_MS), '--host-max-failures', '1000'];
const LONG = { input_type: 0, prompt_input: 'count to 100000' };
const SHORT = { input_type: 0, prompt_input: 'count to 3' };

interface Started {
  outcome: Promise<StreamOutcome>;
  /** When the last token notification arrived. */
  lastTokenAt(): number;
}

/** Starts a streamed run; resolves once `tokens` tokens have arrived. */
async function startStream(client: RpcClient, handle: string, tokens = 3): Promise<Started> {
  let count = 0;
  let last = 0;
  const outcome = client.stream('rkllm_run', { handle, rkllm_input: LONG, stream: true }, {
    timeoutMs: 20_000,
    onChunk: (chunk) => {
      if (chunk.state === 0 || chunk.state === 1) {
        count++;
        last = Date.now();
      }
    },
  });
  await waitUntil(`${client.transport}: ${tokens} tokens on '${handle}'`, () => count >= tokens, 10_000, 5);
  return { outcome, lastTokenAt: () => last };
}

/** The time the request's error reached the client. */
function failedAt(outcome: StreamOutcome): number {
  return Math.min(outcome.responseAt ?? Infinity, outcome.finalAt ?? Infinity);
}

describe('model hosts: faults of the runtime, on every transport', () => {
  let server: ServerProcess;
  const clients = new Map<Transport, RpcClient>();
  let control: TcpClient;
  let bystander: TcpClient;

  beforeAll(async () => {
    server = await ServerProcess.start({ model: 'sim:instant', args: WATCHDOG_ARGS });
    for (const transport of TRANSPORTS) clients.set(transport, await connectClient(server, transport));
    control = await TcpClient.connect(server.port('tcp'));
    bystander = await TcpClient.connect(server.port('tcp'));
  });

  afterAll(async () => {
    for (const client of clients.values()) await client.close();
    await control?.close();
    await bystander?.close();
    await stopAllServers();
  });

  afterEach(() => {
    // The server process itself never went down.
    expect(server.exitInfo).toBeUndefined();
    expect(isAlive(server.pid)).toBe(true);
  });

  const RUN_FAULTS = [
    { model: 'sim:crash-midstream', handle: 'crashes', failure: { reason: 'crash', signal: 'SIGSEGV' }, boundMs: 1000 },
    { model: 'sim:exit-midstream', handle: 'exits', failure: { reason: 'exit', exit_code: 1 }, boundMs: 1000 },
    { model: 'sim:hang-midstream', handle: 'hangs', failure: { reason: 'hang' }, boundMs: WATCHDOG_MS + 1000 },
  ];

  describe.each(RUN_FAULTS)('$model', ({ model, handle, failure, boundMs }) => {
    beforeAll(async () => {
      expect((await control.request('rkllm_init', { handle, param: { model_path: model } })).error).toBeUndefined();
    });

    afterAll(async () => {
      await control.request('rkllm_destroy', { handle });
    });

    it.each(TRANSPORTS)(`%s: the run in flight fails within ${boundMs} ms, the queued one completes on a new host, others are served`, async (transport) => {
      const client = clients.get(transport)!;
      const before: HostReport = await hostOf(control, handle);
      expect(before.state).toBe('ready');
      const busy = keepBusy(bystander, 'default');
      // Past the fault's 20th token the host dies (or hangs); "count to 3" stays below it.
      const running = await startStream(client, handle);
      const queued = client.request('rkllm_run', { handle, rkllm_input: SHORT }, { timeoutMs: 20_000 });
      const outcome = await running.outcome;
      expect(outcome.response?.error?.code).toBe(RUNTIME_FAILED);
      expect(outcome.response?.error?.data).toMatchObject({ ...failure, restarting: true });
      expect(failedAt(outcome) - running.lastTokenAt()).toBeLessThan(boundMs);
      expect((await queued).result?.text).toBe(countTo(3));
      const after = await hostOf(control, handle);
      expect(after.pid).not.toBe(before.pid);
      expect(after.restarts).toBe(before.restarts + 1);
      expect(after.last_failure).toMatchObject({ reason: failure.reason });
      expect(before.pid !== null && isAlive(before.pid)).toBe(false);
      await waitRestarted(control, handle, before.restarts + 1);
      const served = await busy.stop();
      expect(served.failures).toEqual([]);
      expect(served.served).toBeGreaterThan(0);
    });
  });

  describe('sim:abort-never-lands', () => {
    const handle = 'stuck';
    beforeAll(async () => {
      expect((await control.request('rkllm_init', { handle, param: { model_path: 'sim:abort-never-lands' } })).error).toBeUndefined();
    });
    afterAll(async () => {
      await control.request('rkllm_destroy', { handle });
    });

    it.each(TRANSPORTS)('%s: rkllm_abort that never lands ends the host within the abort timeout + 1 s; the queued run completes', async (transport) => {
      const client = clients.get(transport)!;
      const before = await hostOf(control, handle);
      const running = await startStream(client, handle);
      const queued = client.request('rkllm_run', { handle, rkllm_input: SHORT }, { timeoutMs: 20_000 });
      const abortSent = Date.now();
      const abort = await client.request('rkllm_abort', { handle }, { timeoutMs: 10_000 });
      expect(abort.error?.code).toBe(RUNTIME_FAILED);
      const outcome = await running.outcome;
      expect(outcome.response?.error?.code).toBe(RUNTIME_FAILED);
      expect(outcome.response?.error?.data).toMatchObject({ reason: 'hang', restarting: true });
      expect(failedAt(outcome) - abortSent).toBeLessThan(WATCHDOG_MS + 1000);
      expect((await queued).result?.text).toBe(countTo(3));
      expect((await waitRestarted(control, handle, before.restarts + 1)).restarts).toBe(before.restarts + 1);
    });
  });

  describe('kill -9 of a host from outside', () => {
    const handle = 'victim';
    beforeAll(async () => {
      expect((await control.request('rkllm_init', { handle, param: { model_path: 'sim:slow-abort' } })).error).toBeUndefined();
    });
    afterAll(async () => {
      await control.request('rkllm_destroy', { handle });
    });

    it.each(TRANSPORTS)('%s: is a crash: the stream fails within 1 s, the queued run completes on a new host', async (transport) => {
      const client = clients.get(transport)!;
      const before = await hostOf(control, handle);
      const running = await startStream(client, handle);
      const queued = client.request('rkllm_run', { handle, rkllm_input: SHORT }, { timeoutMs: 20_000 });
      const killedAt = Date.now();
      process.kill(before.pid!, 'SIGKILL');
      const outcome = await running.outcome;
      expect(outcome.response?.error?.data).toMatchObject({ reason: 'crash', signal: 'SIGKILL', restarting: true });
      expect(failedAt(outcome) - killedAt).toBeLessThan(1000);
      expect((await queued).result?.text).toBe(countTo(3));
      expect((await waitRestarted(control, handle, before.restarts + 1)).pid).not.toBe(before.pid);
    });
  });

  describe('sim:crash-init', () => {
    it.each(TRANSPORTS)('%s: rkllm_init gets RUNTIME_FAILED within 1 s of the crash; nothing is left loaded', async (transport) => {
      const client = clients.get(transport)!;
      const handle = `crash-init-${transport}`;
      const reply = await client.request('rkllm_init', { handle, param: { model_path: 'sim:crash-init' } }, { timeoutMs: 10_000 });
      const answeredAt = Date.now();
      expect(reply.error?.code).toBe(RUNTIME_FAILED);
      expect(reply.error?.data).toMatchObject({ reason: 'crash', signal: 'SIGSEGV', restarting: false });
      // The runtime's last words before the crash, read from the host's stderr into the log.
      const lastWords = server.logs.filter((record) => String(record.msg).includes('injected crash in rkllm_init'));
      expect(lastWords.length).toBeGreaterThan(0);
      expect(answeredAt - Number(lastWords[lastWords.length - 1].time)).toBeLessThan(1000);
      const unknown = await client.request('rkllm_run', { handle, rkllm_input: SHORT });
      expect(unknown.error?.code).toBe(-32003);
    });
  });

  it('stdio stdout carried only protocol lines, while every host printed the runtime lines that went to the log', () => {
    expect((clients.get('stdio') as MessageClient).unparsable).toEqual([]);
    const runtimeLines = server.logs.filter((record) => /^runtime: I rkllm: rkllm-runtime version/.test(String(record.msg)));
    expect(runtimeLines.length).toBeGreaterThan(5);
    expect(runtimeLines[0]).toMatchObject({ stream: 'stdout', host_pid: expect.any(Number) });
    expect(server.logs.some((record) => record.stream === 'stderr' && /^runtime: E rkllm:/.test(String(record.msg)))).toBe(true);
  });
});

describe('model hosts: a model that keeps failing', () => {
  afterAll(async () => {
    await stopAllServers();
  });

  it('is failed after --host-max-failures: /health says so, requests fail at once (503 on OpenAI), destroy frees it', async () => {
    const server = await ServerProcess.start({ model: 'sim:instant', args: ['--host-max-failures', '2'] });
    const client = await TcpClient.connect(server.port('tcp'));
    const http = new HttpClient(server.port('http'));
    try {
      expect((await client.request('rkllm_init', { handle: 'doomed', param: { model_path: 'sim:crash-midstream' } })).error).toBeUndefined();
      const first = await client.request('rkllm_run', { handle: 'doomed', rkllm_input: LONG }, { timeoutMs: 10_000 });
      expect(first.error?.data).toMatchObject({ reason: 'crash', restarting: true });
      await waitRestarted(client, 'doomed', 1);
      const second = await client.request('rkllm_run', { handle: 'doomed', rkllm_input: LONG }, { timeoutMs: 10_000 });
      expect(second.error?.data).toMatchObject({ reason: 'crash', restarting: false });

      const health = await http.health();
      expect(health.status).toBe(200);
      const entry = (health.json.model_hosts as HostReport[]).find((host) => host.handle === 'doomed');
      expect(entry).toMatchObject({ state: 'failed', pid: null, last_failure: { reason: 'crash', signal: 'SIGSEGV' } });
      expect((health.json.model_hosts as HostReport[]).find((host) => host.handle === 'default')).toMatchObject({ state: 'ready', pid: expect.any(Number) });

      const asked = Date.now();
      const refused = await client.request('rkllm_run', { handle: 'doomed', rkllm_input: SHORT });
      expect(Date.now() - asked).toBeLessThan(500);
      expect(refused.error?.code).toBe(RUNTIME_FAILED);
      expect(refused.error?.data).toMatchObject({ reason: 'failed', last_reason: 'crash', signal: 'SIGSEGV' });
      expect(JSON.stringify(refused.error)).toContain('SIGSEGV');
      const openai = await http.raw('POST', '/v1/chat/completions', JSON.stringify({ model: 'doomed', messages: [{ role: 'user', content: 'hi' }] }), {
        'content-type': 'application/json',
      });
      expect(openai.status).toBe(503);
      expect(openai.json.error).toMatchObject({ code: 'runtime_failed', type: 'server_error' });
      expect(openai.json.error.message).toContain('has failed');

      expect((await client.request('rkllm_run', { handle: 'default', rkllm_input: SHORT })).result?.text).toBe(countTo(3));
      expect((await client.request('rkllm_destroy', { handle: 'doomed' })).result).toEqual({ return_code: 0 });
      const afterDestroy = await http.health();
      expect((afterDestroy.json.model_hosts as HostReport[]).map((host) => host.handle)).toEqual(['default']);
      expect(server.exitInfo).toBeUndefined();
    } finally {
      await client.close();
      await http.close();
    }
  });
});

describe('model hosts never outlive the server', () => {
  afterAll(async () => {
    await stopAllServers();
  });

  it('kill -9 of the server leaves no host behind (by pid)', async () => {
    const server = await ServerProcess.start({ model: 'sim:instant' });
    const client = await TcpClient.connect(server.port('tcp'));
    expect((await client.request('rkllm_init', { handle: 'second', param: { model_path: 'sim:slow-abort' } })).error).toBeUndefined();
    const models = [(await hostOf(client, 'default')).pid!, (await hostOf(client, 'second')).pid!];
    // One host mid-run, one idle, and the spare.
    const running = await startStream(client, 'second');
    running.outcome.catch(() => undefined);
    const pids = await waitUntil('the spare host started', () => (childrenOf(server.pid).length === 3 ? childrenOf(server.pid) : undefined), 5000);
    expect(pids).toEqual(expect.arrayContaining(models));
    process.kill(server.pid, 'SIGKILL');
    await server.exited;
    await waitUntil('every host gone', () => pids!.every((pid) => !isAlive(pid)), 5000, 20);
    await client.close();
  });

  it('SIGTERM of the server ends every host', async () => {
    const server = await ServerProcess.start({ model: 'sim:instant' });
    const client = await TcpClient.connect(server.port('tcp'));
    const pid = (await hostOf(client, 'default')).pid!;
    const pids = await waitUntil('the spare host started', () => (childrenOf(server.pid).length === 2 ? childrenOf(server.pid) : undefined), 5000);
    expect(pids).toContain(pid);
    await client.close();
    expect((await server.stop()).code).toBe(0);
    await waitUntil('every host gone', () => pids!.every((child) => !isAlive(child)), 5000, 20);
  });
});
