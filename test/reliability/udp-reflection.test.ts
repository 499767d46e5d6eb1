// UDP amplification and reflection (issue 11, finding 5). A datagram's source address can be
// forged: whoever sends one in a victim's name makes the server talk to the victim. A forged
// datagram is, to the server, exactly a datagram from an address that never proved it can
// receive, so each check sends from a fresh socket that has never talked to the server (the
// "stranger") and counts every byte that socket gets back. Without raw sockets a test cannot put
// another address in the IP header, and it need not: the server sees nothing else.
//
// - a stranger's rkllm_list_functions and its run_async on a large-context model get at most
//   their own size back, and the run never starts;
// - with --api-key, a stranger without the key gets nothing at all, not even the challenge;
// - 1,200 source ports that each become a peer cannot evict a peer whose run_async is queued;
// - a peer's replies stay within its byte budget, on by default.
// The amplification factors (reply bytes / request bytes) are printed for docs/security/d.md.

import * as dgram from 'dgram';
import * as fs from 'fs';
import * as path from 'path';
import {
  ADDRESS_NOT_VERIFIED,
  HOST,
  HttpClient,
  ServerProcess,
  TcpClient,
  UdpClient,
  makeTempDir,
  mapLimit,
  sleep,
  stopAllServers,
  waitUntil,
  withTimeout,
  type RpcMessage,
  readHealth,
  writePacedModel,
} from '../integration/client';

jest.setTimeout(90_000);

const API_KEY = 'udp-reflection-key';
/** How long a stranger's socket listens for anything after its datagram. */
const LISTEN_MS = 1000;
/** The default of --udp-reply-bytes-per-second (docs/cli.md). */
const DEFAULT_REPLY_BYTES_PER_SECOND = 1024 * 1024;
const FLOOD_PORTS = 1200;
/** Asked for on the stranger's socket; Linux caps it at net.core.rmem_max. */
const RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024;
/** Long enough for the whole 30,000-token stream of the big model, had it been started. */
const RUN_LISTEN_MS = 3000;

/** A socket that has never talked to the server, counting what it receives. */
class Stranger {
  readonly messages: RpcMessage[] = [];
  bytes = 0;
  datagrams = 0;

  private constructor(readonly socket: dgram.Socket) {
    socket.on('message', (data: Buffer) => {
      this.bytes += data.length;
      this.datagrams += 1;
      try {
        this.messages.push(JSON.parse(data.toString('utf8')) as RpcMessage);
      } catch {
        // counted, not parsed
      }
    });
  }

  static open(): Promise<Stranger> {
    return withTimeout(
      new Promise<Stranger>((resolve, reject) => {
        const socket = dgram.createSocket('udp4');
        socket.once('error', reject);
        socket.bind(0, HOST, () => {
          socket.off('error', reject);
          // Room for a flood, so what the server sends is counted rather than lost here.
          socket.setRecvBufferSize(RECEIVE_BUFFER_BYTES);
          resolve(new Stranger(socket));
        });
      }),
      5000,
      'stranger bind',
    );
  }

