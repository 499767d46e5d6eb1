// Browser protections (issue 11, finding 3): a web page must not drive the server through the
// browser of someone on its machine or network. Before them, a cross-origin text/plain POST (no
// preflight needed) was run and destroyed the model, a page that rebound its DNS name to
// 127.0.0.1 could read replies, and any page could open the WebSocket. Now: a POST must be JSON,
// the Host must name the server, and a page's Origin must be allowed, on HTTP (JSON-RPC and
// /v1) and on the WebSocket upgrade, with or without --api-key.

import WebSocket from 'ws';
import { HOST, HttpClient, ServerProcess, WsClient, runCli, stopAllServers, withTimeout, type HttpReply } from '../integration/client';

jest.setTimeout(30_000);

const EVIL = 'http://evil.example';
const APP = 'http://app.example:3000';
const DESTROY = JSON.stringify({ jsonrpc: '2.0', id: 'destroy', method: 'rkllm_destroy', params: { handle: 'default' } });
const IS_RUNNING = JSON.stringify({ jsonrpc: '2.0', id: 'running', method: 'rkllm_is_running', params: { handle: 'default' } });
const CHAT = JSON.stringify({ model: 'default', messages: [{ role: 'user', content: 'echo: hi' }] });

/** The WebSocket upgrade's answer: 101 when it opened, else the HTTP status it was refused with. */
function upgradeStatus(port: number, options: WebSocket.ClientOptions): Promise<{ status: number; body: string }> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://${HOST}:${port}/`, { perMessageDeflate: false, ...options });
      ws.once('open', () => {
        ws.terminate();
        resolve({ status: 101, body: '' });
      });
      ws.once('unexpected-response', (_request, response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
        response.on('error', () => resolve({ status: response.statusCode ?? 0, body }));
      });
      ws.once('error', (error) => reject(error));
    }),
    5000,
    'websocket upgrade',
  );
}

function expectForbidden(reply: HttpReply, setting: string): void {
  expect(reply.status).toBe(403);
  expect(reply.json?.error?.code).toBe(-32022);
  expect(reply.json?.error?.data?.setting).toBe(setting);
  expect(reply.json?.error?.data?.detail).toContain(setting);
}

async function defaultModelAlive(http: HttpClient): Promise<void> {
  const reply = await http.post(IS_RUNNING);
  expect(reply.json?.result).toEqual({ running: false });
  expect((await http.health()).json?.models).toBe(1);
}

