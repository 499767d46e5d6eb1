// Model admission (issue 11, finding 2): one batch of 1,000 rkllm_init used to load 1,000 models
// (2,000 threads) in a fraction of a second. Now at most --max-loaded-models (8) models are loaded
// or loading and at most --max-loading-models (4) rkllm_init calls are in flight; every init
// beyond is refused at once with TOO_MANY_MODELS (-32023), whose data names the limit and the flag.
// On every transport: one batch of inits loads no more than the limits allow and refuses the rest;
// filling up one by one stops at 8 with the --max-loaded-models refusal; a destroy makes room.

import * as fs from 'fs';
import * as path from 'path';
import { HttpClient, ServerProcess, TRANSPORTS, makeTempDir, residentKiB, stopAllServers, type RpcClient, type RpcMessage, type Transport } from '../integration/client';
import { clientOn, peakThreadsDuring, sendBatch, settledThreadCount } from './native-limits';

jest.setTimeout(120_000);

const TOO_MANY_MODELS = -32023;
const MAX_LOADED = 8;
const MAX_LOADING = 4;
/** UDP carries its batch in one datagram: fewer inits, the same rule. */
const BATCH: Record<Transport, number> = { stdio: 1000, tcp: 1000, udp: 100, http: 1000, websocket: 1000 };
/** Two native threads per model (the server's worker and the runtime's own), and slack. */
const THREADS_PER_MODEL = 2;
const THREADS_SLACK = 3;
const INIT = { method: 'rkllm_init', params: { param: { model_path: 'sim:instant' } } };

function refusalFlag(reply: RpcMessage): unknown {
  return reply.error?.code === TOO_MANY_MODELS ? (reply.error.data as { flag?: string } | undefined)?.flag : (reply.error ?? 'loaded');
}

describe('model admission', () => {
  let server: ServerProcess;
  const clients = new Map<Transport, RpcClient>();

  beforeAll(async () => {
    server = await ServerProcess.start({ model: 'none' });
    for (const transport of TRANSPORTS) clients.set(transport, await clientOn(server, transport));
  });

  afterAll(async () => {
    for (const client of clients.values()) await client.close();
    await stopAllServers();
  });

  async function destroyAll(client: RpcClient, handles: readonly string[]): Promise<void> {
    const replies = await sendBatch(client, handles.map((handle) => ({ method: 'rkllm_destroy', params: { handle } })), 20_000);
    for (const reply of replies) expect(reply.result).toEqual({ return_code: 0 });
  }

  it.each(TRANSPORTS)('%s: one batch of rkllm_init loads at most the limits allow and refuses the rest, naming the flag', async (transport) => {
    const client = clients.get(transport)!;
    const before = await settledThreadCount(server.pid);
    const rssBefore = residentKiB(server.pid);
    const sentAt = Date.now();
    const { result: replies, peak } = await peakThreadsDuring(server.pid, () => sendBatch(client, Array.from({ length: BATCH[transport] }, () => INIT), 60_000));
    const tookMs = Date.now() - sentAt;
    const loaded = replies.filter((reply) => reply.result).map((reply) => reply.result.handle as string);
    const refused = replies.filter((reply) => reply.error);
    process.stderr.write(
      `${transport}: ${replies.length} inits answered in ${tookMs} ms, ${loaded.length} loaded; threads ${before} before, at most ${peak} during; ` +
        `RSS ${Math.round(rssBefore / 1024)} -> ${Math.round(residentKiB(server.pid) / 1024)} MiB\n`,
    );

    expect(loaded.length).toBeGreaterThanOrEqual(1);
    expect(loaded.length).toBeLessThanOrEqual(MAX_LOADING);
    expect(refused).toHaveLength(replies.length - loaded.length);
    // All inits of one batch arrive at once: the in-flight bound is the one that refuses them.
    expect(new Set(refused.map(refusalFlag))).toEqual(new Set(['--max-loading-models']));
    expect(refused[0].error).toMatchObject({ data: { limit: MAX_LOADING, detail: expect.stringContaining('--max-loading-models') } });
    expect(peak - before).toBeLessThanOrEqual(THREADS_PER_MODEL * MAX_LOADING + THREADS_SLACK);

    // One at a time, up to the bound on loaded models, then the refusal that names it.
    for (;;) {
      const reply = await client.request(INIT.method, INIT.params, { timeoutMs: 10_000 });
      if (reply.error) {
        expect(reply.error).toMatchObject({
          code: TOO_MANY_MODELS,
          data: { limit: MAX_LOADED, flag: '--max-loaded-models', detail: expect.stringContaining('--max-loaded-models') },
        });
        break;
      }
      loaded.push(reply.result.handle as string);
      expect(loaded.length).toBeLessThanOrEqual(MAX_LOADED);
    }
    expect(loaded).toHaveLength(MAX_LOADED);
    // A destroy makes room for one more.
    await destroyAll(client, loaded.slice(0, 1));
    const again = await client.request(INIT.method, INIT.params, { timeoutMs: 10_000 });
    expect(again.error).toBeUndefined();
    await destroyAll(client, [...loaded.slice(1), again.result.handle as string]);
  });
});

describe('model admission settings', () => {
  afterAll(async () => {
    await stopAllServers();
  });

  it('maxLoadedModels (config file) and --max-loading-models set the limits; the start-up model counts', async () => {
    const dir = makeTempDir('admission');
    const config = path.join(dir, 'server.json');
    fs.writeFileSync(config, JSON.stringify({ maxLoadedModels: 3 }));
    try {
      const server = await ServerProcess.start({ model: 'sim:instant', args: ['--config', config, '--max-loading-models', '1'] });
      const http = new HttpClient(server.port('http'));
      const batch = await sendBatch(http, Array.from({ length: 10 }, () => INIT), 20_000);
      expect(batch.filter((reply) => reply.result)).toHaveLength(1);
      expect(batch.find((reply) => reply.error)?.error).toMatchObject({ code: TOO_MANY_MODELS, data: { limit: 1, flag: '--max-loading-models' } });
      expect((await http.request(INIT.method, INIT.params)).error).toBeUndefined();
      expect((await http.request(INIT.method, INIT.params)).error).toMatchObject({ code: TOO_MANY_MODELS, data: { limit: 3, flag: '--max-loaded-models' } });
      await http.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
