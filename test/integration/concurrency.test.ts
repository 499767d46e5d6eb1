// Concurrency well beyond the plan's minimum (TCP 50+, UDP 100+, WS 20+): 500 TCP connections,
// 1,000 UDP clients and 200 WebSocket connections open at once against one real server, each
// doing a request and a short stream. No error, every reply to the id that asked, and no chunk
// delivered to the wrong client: each client's stream carries a text unique to that client, and
// every notification a client receives belongs to a request it made.

import { execSync } from 'child_process';
import {
  STATE,
  ServerProcess,
  TcpClient,
  UdpClient,
  WsClient,
  HttpClient,
  assertContiguous,
  mapLimit,
  stopAllServers,
  waitUntil,
  withTimeout,
  type MessageClient,
  type StreamOutcome,
} from './client';

jest.setTimeout(90_000);

const TCP_CLIENTS = 500;
const UDP_CLIENTS = 1000;
const WS_CLIENTS = 200;

function openFileLimit(): number {
  const text = execSync('ulimit -n', { shell: '/bin/bash', encoding: 'utf8' }).trim();
  return text === 'unlimited' ? Number.POSITIVE_INFINITY : Number(text);
}

function expectedText(label: string): string {
  return `${label}: 1, 2, 3, 4, 5`;
}

interface ClientReport {
  label: string;
  errors: string[];
}

/** One client's work: a request, then a short stream whose text is unique to it. */
async function exercise(client: MessageClient, label: string, method: 'rkllm_run' | 'rkllm_run_async'): Promise<ClientReport> {
  const errors: string[] = [];
  try {
    const id = `${label}/req`;
    const reply = await client.request('rkllm_createDefaultParam', undefined, { id, timeoutMs: 30_000 });
    if (reply.id !== id) errors.push(`reply id ${JSON.stringify(reply.id)} for request ${id}`);
    if (reply.error || reply.result?.top_k !== 40) errors.push(`createDefaultParam: ${JSON.stringify(reply.error ?? reply.result)}`);

    const params: Record<string, unknown> = { rkllm_input: { input_type: 0, prompt_input: `echo: ${expectedText(label)}` } };
    if (method === 'rkllm_run') params.stream = true;
    const outcome: StreamOutcome = await client.stream(method, params, { id: `${label}/stream`, timeoutMs: 45_000 });
    if (outcome.response?.error) errors.push(`${method}: ${JSON.stringify(outcome.response.error)}`);
    if (outcome.response && JSON.stringify(outcome.response.id) !== JSON.stringify(outcome.id)) errors.push('stream response id mismatch');
    if (outcome.text !== expectedText(label)) errors.push(`stream text ${JSON.stringify(outcome.text)}`);
    if (outcome.final?.state !== STATE.FINISH) errors.push(`final state ${outcome.final?.state}`);
    try {
      assertContiguous(outcome.chunks, client.transport !== 'udp');
    } catch (error) {
      errors.push((error as Error).message);
    }
    if (method === 'rkllm_run' && outcome.response?.result?.text !== expectedText(label)) errors.push('final result text');
  } catch (error) {
    errors.push((error as Error).message);
  }
  // Nothing that belongs to another client, and nothing that is not JSON-RPC.
  if (client.foreign.length) errors.push(`foreign notifications: ${JSON.stringify(client.foreign.slice(0, 2))}`);
  if (client.unparsable.length) errors.push(`unparsable: ${client.unparsable.slice(0, 2).join(' | ')}`);
  return { label, errors };
}

function failures(reports: ClientReport[]): string[] {
  return reports.filter((r) => r.errors.length).map((r) => `${r.label}: ${r.errors.join('; ')}`);
}

async function openAll<T>(count: number, limit: number, open: (i: number) => Promise<T>): Promise<T[]> {
  return mapLimit(
    Array.from({ length: count }, (_, i) => i),
    limit,
    (i) => open(i),
  );
}

async function closeAll(clients: { close(): Promise<void> }[]): Promise<void> {
  await mapLimit(clients, 100, (c) => c.close().catch(() => undefined));
}