  /** Sends one datagram and listens for listenMs; returns its size. */
  async sendAndListen(port: number, text: string, listenMs = LISTEN_MS): Promise<number> {
    const datagram = Buffer.from(text);
    this.socket.send(datagram, port, HOST);
    await sleep(listenMs);
    return datagram.length;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

interface UdpHealth {
  connections: number;
  refused: number;
  challenged?: number;
  unauthenticated?: number;
  overBudget?: number;
}

interface Health {
  queued: number;
  running: number;
  streams: number;
  transports: { udp: UdpHealth };
}

function factor(replyBytes: number, requestBytes: number): string {
  return (replyBytes / requestBytes).toFixed(2);
}

describe('UDP: no amplification, no reflection, no eviction of a peer that owns work', () => {
  let server: ServerProcess;
  let control: HttpClient;
  let modelsDir: string;

  beforeAll(async () => {
    modelsDir = makeTempDir('udp-reflection');
    // Paced: a run on it holds the model long enough for the victim's run to stay queued.
    writePacedModel(modelsDir, { decode_ms_per_token: 20 });
    server = await ServerProcess.start({ model: 'sim:instant', disable: ['stdio'], args: ['--models-dir', modelsDir] });
    control = new HttpClient(server.port('http'), { keepAlive: false });
    // The large-context model of the finding: one run_async may stream 30,000 tokens.
    const big = await control.request('rkllm_init', { handle: 'big', param: { model_path: 'sim:instant', max_context_len: 262144, max_new_tokens: 30000 } });
    expect(big.error).toBeUndefined();
    const paced = await control.request('rkllm_init', { handle: 'paced', param: { model_path: path.join(modelsDir, 'paced.json'), max_context_len: 8192, max_new_tokens: 0 } });
    expect(paced.error).toBeUndefined();
  });

  afterAll(async () => {
    await control?.close();
    await stopAllServers();
    if (modelsDir) fs.rmSync(modelsDir, { recursive: true, force: true });
  });

  const health = (): Promise<Health> => readHealth<Health>(control);

  it('rkllm_list_functions from an address that never proved itself gets at most its own size back', async () => {
    const stranger = await Stranger.open();
    try {
      const small = '{"jsonrpc":"2.0","id":1,"method":"rkllm_list_functions"}';
      const smallBytes = await stranger.sendAndListen(server.port('udp'), small);
      const smallReply = stranger.bytes;
      // Padded with spaces (still the same JSON text), the request has room for the challenge.
      const paddedBytes = await stranger.sendAndListen(server.port('udp'), small.padEnd(256, ' '));
      const paddedReply = stranger.bytes - smallReply;
      process.stderr.write(
        `udp amplification, rkllm_list_functions from a stranger: ${smallBytes} B -> ${smallReply} B (${factor(smallReply, smallBytes)}x); ` +
          `padded ${paddedBytes} B -> ${paddedReply} B (${factor(paddedReply, paddedBytes)}x)\n`,
      );
      expect(smallReply).toBeLessThanOrEqual(smallBytes);
      expect(paddedReply).toBeLessThanOrEqual(paddedBytes);
      // What the padded one earned is the challenge, with the cookie to echo.
      expect(stranger.messages).toEqual([{ jsonrpc: '2.0', id: 1, error: expect.objectContaining({ code: ADDRESS_NOT_VERIFIED, data: expect.objectContaining({ cookie: expect.any(String) }) }) }]);
    } finally {
      await stranger.close();
    }
  });

  it('run_async on a large-context model from an address that never proved itself: nothing runs, at most its own size back', async () => {
    const stranger = await Stranger.open();
    try {
      const before = await health();
      const request = JSON.stringify({
        jsonrpc: '2.0',
        id: 'flood',
        method: 'rkllm_run_async',
        params: { handle: 'big', rkllm_input: { input_type: 0, prompt_input: 'count to 20000' } },
      });
      const requestBytes = await stranger.sendAndListen(server.port('udp'), request, RUN_LISTEN_MS);
      process.stderr.write(
        `udp amplification, rkllm_run_async (30,000-token model) from a stranger: ${requestBytes} B -> ${stranger.bytes} B in ${stranger.datagrams} datagrams ` +
          `(${factor(stranger.bytes, requestBytes)}x)\n`,
      );
      expect(stranger.bytes).toBeLessThanOrEqual(requestBytes);
      const after = await health();
      // The run was never queued: no stream was made for it and the model is idle.
      expect({ streams: after.streams, running: after.running, queued: after.queued }).toEqual({ streams: before.streams, running: 0, queued: 0 });
      expect((await control.request('rkllm_is_running', { handle: 'big' })).result).toEqual({ running: false });
    } finally {
      await stranger.close();
    }
  });

  it('1,200 source ports that become peers cannot evict a peer whose run_async is queued', async () => {
    // A run that holds the paced model, so the victim's run waits in the queue.
    const blocker = await TcpClient.connect(server.port('tcp'));
    const victim = await UdpClient.open(server.port('udp'), 'victim');
    const flood: UdpClient[] = [];
    try {
      blocker.send({ jsonrpc: '2.0', id: 'blocker', method: 'rkllm_run', params: { handle: 'paced', rkllm_input: { input_type: 0, prompt_input: 'count to 100000' } } });
      await waitUntil('the blocker to run', async () => (await control.request('rkllm_is_running', { handle: 'paced' })).result?.running === true, 10_000);
      const victimRun = victim.stream('rkllm_run_async', { handle: 'paced', rkllm_input: { input_type: 0, prompt_input: 'echo: victim' } }, { id: 'victim-run', timeoutMs: 30_000 });
      // Awaited below; a failure before that must not leave it unhandled.
      victimRun.catch(() => undefined);
      const accepted = await victim.waitForReply('victim-run', 10_000);
      expect(accepted.result?.stream_id).toEqual(expect.any(String));
      expect((await health()).queued).toBe(1);

      // Each port does the handshake and one request: a real peer, as an attacker can make many.
      const ports = Array.from({ length: FLOOD_PORTS }, (_, index) => index);
      await withTimeout(
        mapLimit(ports, 100, async (index) => {
          const client = await UdpClient.open(server.port('udp'), `flood${index}`);
          flood.push(client);
          await client.request('rkllm_get_constants', undefined, { timeoutMs: 20_000 });
        }),
        60_000,
        `${FLOOD_PORTS} flood peers`,
      );
      const during = await health();
      expect(during.transports.udp.connections).toBeLessThanOrEqual(1024);
      // The victim's run is still queued, its peer still known.
      expect(during.queued).toBe(1);

      blocker.drop();
      const outcome = await victimRun;
      expect(outcome.response?.error).toBeUndefined();
      expect(outcome.text).toBe('victim');
      expect(outcome.final?.state).toBe(2);
    } finally {
      blocker.drop();
      await victim.close();
      await Promise.all(flood.map((client) => client.close()));
    }
  });

  it('a peer gets no more than its byte budget, which is on by default', async () => {
    const client = await UdpClient.open(server.port('udp'), 'greedy');
    let bytes = 0;
    client.socket.on('message', (data: Buffer) => (bytes += data.length));
    try {
      // The handshake, and a reply's size.
      const first = await client.request('rkllm_list_functions');
      const replyBytes = Buffer.byteLength(JSON.stringify(first));
      await sleep(1100); // the budget is full again
      bytes = 0;
      const before = (await health()).transports.udp.overBudget ?? 0;
      const startedAt = Date.now();
      const requests = 200; // about 3.5 MB of replies asked for at once
      for (let index = 0; index < requests; index++) client.send({ jsonrpc: '2.0', id: `greedy-${index}`, method: 'rkllm_list_functions' });
      await sleep(1000);
      const elapsedS = (Date.now() - startedAt) / 1000;
      const overBudget = ((await health()).transports.udp.overBudget ?? 0) - before;
      process.stderr.write(`udp byte budget: ${requests} x ${replyBytes} B asked for, ${bytes} B received in ${elapsedS.toFixed(2)} s, ${overBudget} datagrams over budget\n`);
      // One second of burst plus the refill over the window, and a datagram of slack.
      expect(bytes).toBeLessThanOrEqual(DEFAULT_REPLY_BYTES_PER_SECOND * (1 + elapsedS) + replyBytes);
      expect(overBudget).toBeGreaterThan(0);
    } finally {
      await client.close();
    }
  });
});

describe('UDP with --api-key: a stranger without the key gets nothing at all', () => {
  let server: ServerProcess;

  beforeAll(async () => {
    server = await ServerProcess.start({ model: 'sim:instant', disable: ['stdio', 'websocket'], args: ['--api-key', API_KEY] });
  });

  afterAll(async () => {
    await stopAllServers();
  });

  it('a forged datagram without the key earns no reply of any size, even with room for one', async () => {
    const stranger = await Stranger.open();
    try {
      await stranger.sendAndListen(server.port('udp'), '{"jsonrpc":"2.0","id":1,"method":"rkllm_list_functions"}');
      await stranger.sendAndListen(server.port('udp'), '{"jsonrpc":"2.0","id":2,"method":"rkllm_list_functions"}'.padEnd(1024, ' '));
      await stranger.sendAndListen(server.port('udp'), JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'rkllm_get_constants', auth: 'a wrong key' }).padEnd(1024, ' '));
      expect({ bytes: stranger.bytes, datagrams: stranger.datagrams }).toEqual({ bytes: 0, datagrams: 0 });
      const http = new HttpClient(server.port('http'), { keepAlive: false });
      try {
        const reply = await http.raw('GET', '/health');
        expect((reply.json as Health).transports.udp.unauthenticated).toBe(3);
      } finally {
        await http.close();
      }
    } finally {
      await stranger.close();
    }
  });

  it('a client with the key does the handshake and is served', async () => {
    const client = await UdpClient.open(server.port('udp'), 'keyed', { apiKey: API_KEY });
    try {
      client.send({ jsonrpc: '2.0', id: 'keyed-1', method: 'rkllm_get_constants', auth: API_KEY });
      const reply = await client.waitForReply('keyed-1');
      expect(reply.error).toBeUndefined();
      expect(reply.result.runtime).toBeDefined();
    } finally {
      await client.close();
    }
  });
});