describe('browser protections with the default settings', () => {
  let server: ServerProcess;
  let http: HttpClient;

  beforeAll(async () => {
    server = await ServerProcess.start({ disable: ['stdio', 'tcp', 'udp'] });
    http = new HttpClient(server.port('http'));
  });

  afterAll(async () => {
    await http.close();
    await stopAllServers();
  });

  it('a cross-origin text/plain POST is refused and destroys nothing, on POST / and on /v1', async () => {
    // What a page's fetch(..., { mode: 'no-cors', body }) sends: no preflight, text/plain, its Origin.
    const fromPage = await http.raw('POST', '/', DESTROY, { 'content-type': 'text/plain;charset=UTF-8', origin: EVIL });
    expectForbidden(fromPage, '--allowed-origins');
    // JSON from a page is refused for its Origin alone; text/plain without an Origin for its type.
    expectForbidden(await http.raw('POST', '/', DESTROY, { 'content-type': 'application/json', origin: EVIL }), '--allowed-origins');
    const plain = await http.raw('POST', '/', DESTROY, { 'content-type': 'text/plain' });
    expect(plain.status).toBe(415);
    expect(plain.json?.error?.code).toBe(-32600);
    expect(plain.json?.error?.data?.reason).toContain('application/json');
    const form = await http.raw('POST', '/', DESTROY, { 'content-type': 'application/x-www-form-urlencoded' });
    expect(form.status).toBe(415);
    expect((await http.raw('POST', '/', DESTROY)).status).toBe(415);

    const chat = await http.raw('POST', '/v1/chat/completions', CHAT, { 'content-type': 'text/plain', origin: EVIL });
    expect(chat.status).toBe(403);
    expect(chat.json?.error?.code).toBe('forbidden');
    expect(chat.json?.error?.message).toContain('--allowed-origins');
    const chatPlain = await http.raw('POST', '/v1/chat/completions', CHAT, { 'content-type': 'text/plain' });
    expect(chatPlain.status).toBe(415);
    expect(chatPlain.json?.error?.code).toBe('unsupported_media_type');

    await defaultModelAlive(http);
    // A JSON type with a parameter, or a +json type, is JSON.
    expect((await http.raw('POST', '/', IS_RUNNING, { 'content-type': 'application/json; charset=utf-8' })).json?.result).toEqual({ running: false });
    expect((await http.raw('POST', '/', IS_RUNNING, { 'content-type': 'application/rpc+json' })).json?.result).toEqual({ running: false });
  });

  it('a foreign Host is refused (DNS rebinding) on every route; the names of this machine are not', async () => {
    const port = server.port('http');
    const foreign = { host: `evil.example:${port}` };
    expectForbidden(await http.raw('POST', '/', DESTROY, { 'content-type': 'application/json', ...foreign }), '--allowed-hosts');
    expectForbidden(await http.raw('GET', '/health', undefined, foreign), '--allowed-hosts');
    const models = await http.raw('GET', '/v1/models', undefined, foreign);
    expect(models.status).toBe(403);
    expect(models.json?.error?.message).toContain('--allowed-hosts evil.example');
    await defaultModelAlive(http);

    for (const host of [`localhost:${port}`, `LOCALHOST:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, '127.0.0.1', 'localhost']) {
      const reply = await http.raw('GET', '/health', undefined, { host });
      expect([host, reply.status]).toEqual([host, 200]);
    }
    // A page's Origin cannot borrow a trusted Host: the Origin is checked as well.
    expectForbidden(await http.raw('GET', '/health', undefined, { host: `localhost:${port}`, origin: EVIL }), '--allowed-origins');
  });

  it('CORS: a preflight from a page that is not allowed gets 403 and no Access-Control-Allow-Origin', async () => {
    const preflight = await http.raw('OPTIONS', '/', undefined, {
      origin: EVIL,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type',
    });
    expect(preflight.status).toBe(403);
    expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('a WebSocket upgrade with a foreign Origin or Host is refused with 403; one without an Origin works', async () => {
    const port = server.port('websocket');
    const fromPage = await upgradeStatus(port, { origin: EVIL });
    expect(fromPage.status).toBe(403);
    expect(JSON.parse(fromPage.body).error.data.setting).toBe('--allowed-origins');
    const rebound = await upgradeStatus(port, { headers: { host: `evil.example:${port}` } });
    expect(rebound.status).toBe(403);
    expect(JSON.parse(rebound.body).error.data.setting).toBe('--allowed-hosts');

    const client = await WsClient.connect(port);
    try {
      expect((await client.request('rkllm_is_running', { handle: 'default' })).result).toEqual({ running: false });
    } finally {
      await client.close();
    }
  });
});

describe('the settings of the browser protections', () => {
  it('an --allowed-origins that is not an origin is a usage error naming the flag', async () => {
    const result = await runCli(['--runtime', 'sim', '--allowed-origins', 'http://app.example:3000/path']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--allowed-origins');
    expect(result.stderr).toContain('scheme://host[:port]');
  });
});

describe('browser protections with allowed hosts and origins, and with --api-key', () => {
  const KEY = 'browser-test-key';
  let server: ServerProcess;
  let http: HttpClient;

  beforeAll(async () => {
    server = await ServerProcess.start({
      disable: ['stdio', 'tcp', 'udp'],
      args: ['--allowed-origins', APP, '--allowed-hosts', 'rkllm.lan,.home.arpa', '--api-key', KEY],
    });
    http = new HttpClient(server.port('http'));
  });

  afterAll(async () => {
    await http.close();
    await stopAllServers();
  });

  const withKey = { authorization: `Bearer ${KEY}` };

  it('the API key does not lift the protections: a foreign Origin or Host with the right key is still refused', async () => {
    expectForbidden(await http.raw('POST', '/', DESTROY, { 'content-type': 'application/json', origin: EVIL, ...withKey }), '--allowed-origins');
    expectForbidden(
      await http.raw('POST', '/', DESTROY, { 'content-type': 'application/json', host: 'evil.example', ...withKey }),
      '--allowed-hosts',
    );
    expect((await http.raw('POST', '/', DESTROY, { 'content-type': 'text/plain', ...withKey })).status).toBe(415);
    const alive = await http.raw('POST', '/', IS_RUNNING, { 'content-type': 'application/json', ...withKey });
    expect(alive.json?.result).toEqual({ running: false });
  });

  it('names in --allowed-hosts are accepted, a leading dot for a whole domain', async () => {
    for (const host of ['rkllm.lan', 'rkllm.lan:8082', 'home.arpa', 'box.home.arpa:80']) {
      expect([host, (await http.raw('GET', '/health', undefined, { host })).status]).toEqual([host, 200]);
    }
    expect((await http.raw('GET', '/health', undefined, { host: 'other.lan' })).status).toBe(403);
  });

  it('CORS: the preflight of an allowed origin is answered, and its requests carry Access-Control-Allow-Origin', async () => {
    const preflight = await http.raw('OPTIONS', '/v1/chat/completions', undefined, {
      origin: APP,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'authorization, content-type',
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe(APP);
    expect(preflight.headers['access-control-allow-methods']).toContain('POST');
    expect(preflight.headers['access-control-allow-headers']).toBe('authorization, content-type');
    expect(preflight.headers.vary).toBe('Origin');

    const reply = await http.raw('POST', '/', IS_RUNNING, { 'content-type': 'application/json', origin: APP, ...withKey });
    expect(reply.json?.result).toEqual({ running: false });
    expect(reply.headers['access-control-allow-origin']).toBe(APP);
    const chat = await http.raw('POST', '/v1/chat/completions', CHAT, { 'content-type': 'application/json', origin: APP, ...withKey });
    expect(chat.status).toBe(200);
    expect(chat.headers['access-control-allow-origin']).toBe(APP);
    // The key is still required of an allowed page.
    expect((await http.raw('POST', '/', IS_RUNNING, { 'content-type': 'application/json', origin: APP })).status).toBe(401);
  });

  it('a WebSocket upgrade from an allowed origin works; a foreign one is refused even with the key', async () => {
    const port = server.port('websocket');
    expect((await upgradeStatus(port, { origin: EVIL, headers: withKey })).status).toBe(403);
    const client = await WsClient.connect(port, 5000, 'ws-app', { origin: APP, headers: withKey });
    try {
      const reply = await client.request('rkllm_is_running', { handle: 'default' });
      expect(reply.result).toEqual({ running: false });
    } finally {
      await client.close();
    }
  });
});
