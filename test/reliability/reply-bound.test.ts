// Issue 11, finding 1: a reply to one message is bounded. A batch longer than --max-batch-length
// is refused whole with one -32014; a batch reply leaves member by member as the peer takes it,
// so six clients that send a 10,000-member batch of rkllm_list_functions (a 174 MB reply) and
// never read keep the server's RSS within a bound and a control client answered; a response
// larger than --max-buffered-bytes by itself is replaced by -32014 to its id.

import {
  HttpClient,
  ServerProcess,
  TcpClient,
  WsClient,
  residentKiB,
  sleep,
  stopAllServers,
  type MessageClient,
  type RpcMessage,
  openMessageClients,
  closeMessageClients,
} from '../integration/client';
import { listFunctionsBatch, parkReply, quantile, timeControlRequests, type ParkedClient } from '../../bench/security/parked-replies-clients';

jest.setTimeout(60_000);

const MESSAGE_TOO_LARGE = -32014;
const DEFAULT_MAX_BATCH_LENGTH = 1000;
/** What six parked 174 MB replies may add to the server's RSS (before the fix: 0.5 to 3 GiB). */
const RSS_GROWTH_BOUND_MIB = 160;
/** The control client's p99 during the attack (before the fix: 0.9 to 4.5 s). */
const CONTROL_P99_BOUND_MS = 500;
const ATTACKERS = 6;

afterAll(() => stopAllServers());

describe('a batch longer than --max-batch-length', () => {
  let server: ServerProcess;
  const clients: Record<string, MessageClient> = {};

  beforeAll(async () => {
    server = await ServerProcess.start({ model: 'sim:instant' });
    await openMessageClients(server, clients);
  });
  afterAll(async () => {
    await closeMessageClients(clients);
    await server.stop();
  });

  function expectRefusal(reply: RpcMessage | undefined): void {
    expect(reply).toMatchObject({ id: null, error: { code: MESSAGE_TOO_LARGE, data: { max_batch_length: DEFAULT_MAX_BATCH_LENGTH } } });
    expect((reply?.error?.data as { detail: string }).detail).toContain(`a batch of ${DEFAULT_MAX_BATCH_LENGTH + 1} requests`);
  }

  it.each(['stdio', 'tcp', 'udp', 'websocket'])('%s: is refused whole with one -32014 naming the bound; the bound itself is served', async (transport) => {
    const client = clients[transport];
    const before = client.received.length;
    client.sendText(listFunctionsBatch(DEFAULT_MAX_BATCH_LENGTH + 1));
    const refusal = await client.waitFor('the refusal', (message) => message.error?.code === MESSAGE_TOO_LARGE && message.id === null, 10_000);
    expectRefusal(refusal);
    // One answer for the whole batch, not one per member.
    await sleep(200);
    expect(client.received.length - before).toBe(1);
    // A batch at the bound is answered whole: on a stream, about 17 MB written member by member as
    // the reader takes it; on UDP, where the reply must fit one datagram, a small one.
    const method = transport === 'udp' ? 'rkllm_is_running' : 'rkllm_list_functions';
    const firstId = 1_000_000;
    const members = Array.from({ length: DEFAULT_MAX_BATCH_LENGTH }, (_, index) => ({ jsonrpc: '2.0', id: firstId + index, method }));
    client.sendText(JSON.stringify(members));
    const lastId = firstId + DEFAULT_MAX_BATCH_LENGTH - 1;
    await client.waitFor('the last member of the batch at the bound', (message) => message.id === lastId, 20_000);
    const answered = client.received.filter((entry) => typeof entry.message.id === 'number' && (entry.message.id as number) >= firstId);
    expect(answered).toHaveLength(DEFAULT_MAX_BATCH_LENGTH);
    expect(answered.every((entry) => entry.message.error === undefined)).toBe(true);
  });

  it('http: is refused whole with one -32014 naming the bound', async () => {
    const http = new HttpClient(server.port('http'));
    try {
      const reply = await http.post(listFunctionsBatch(DEFAULT_MAX_BATCH_LENGTH + 1));
      expect(reply.status).toBe(200);
      expectRefusal(reply.json as RpcMessage);
      const atBound = await http.post(listFunctionsBatch(DEFAULT_MAX_BATCH_LENGTH), {}, 20_000);
      expect(atBound.json).toHaveLength(DEFAULT_MAX_BATCH_LENGTH);
    } finally {
      await http.close();
    }
  });
});

