// The web page's routes on a real bin/rkllm-serve, over plain HTTP: the files and their headers,
// nothing outside the fixed list, POST / still JSON-RPC, /status and the API key.

import * as fs from 'fs';
import * as path from 'path';
import { HttpClient, REPO_ROOT, ServerProcess, stopAllServers, waitUntil, type HttpReply } from '../integration/client';

const KEY = 'page-test-key';

function expectPageHeaders(reply: HttpReply): void {
  const csp = String(reply.headers['content-security-policy']);
  expect(csp).toContain("default-src 'none'");
  expect(csp).toContain("script-src 'self'");
  expect(csp).toContain("frame-ancestors 'none'");
  expect(csp).not.toContain('unsafe-inline');
  expect(reply.headers['x-content-type-options']).toBe('nosniff');
}

describe('the web page routes', () => {
  let server: ServerProcess;
  let http: HttpClient;

  beforeAll(async () => {
    server = await ServerProcess.start({ model: 'sim:instant', disable: ['stdio', 'tcp', 'udp', 'websocket'] });
    http = new HttpClient(server.port('http'));
  });
  afterAll(async () => {
    await http.close();
    await stopAllServers();
  });

  it('GET / is the page, and its files are served byte for byte with their types and the security headers', async () => {
    const page = await http.raw('GET', '/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.text).toBe(fs.readFileSync(path.join(REPO_ROOT, 'web', 'index.html'), 'utf8'));
    expectPageHeaders(page);
    // No inline script: every script the page runs is a file of its own.
    expect(page.text).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    for (const [file, type] of [['app.js', 'text/javascript; charset=utf-8'], ['style.css', 'text/css; charset=utf-8']]) {
      const reply = await http.raw('GET', `/web/${file}`);
      expect(reply.status).toBe(200);
      expect(reply.headers['content-type']).toBe(type);
      expect(reply.text).toBe(fs.readFileSync(path.join(REPO_ROOT, 'web', file), 'utf8'));
      expectPageHeaders(reply);
    }
    const head = await http.raw('HEAD', '/web/app.js');
    expect(head.status).toBe(200);
    expect(head.text).toBe('');
  });

  it('serves nothing outside its list of files, whatever the path says', async () => {
    for (const urlPath of ['/web/../package.json', '/web/%2e%2e/package.json', '/web/..%2fpackage.json', '/web/', '/web', '/web/index.html/', '/web/APP.JS', '/web//app.js']) {
      const reply = await http.raw('GET', urlPath);
      expect([404, 400]).toContain(reply.status);
      expect(reply.text).not.toContain('"devDependencies"');
    }
  });

  it('other methods get 405, and POST / is still JSON-RPC', async () => {
    const put = await http.raw('PUT', '/', '{}', { 'content-type': 'application/json' });
    expect(put.status).toBe(405);
    expect(put.headers.allow).toBe('GET, HEAD, POST');
    expect((await http.raw('POST', '/web/app.js', '{}', { 'content-type': 'application/json' })).status).toBe(405);
    const reply = await http.request('rkllm_run', { input_type: 0, prompt_input: 'count to 3' });
    expect(reply.result.text).toBe('1, 2, 3');
  });

  it('GET /status reports models, queue, memory and uptime', async () => {
    const reply = await http.raw('GET', '/status');
    expect(reply.status).toBe(200);
    expect(reply.headers['cache-control']).toBe('no-store');
    const status = reply.json;
    expect(status.uptime_s).toBeGreaterThan(0);
    expect(status.runtime.emulated).toBe(true);
    expect(status.queue).toEqual({ queued: 0, running: 0, streams: expect.any(Number), connections: expect.any(Number) });
    expect(status.memory.rss_bytes).toBeGreaterThan(0);
    expect(status.memory.system_total_bytes).toBeGreaterThan(status.memory.system_free_bytes);
    expect(status.models).toContainEqual(expect.objectContaining({ name: 'default', state: 'idle', handle: 'default', running: 0, queued: 0 }));
    expect(Array.isArray(status.recent)).toBe(true);
  });

  it('GET /status shows a model as loading while its load is under way, then idle', async () => {
    // sim:slow-init takes 1 s to load; the first request that names it loads it.
    const chat = http.raw('POST', '/v1/chat/completions', JSON.stringify({ model: 'sim:slow-init', messages: [{ role: 'user', content: 'count to 2' }] }), {
      'content-type': 'application/json',
    });
    const stateOf = async (): Promise<string | undefined> =>
      ((await http.raw('GET', '/status')).json.models as { name: string; state: string }[]).find((model) => model.name === 'sim:slow-init')?.state;
    await waitUntil('the model to show as loading', async () => (await stateOf()) === 'loading', 5000, 20);
    expect((await chat).status).toBe(200);
    expect(await stateOf()).toBe('idle');
  });

  it('a page of a foreign origin is refused', async () => {
    const reply = await http.raw('GET', '/status', undefined, { origin: 'http://evil.example' });
    expect(reply.status).toBe(403);
  });
});

describe('the web page routes with --api-key', () => {
  let server: ServerProcess;
  let http: HttpClient;

  beforeAll(async () => {
    server = await ServerProcess.start({ model: 'sim:instant', disable: ['stdio', 'tcp', 'udp', 'websocket'], args: ['--api-key', KEY] });
    http = new HttpClient(server.port('http'));
  });
  afterAll(async () => {
    await http.close();
    await stopAllServers();
  });

  it('the page loads without the key (it asks for it); /status needs it', async () => {
    expect((await http.raw('GET', '/')).status).toBe(200);
    expect((await http.raw('GET', '/web/app.js')).status).toBe(200);
    const refused = await http.raw('GET', '/status');
    expect(refused.status).toBe(401);
    expect(refused.json.error.code).toBe('invalid_api_key');
    expect((await http.raw('GET', '/status', undefined, { authorization: 'Bearer wrong' })).status).toBe(401);
    expect((await http.raw('GET', '/status', undefined, { authorization: `Bearer ${KEY}` })).status).toBe(200);
    // POST / stays behind the key.
    expect((await http.post(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'rkllm_is_running', params: {} }))).status).toBe(401);
  });
});
