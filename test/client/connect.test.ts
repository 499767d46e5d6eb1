// connect(url), close(), the API key on each transport, and the client's own refusals (bad URL,
// nothing listening, a reused id, a datagram too large), against the real bin/rkllm-serve.

import * as net from 'net';
import { ClientError, MAX_DATAGRAM_BYTES, RpcResponseError, WebSocketTransport, connect } from '../../lib/client';
import { stopAllServers } from '../integration/client';
import { LONG_RUN, openClient, startServer, stopServer, urlOf, waitIdle, type TestServer } from './helpers';

const NETWORK_KINDS = ['tcp', 'udp', 'websocket', 'http', 'http-sse'] as const;

afterAll(() => stopAllServers());

/** A port nothing listens on: bound, then released. */
async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

describe('connect() and close()', () => {
  let test: TestServer;

  beforeAll(async () => {
    test = await startServer({ disable: ['stdio'] });
  });

  afterAll(() => stopServer(test));

  it.each(NETWORK_KINDS)('%s: close() is graceful, and a call after it fails with CLOSED', async (kind) => {
    const client = await openClient(test.server, kind);
    expect(await client.request('rkllm_is_running', { handle: 'default' })).toEqual({ running: false });
    await client.close();
    expect(client.closed).toBe(true);
    expect(client.transport.closeInfo).toMatchObject({ reason: 'closed' });
    await expect(client.request('rkllm_get_constants')).rejects.toMatchObject({ name: 'ClientError', code: 'CLOSED' });
  });

  it('refuses a URL it cannot serve, and says so', async () => {
    for (const url of ['not a url', 'ftp://127.0.0.1:21', 'tcp://127.0.0.1:8080/some/path']) {
      await expect(connect(url)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'url' });
    }
    await expect(WebSocketTransport.connect({ url: 'http://127.0.0.1:1/' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('fails with CONNECT_FAILED when nothing listens, or the upgrade is refused', async () => {
    const port = await freePort();
    await expect(connect(`tcp://127.0.0.1:${port}`)).rejects.toMatchObject({ code: 'CONNECT_FAILED', message: expect.stringContaining('ECONNREFUSED') });
    await expect(connect(`ws://127.0.0.1:${port}/`)).rejects.toMatchObject({ code: 'CONNECT_FAILED' });
    const wrongPath = await connect(`ws://127.0.0.1:${test.server.port('websocket')}/elsewhere`).catch((error: unknown) => error);
    expect(wrongPath).toBeInstanceOf(ClientError);
    expect(wrongPath).toMatchObject({ code: 'CONNECT_FAILED', status: 404 });
  });

  it('refuses an id still waiting for its reply, and a datagram larger than UDP carries', async () => {
    const tcp = await openClient(test.server, 'tcp');
    const udp = await openClient(test.server, 'udp');
    try {
      const first = tcp.request('rkllm_run', LONG_RUN, { id: 'twice', timeoutMs: 5000 }).catch((error: unknown) => error);
      await expect(tcp.request('rkllm_get_constants', undefined, { id: 'twice' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'id' });
      expect(await tcp.request('cancel', { request_id: 'twice' })).toEqual({ cancelled: true });
      expect(await first).toMatchObject({ code: -32009 });
      await waitIdle(test.control);

      const huge = 'x'.repeat(MAX_DATAGRAM_BYTES);
      await expect(udp.request('rkllm_get_constants', { padding: huge })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'text' });
      expect(await udp.request('rkllm_is_running', { handle: 'default' })).toEqual({ running: false });
    } finally {
      await tcp.close();
      await udp.close();
    }
  });
});

describe('the API key', () => {
  const API_KEY = 'client-test-key';
  let test: TestServer;

  beforeAll(async () => {
    test = await startServer({ disable: ['stdio'], apiKey: API_KEY });
  });

  afterAll(() => stopServer(test));

  it.each(NETWORK_KINDS)('%s: goes where the transport carries it; without it the server refuses', async (kind) => {
    const keyed = await openClient(test.server, kind, { apiKey: API_KEY });
    try {
      expect(await keyed.request('rkllm_is_running', { handle: 'default' })).toEqual({ running: false });
    } finally {
      await keyed.close();
    }
    if (kind === 'websocket') {
      // Refused at the upgrade: the status and the server's words come with the error.
      await expect(openClient(test.server, kind)).rejects.toMatchObject({ code: 'CONNECT_FAILED', status: 401 });
      return;
    }
    const bare = await openClient(test.server, kind, { timeoutMs: kind === 'udp' ? 1500 : undefined });
    try {
      const refused = await bare.request('rkllm_is_running', { handle: 'default' }).catch((error: unknown) => error);
      if (kind === 'udp') {
        // A UDP stranger without the key gets nothing at all, not even an error to reflect.
        expect(refused).toMatchObject({ code: 'TIMEOUT' });
      } else {
        expect(refused).toBeInstanceOf(RpcResponseError);
        expect(refused).toMatchObject({ code: -32018 });
      }
    } finally {
      await bare.close();
    }
  });

  it('a wrong key is refused too', async () => {
    const wrong = await connect(urlOf(test.server, 'tcp'), { apiKey: 'not-the-key' });
    try {
      await expect(wrong.request('rkllm_get_constants')).rejects.toMatchObject({ code: -32018 });
    } finally {
      await wrong.close();
    }
  });
});