describe('Concurrency: hundreds of clients at once on one server', () => {
  let server: ServerProcess;
  let clients: MessageClient[] = [];

  beforeAll(() => {
    const limit = openFileLimit();
    const needed = TCP_CLIENTS + UDP_CLIENTS + WS_CLIENTS + 1000;
    if (limit < needed) {
      throw new Error(`ulimit -n is ${limit}; these tests open ${needed - 1000} sockets at once on each side: raise it to at least ${needed}`);
    }
  });

  beforeEach(async () => {
    server = await ServerProcess.start({ model: 'sim:instant', disable: ['stdio'], args: ['--max-queue', '4000', '--max-streams', '4000'] });
  });

  afterEach(async () => {
    await closeAll(clients);
    clients = [];
    await stopAllServers();
  });

  async function stillServing(): Promise<void> {
    const http = new HttpClient(server.port('http'));
    try {
      const health = await http.health();
      expect(health.status).toBe(200);
      const reply = await http.request('rkllm_is_running', { handle: 'default' });
      expect(reply.result).toEqual({ running: false });
    } finally {
      await http.close();
    }
    expect(server.exitInfo).toBeUndefined();
  }

  it(`${TCP_CLIENTS} TCP connections at once, each a request and a stream`, async () => {
    const tcp = await openAll(TCP_CLIENTS, 100, (i) => TcpClient.connect(server.port('tcp'), 10_000, `tcp${i}`));
    clients.push(...tcp);
    expect(tcp.every((c) => !c.closed)).toBe(true);
    const reports = await withTimeout(
      Promise.all(tcp.map((c, i) => exercise(c, `tcp${i}`, 'rkllm_run'))),
      60_000,
      'every TCP client',
    );
    expect(failures(reports)).toEqual([]);
    await stillServing();
  });

  it(`${WS_CLIENTS} WebSocket connections at once, each a request and a stream`, async () => {
    const ws = await openAll(WS_CLIENTS, 50, (i) => WsClient.connect(server.port('websocket'), 10_000, `ws${i}`));
    clients.push(...ws);
    const reports = await withTimeout(
      Promise.all(ws.map((c, i) => exercise(c, `ws${i}`, i % 2 ? 'rkllm_run' : 'rkllm_run_async'))),
      60_000,
      'every WebSocket client',
    );
    expect(failures(reports)).toEqual([]);
    await stillServing();
  });

  it(`${UDP_CLIENTS} UDP clients at once, each a request and a stream`, async () => {
    const udp = await openAll(UDP_CLIENTS, 200, (i) => UdpClient.open(server.port('udp'), `udp${i}`));
    clients.push(...udp);
    const reports = await withTimeout(
      Promise.all(udp.map((c, i) => exercise(c, `udp${i}`, i % 2 ? 'rkllm_run' : 'rkllm_run_async'))),
      60_000,
      'every UDP client',
    );
    expect(failures(reports)).toEqual([]);
    await stillServing();
  });

  it('all of them at once: 500 TCP + 1,000 UDP + 200 WebSocket clients', async () => {
    const [tcp, udp, ws] = await Promise.all([
      openAll(TCP_CLIENTS, 100, (i) => TcpClient.connect(server.port('tcp'), 10_000, `all-tcp${i}`)),
      openAll(UDP_CLIENTS, 200, (i) => UdpClient.open(server.port('udp'), `all-udp${i}`)),
      openAll(WS_CLIENTS, 50, (i) => WsClient.connect(server.port('websocket'), 10_000, `all-ws${i}`)),
    ]);
    clients.push(...tcp, ...udp, ...ws);
    const started = Date.now();
    const reports = await withTimeout(
      Promise.all([
        ...tcp.map((c, i) => exercise(c, `all-tcp${i}`, i % 2 ? 'rkllm_run' : 'rkllm_run_async')),
        ...udp.map((c, i) => exercise(c, `all-udp${i}`, i % 2 ? 'rkllm_run' : 'rkllm_run_async')),
        ...ws.map((c, i) => exercise(c, `all-ws${i}`, i % 2 ? 'rkllm_run' : 'rkllm_run_async')),
      ]),
      75_000,
      'every client',
    );
    expect(failures(reports)).toEqual([]);
    expect(Date.now() - started).toBeLessThan(60_000);
    await waitUntil('the queue to drain', async () => {
      const http = new HttpClient(server.port('http'));
      try {
        return (await http.request('rkllm_is_running', { handle: 'default' })).result?.running === false;
      } finally {
        await http.close();
      }
    }, 5000);
    await stillServing();
  });
});