describe.each(['tcp', 'websocket', 'http', 'stdio'] as const)('%s: clients that never read a 10,000-member batch reply', (transport) => {
  let server: ServerProcess;
  const parked: ParkedClient[] = [];

  beforeAll(async () => {
    // The batch is let in, so the reply path itself is what is bounded.
    server = await ServerProcess.start({ model: 'sim:instant', disable: ['udp'], args: ['--max-batch-length', '10000'] });
  });
  afterAll(async () => {
    for (const client of parked) client.destroy();
    await server.stop();
  });

  it('keep the server within its RSS bound and the control client answered', async () => {
    await sleep(500);
    const baselineKiB = residentKiB(server.pid);
    let peakKiB = baselineKiB;
    const sampler = setInterval(() => {
      if (server.exitInfo === undefined) peakKiB = Math.max(peakKiB, residentKiB(server.pid));
    }, 100);
    try {
      const control = timeControlRequests(server.port('tcp'), 4000);
      await sleep(300);
      const batch = listFunctionsBatch(10_000);
      if (transport === 'stdio') {
        // The parent is the one stdio peer: it writes the batch and never reads stdout.
        server.child.stdin!.write(batch + '\n');
      } else {
        for (let index = 0; index < ATTACKERS; index++) parked.push(await parkReply(transport, server.port(transport), batch));
      }
      const timings = await control;
      const growthMiB = (peakKiB - baselineKiB) / 1024;
      const p99 = quantile(timings.latenciesMs, 0.99);
      process.stderr.write(
        `reply parking over ${transport}: RSS ${Math.round(baselineKiB / 1024)} -> peak ${Math.round(peakKiB / 1024)} MiB; ` +
          `control p99 ${p99.toFixed(1)} ms over ${timings.latenciesMs.length} requests, ${timings.unanswered} unanswered\n`,
      );
      expect(server.exitInfo).toBeUndefined();
      expect(timings.unanswered).toBe(0);
      expect(timings.latenciesMs.length).toBeGreaterThan(100);
      expect(growthMiB).toBeLessThan(RSS_GROWTH_BOUND_MIB);
      expect(p99).toBeLessThan(CONTROL_P99_BOUND_MS);
    } finally {
      clearInterval(sampler);
    }
  });
});

describe('a batch reply still leaving when the peer half-closes', () => {
  it('stdio: a parent that ends stdin and reads late gets the whole reply before the process exits', async () => {
    const server = await ServerProcess.start({ model: 'sim:instant', disable: ['tcp', 'udp', 'http', 'websocket'] });
    const stdout = server.child.stdout!;
    stdout.pause();
    server.child.stdin!.end(listFunctionsBatch(DEFAULT_MAX_BATCH_LENGTH) + '\n');
    // Reading starts once the kernel's pipe buffer is long full and the reply waits on it.
    await sleep(1000);
    const parts: Buffer[] = [];
    stdout.on('data', (data: Buffer) => parts.push(data));
    stdout.resume();
    const exit = await server.exited;
    expect(exit.code).toBe(0);
    const replies = JSON.parse(Buffer.concat(parts).toString('utf8')) as RpcMessage[];
    expect(replies).toHaveLength(DEFAULT_MAX_BATCH_LENGTH);
    expect(replies.every((reply) => Array.isArray(reply.result))).toBe(true);
  });
});

describe('a response larger than --max-buffered-bytes by itself', () => {
  // rkllm_list_functions answers about 17 KB: over this bound on its own.
  const BOUND = 16_384;
  let server: ServerProcess;

  beforeAll(async () => {
    server = await ServerProcess.start({ model: 'sim:instant', disable: ['udp'], args: ['--max-buffered-bytes', String(BOUND)] });
  });
  afterAll(() => server.stop());

  function expectReplaced(reply: RpcMessage | undefined, id: unknown): void {
    expect(reply).toMatchObject({ id, error: { code: MESSAGE_TOO_LARGE, data: { max_bytes: BOUND } } });
    expect((reply?.error?.data as { reply_bytes: number }).reply_bytes).toBeGreaterThan(BOUND);
  }

  it.each(['stdio', 'tcp', 'websocket'])('%s: is replaced by -32014 to its id (alone and in a batch); the connection goes on', async (transport) => {
    const client: MessageClient =
      transport === 'stdio' ? server.stdio() : transport === 'tcp' ? await TcpClient.connect(server.port('tcp')) : await WsClient.connect(server.port('websocket'));
    try {
      expectReplaced(await client.request('rkllm_list_functions', undefined, { id: `alone-${transport}` }), `alone-${transport}`);
      const ids = [1, 2, 3].map((n) => `batch-${transport}-${n}`);
      client.sendText(JSON.stringify(ids.map((id) => ({ jsonrpc: '2.0', id, method: 'rkllm_list_functions' }))));
      for (const id of ids) expectReplaced(await client.waitForReply(id), id);
      expect((await client.request('rkllm_is_running')).result).toEqual({ running: false });
    } finally {
      if (transport !== 'stdio') await client.close();
    }
  });

  it('http: is replaced by -32014 to its id, as a plain reply and in an event stream', async () => {
    const http = new HttpClient(server.port('http'));
    try {
      const plain = await http.post(JSON.stringify({ jsonrpc: '2.0', id: 'plain', method: 'rkllm_list_functions' }));
      expectReplaced(plain.json as RpcMessage, 'plain');
      const events = await http.post(JSON.stringify({ jsonrpc: '2.0', id: 'sse', method: 'rkllm_list_functions' }), { accept: 'text/event-stream' });
      const data = events.text
        .split('\n\n')
        .filter((event) => event.startsWith('data: '))
        .map((event) => JSON.parse(event.slice('data: '.length)) as RpcMessage);
      expect(data).toHaveLength(1);
      expectReplaced(data[0], 'sse');
    } finally {
      await http.close();
    }
  });
});
