// An rkllm_init in flight at SIGTERM (issue 11, finding 9). The shutdown used to destroy only
// the models already loaded and close every socket, so the client of an init still in the
// runtime got no answer at all, and its model, once loaded, was never destroyed by the server.
// Now, on every transport, that init is answered with SHUTTING_DOWN (-32015) before its
// connection closes, the model is destroyed as soon as it has loaded (sim:slow-init takes 1 s,
// within the shutdown timeout), and the server exits 0 within its usual bound.

import { ServerProcess, TRANSPORTS, sleep, stopAllServers, withTimeout, type RpcMessage } from '../integration/client';
import { clientOn } from './native-limits';

jest.setTimeout(60_000);

const SHUTTING_DOWN = -32015;
/** The CLI's hard exit bound: max(1.9 s, shutdown timeout 1.5 s + 0.4 s). */
const EXIT_BOUND_MS = 1900;
/** How far into sim:slow-init's 1 s rkllm_init the signal comes. */
const SIGNAL_AFTER_MS = 300;

describe('SIGTERM while rkllm_init runs', () => {
  afterEach(async () => {
    await stopAllServers();
  });

  it.each(TRANSPORTS)('%s: the init is answered with SHUTTING_DOWN, its model destroyed once loaded, and the server exits 0', async (transport) => {
    const server = await ServerProcess.start({ model: 'none' });
    const client = await clientOn(server, transport);
    let answeredAt = 0;
    const init = client.request('rkllm_init', { handle: 'late', param: { model_path: 'sim:slow-init' } }, { timeoutMs: 10_000 }).then((reply: RpcMessage) => {
      answeredAt = Date.now();
      return reply;
    });
    // Caught here: a transport that closed without answering rejects this promise later on.
    init.catch(() => undefined);
    await sleep(SIGNAL_AFTER_MS);
    expect(server.exitInfo).toBeUndefined();
    const signalledAt = Date.now();
    server.child.kill('SIGTERM');
    const exit = await withTimeout(server.exited, 10_000, 'the server to exit');
    const reply = await withTimeout(init, 2000, `${transport}: the reply to rkllm_init`);
    process.stderr.write(`${transport}: init answered ${answeredAt - signalledAt} ms after SIGTERM, exit ${exit.code} after ${exit.at - signalledAt} ms\n`);

    expect(reply.error).toMatchObject({ code: SHUTTING_DOWN });
    expect(answeredAt).toBeLessThanOrEqual(exit.at);
    expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 0, signal: null });
    expect(exit.at - signalledAt).toBeLessThan(EXIT_BOUND_MS);
    expect(server.logs.some((record) => record.msg === 'models still loading at shutdown were destroyed once loaded')).toBe(true);
    await client.close();
  });
});
