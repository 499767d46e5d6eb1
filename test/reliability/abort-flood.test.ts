// Native thread floods (issue 11, finding 2): rkllm_abort used to start a thread per call, so
// 5,000 aborts in one batch made 5,000 threads. At most one rkllm_abort is now in flight per
// model; aborts asked for meanwhile join it and are answered with its return code. On every
// transport: 5,000 aborts sent at once (as batches of 1,000, the default --max-batch-length)
// while a run goes on sim:slow-abort (whose abort takes a second to land, so a thread per abort
// would pile up) are answered in full, every reply with the same return code, the run ends as
// aborted, the model runs again, and the server's thread count never rises by more than a few.

import { ServerProcess, TRANSPORTS, countTo, stopAllServers, waitUntil, type RpcClient, type Transport } from '../integration/client';
import { clientOn, loadSlowAbortModel, peakThreadsDuring, sendBatch, settledThreadCount } from './native-limits';

jest.setTimeout(120_000);

const ABORTS = 5000;
/** Requests per batch: the default bound on a batch's length (--max-batch-length). */
const PER_BATCH = 1000;
/** The abort helper thread, plus slack for a thread the runtime or Node may start meanwhile. */
const THREADS_SLACK = 3;

describe('a flood of rkllm_abort', () => {
  let server: ServerProcess;
  const clients = new Map<Transport, RpcClient>();

  beforeAll(async () => {
    server = await ServerProcess.start({ model: 'none' });
    for (const transport of TRANSPORTS) clients.set(transport, await clientOn(server, transport));
    await loadSlowAbortModel(clients.get('tcp')!, 'slow');
  });

  afterAll(async () => {
    for (const client of clients.values()) await client.close();
    await stopAllServers();
  });

  it.each(TRANSPORTS)(`%s: ${ABORTS} rkllm_abort at once during a run: all answered alike, threads bounded`, async (transport) => {
    const client = clients.get(transport)!;
    let chunks = 0;
    const running = client.stream(
      'rkllm_run',
      { rkllm_input: { input_type: 0, prompt_input: 'count to 100000' }, stream: true },
      { timeoutMs: 30_000, onChunk: () => chunks++ },
    );
    await waitUntil(`${transport}: the run's first tokens`, () => chunks >= 3, 10_000, 10);
    const before = await settledThreadCount(server.pid);

    const calls = Array.from({ length: ABORTS }, () => ({ method: 'rkllm_abort' }));
    const { result: replies, peak } = await peakThreadsDuring(server.pid, () => sendBatch(client, calls, 60_000, PER_BATCH));
    process.stderr.write(`${transport}: ${ABORTS} aborts answered; threads ${before} before, at most ${peak} during\n`);

    expect(replies.filter((reply) => reply === undefined)).toHaveLength(0);
    const answers = new Set(replies.map((reply) => JSON.stringify(reply.error ?? reply.result)));
    expect([...answers]).toEqual([JSON.stringify({ return_code: 0 })]);
    expect(peak - before).toBeLessThanOrEqual(THREADS_SLACK);
    const outcome = await running;
    expect(outcome.final).toMatchObject({ aborted: true });
    // The model is whole: the next run is answered in full.
    const next = await client.request('rkllm_run', { rkllm_input: { input_type: 0, prompt_input: 'count to 3' } }, { timeoutMs: 10_000 });
    expect(next.result?.text).toBe(countTo(3));
  });
});
