// HTTP statuses that say what went wrong (issue 11, findings 8 and 9): a malformed %-escape in
// the URL is the client's error (400, it was 500); a request whose headers or body do not arrive
// in time gets 408 after --headers-timeout / --body-timeout (Node's own bounds were 60 s and 300 s,
// then a bare 400); headers too large get 431 and chunk extensions too large 413 (both were 400);
// an idle keep-alive connection is closed after --idle-timeout. HTTP and the WebSocket port
// (before the upgrade) alike; the server goes on serving after each.

import { HOST, HttpClient, ServerProcess, stopAllServers } from '../integration/client';
import { RawSocket, partialHead } from './raw-sockets';

jest.setTimeout(30_000);

const HEADERS_TIMEOUT_MS = 1000;
const BODY_TIMEOUT_MS = 2000;
const IDLE_TIMEOUT_MS = 800;
/** Node looks for expired requests at intervals, and this machine is shared: the slack on each timeout. */
const SLACK_MS = 1500;

/** The default --headers-timeout: a few seconds, where Node's own is 60 s. */
const DEFAULT_HEADERS_TIMEOUT_MS = 5000;

describe('HTTP statuses with the default settings', () => {
  let server: ServerProcess;
  let http: HttpClient;

  beforeAll(async () => {
    server = await ServerProcess.start({ disable: ['stdio', 'tcp', 'udp', 'websocket'] });
    http = new HttpClient(server.port('http'));
  });

  afterEach(async () => {
    // Whatever a case did, the server still answers.
    expect((await http.health()).status).toBe(200);
  });

  afterAll(async () => {
    await http.close();
    await stopAllServers();
  });

  it('a malformed %-escape in the URL gets 400, on /v1 and elsewhere', async () => {
    for (const path of ['/v1/models/%E0%A4%A', '/v1/models/%zz']) {
      const reply = await http.raw('GET', path);
      expect([path, reply.status]).toEqual([path, 400]);
      expect(reply.json?.error?.code).toBe('invalid_url');
    }
    const rpc = await http.raw('POST', '/%zz', '{}', { 'content-type': 'application/json' });
    expect(rpc.status).toBe(400);
    expect(rpc.json?.error?.code).toBe(-32600);
    expect((await http.raw('GET', '/health?probe=%')).status).toBe(400);
    // A well-formed escape still reaches its route.
    expect((await http.raw('GET', '/v1/models/def%61ult')).json?.id).toBe('default');
  });

  it('headers larger than Node allows get 431; chunk extensions too large get 413', async () => {
    const big = new RawSocket(server.port('http'));
    big.write(`GET /health HTTP/1.1\r\nHost: ${HOST}\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    await big.waitClosed(5000);
    expect(big.status).toBe(431);
    expect(big.json?.error?.code).toBe(-32600);

    const chunked = new RawSocket(server.port('http'));
    chunked.write(
      `POST / HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n` +
        `2;${'x'.repeat(20_000)}\r\n{}\r\n0\r\n\r\n`,
    );
    await chunked.waitClosed(5000);
    expect(chunked.status).toBe(413);
  });

  it(`headers that stall get 408 within the default ${DEFAULT_HEADERS_TIMEOUT_MS} ms`, async () => {
    const socket = new RawSocket(server.port('http'));
    socket.write(partialHead('GET', '/health'));
    await socket.waitClosed(DEFAULT_HEADERS_TIMEOUT_MS + 2 * SLACK_MS, 'the 408 of a request whose headers stalled');
    expect(socket.status).toBe(408);
  });
});

describe('HTTP statuses with short timeouts', () => {
  let server: ServerProcess;
  let http: HttpClient;

  beforeAll(async () => {
    server = await ServerProcess.start({
      disable: ['stdio', 'tcp', 'udp'],
      args: ['--headers-timeout', String(HEADERS_TIMEOUT_MS), '--body-timeout', String(BODY_TIMEOUT_MS), '--idle-timeout', String(IDLE_TIMEOUT_MS)],
    });
    http = new HttpClient(server.port('http'));
  });

  afterEach(async () => {
    expect((await http.health()).status).toBe(200);
  });

  afterAll(async () => {
    await http.close();
    await stopAllServers();
  });

  it.each(['http', 'websocket'] as const)('%s: headers that do not arrive within --headers-timeout get 408 and the socket closes', async (transport) => {
    const socket = new RawSocket(server.port(transport));
    const sentAt = Date.now();
    socket.write(partialHead('GET', '/', transport === 'websocket' ? 'Upgrade: websocket\r\nConnection: Upgrade\r\n' : ''));
    await socket.waitClosed(HEADERS_TIMEOUT_MS + SLACK_MS, 'the 408 of a request whose headers stalled');
    expect(socket.status).toBe(408);
    expect(socket.json?.error?.data?.reason).toContain('--headers-timeout');
    expect(socket.closedAt! - sentAt).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 50);
  });

  it('a socket that sends nothing at all is closed after --headers-timeout', async () => {
    const socket = new RawSocket(server.port('http'));
    expect(await socket.connected).toBe(true);
    await socket.waitClosed(HEADERS_TIMEOUT_MS + SLACK_MS, 'the close of a silent socket');
  });

  it('a body that does not arrive within --body-timeout gets 408', async () => {
    const socket = new RawSocket(server.port('http'));
    const sentAt = Date.now();
    socket.write(`POST / HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"jsonrpc":`);
    await socket.waitClosed(BODY_TIMEOUT_MS + SLACK_MS, 'the 408 of a request whose body stalled');
    expect(socket.status).toBe(408);
    expect(socket.closedAt! - sentAt).toBeGreaterThanOrEqual(BODY_TIMEOUT_MS - 50);
  });

  it('an idle keep-alive connection is closed after --idle-timeout', async () => {
    const socket = new RawSocket(server.port('http'));
    socket.write(`GET /health HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
    await socket.waitClosed(IDLE_TIMEOUT_MS + SLACK_MS, 'the close of an idle keep-alive connection');
    expect(socket.status).toBe(200);
    expect(socket.closedAt! - socket.firstByteAt!).toBeGreaterThanOrEqual(IDLE_TIMEOUT_MS - 50);
  });
});
