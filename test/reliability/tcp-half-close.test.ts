// A dead TCP client's work stops (issue 11, finding 7). The server honours half-close: a client
// that shuts down its sending side still gets its replies. But a crashed client's kernel sends a
// FIN too, which looks the same, so its non-streaming runs (which write nothing until they end)
// used to keep the model busy to their end, and the runs queued behind them after that. Here a
// client sends a long run and more behind it, then ends and destroys its socket at once (FIN,
// then gone), and the model must be free within a bound; a client that only half-closes must
// still get every reply, each line one JSON text.

import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { HOST, HttpClient, ServerProcess, countTo, makeTempDir, stopAllServers, waitUntil, withTimeout, readHealth, writePacedModel } from '../integration/client';

jest.setTimeout(60_000);

/** How soon the model must be free once the client is gone (the probe is every 500 ms). */
const FREED_WITHIN_MS = 3000;
const QUEUED_BEHIND = 5;

interface Health {
  queued: number;
  running: number;
  connections: number;
  transports: { tcp: { connections: number } };
}

describe('TCP: a client that sent FIN and vanished frees the model; a half-closed one gets its replies', () => {
  let server: ServerProcess;
  let control: HttpClient;
  let modelsDir: string;

  beforeAll(async () => {
    modelsDir = makeTempDir('tcp-half-close');
    // 20 ms a token: "count to 1000" (about 3,000 tokens) runs for a minute.
    writePacedModel(modelsDir, { decode_ms_per_token: 20 });
    server = await ServerProcess.start({ model: 'sim:instant', disable: ['stdio', 'udp', 'websocket'], args: ['--models-dir', modelsDir] });
    control = new HttpClient(server.port('http'), { keepAlive: false });
    const init = await control.request('rkllm_init', { handle: 'paced', param: { model_path: path.join(modelsDir, 'paced.json'), max_context_len: 8192, max_new_tokens: 0 } });
    expect(init.error).toBeUndefined();
  });

  afterAll(async () => {
    await control?.close();
    await stopAllServers();
    if (modelsDir) fs.rmSync(modelsDir, { recursive: true, force: true });
  });

  const health = (): Promise<Health> => readHealth<Health>(control);

  const run = (id: string, prompt: string): string =>
    JSON.stringify({ jsonrpc: '2.0', id, method: 'rkllm_run', params: { handle: 'paced', rkllm_input: { input_type: 0, prompt_input: prompt } } }) + '\n';

  function connect(): Promise<net.Socket> {
    return withTimeout(
      new Promise<net.Socket>((resolve, reject) => {
        const socket = net.connect({ host: HOST, port: server.port('tcp') });
        socket.once('error', reject);
        socket.once('connect', () => {
          socket.off('error', reject);
          socket.on('error', () => undefined);
          resolve(socket);
        });
      }),
      5000,
      'tcp connect',
    );
  }

  it('a client that sends runs, then FIN, then vanishes: its running and queued runs are dropped within a bound', async () => {
    const socket = await connect();
    socket.write(run('long', 'count to 1000'));
    for (let index = 0; index < QUEUED_BEHIND; index++) socket.write(run(`queued-${index}`, 'count to 1000'));
    await waitUntil('the run to start and the rest to queue', async () => {
      const now = await health();
      return now.running === 1 && now.queued === QUEUED_BEHIND;
    }, 10_000);
    // A crashed client: its kernel sends FIN, then the socket is gone for good.
    socket.end();
    socket.destroy();
    const goneAt = Date.now();
    await waitUntil('the model to be free', async () => {
      const now = await health();
      return now.running === 0 && now.queued === 0 && now.transports.tcp.connections === 0;
    }, FREED_WITHIN_MS, 50);
    process.stderr.write(`tcp: a client gone after FIN freed the model and its ${QUEUED_BEHIND} queued runs in ${Date.now() - goneAt} ms\n`);
    expect((await control.request('rkllm_is_running', { handle: 'paced' })).result).toEqual({ running: false });
  });

  it('a client that half-closes and keeps reading gets every reply, each line one JSON text, then the server closes', async () => {
    const socket = await connect();
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    // About 60 tokens at 20 ms: the run outlasts several probes of the half-closed socket.
    socket.write(run('slow', 'count to 20'));
    socket.write(run('fast', 'echo: done'));
    socket.end();
    await withTimeout(closed, 20_000, 'the server to close after the replies');
    const lines = text.split('\n').filter((line) => line.trim() !== '');
    const replies = lines.map((line) => JSON.parse(line) as { id: string; result?: { text: string } });
    expect(replies.map((reply) => [reply.id, reply.result?.text]).sort()).toEqual([
      ['fast', 'done'],
      ['slow', countTo(20)],
    ]);
  });
});
